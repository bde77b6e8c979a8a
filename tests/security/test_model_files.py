"""Issue 9, point 6: crafted skops files are refused before anything in them runs.

Each file is built by hand, as an attacker with write access to a shared
`.mlops/` folder would write it, and registered straight through the store.
Every door that loads a model (the Python API, batch scoring in a pipeline and
`mlops serve`) must refuse it with a message naming the type, and the marker
file the payload would create must never appear.
"""

from __future__ import annotations

import io
import json
import pickle
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest

import jupyter_mlops as mlops
from jupyter_mlops.artifacts import ArtifactStore
from jupyter_mlops.errors import InvalidInput, MlopsError, UntrustedModel
from jupyter_mlops.models import FLAVOR, load_model_bytes
from jupyter_mlops.project import Project
from jupyter_mlops.store import Store

from ..helpers import free_port, wait_for, wait_until_serving

REPO = Path(__file__).parent.parent.parent


def _json(value: object) -> dict:
    return {"__class__": "str", "__module__": "builtins", "__loader__": "JsonNode",
            "content": json.dumps(value), "is_json": True}


def _tuple(*values: object) -> dict:
    return {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode",
            "content": [_json(v) for v in values]}


def _call(qualified: str, *args: object) -> dict:
    """A node that makes skops call `qualified(*args)` when the file is loaded."""
    module, _, name = qualified.rpartition(".")
    return {"__class__": name, "__module__": module,
            "__loader__": "ConstructorFromReduceNode", "content": _tuple(*args)}


def _skops_zip(root: dict, members: dict[str, bytes] | None = None) -> bytes:
    schema = {**root, "protocol": 2, "_skops_version": "0.16.0"}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("schema.json", json.dumps(schema))
        for name, data in (members or {}).items():
            archive.writestr(name, data)
    return buffer.getvalue()


class _Touch:
    """Unpickling this creates the marker file: what a pickle payload would do."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):  # noqa: ANN204
        return (open, (str(self.path), "w"))


def crafted(kind: str, marker: Path) -> tuple[bytes, str]:
    """A hostile model file of `kind` whose payload would create `marker`, and what names it."""
    if kind == "memmap":
        return _skops_zip(_call("numpy.memmap", str(marker), "uint8", "w+", 0, [4])), \
            "numpy.memmap"
    if kind == "os.system":
        return _skops_zip(_call("os.system", f"touch {marker}")), "os.system"
    if kind == "eval":
        return _skops_zip(_call("builtins.eval", f"open({str(marker)!r}, 'w')")), "builtins.eval"
    if kind == "function-in-estimator":
        # A real estimator whose `func` is os.system: it would run on predict.
        transformer = {"__class__": "FunctionTransformer",
                       "__module__": "sklearn.preprocessing._function_transformer",
                       "__loader__": "ObjectNode",
                       "content": {"__class__": "dict", "__module__": "builtins",
                                   "__loader__": "DictNode",
                                   "content": {"func": {"__class__": "system", "__module__": "os",
                                                        "__loader__": "FunctionNode"}},
                                   "key_types": {"__class__": "list", "__module__": "builtins",
                                                 "__loader__": "ListNode",
                                                 "content": [{"__class__": "str",
                                                              "__module__": "builtins",
                                                              "__loader__": "TypeNode"}]}}}
        return _skops_zip(transformer), "os.system"
    if kind == "pickled-array":
        # A numpy object array saved with pickle inside an otherwise plain skops zip.
        payload = io.BytesIO()
        np.save(payload, np.array([_Touch(marker)], dtype=object), allow_pickle=True)
        node = {"__class__": "ndarray", "__module__": "numpy", "__loader__": "NdArrayNode",
                "type": "numpy", "file": "0.npy"}
        return _skops_zip(node, {"0.npy": payload.getvalue()}), "Object arrays cannot be loaded"
    if kind == "pickle-in-zip":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("model.pkl", pickle.dumps(_Touch(marker)))
        return buffer.getvalue(), "not a readable skops model file"
    if kind == "bare-pickle":
        return pickle.dumps(_Touch(marker)), "not a readable skops model file"
    raise ValueError(kind)


KINDS = ["memmap", "os.system", "eval", "function-in-estimator", "pickled-array",
         "pickle-in-zip", "bare-pickle"]
SIDE_EFFECT_KINDS = ["memmap", "os.system", "eval", "pickled-array"]


def register_crafted(project: Project, data: bytes, name: str = "evil") -> str:
    """Register `data` as the next version of `name` and point `production` at it."""
    digest, size = ArtifactStore(project.artifacts_dir).put_bytes(data)
    with Store(project.db_path) as store:
        store.artifacts.record(digest, size)
        version = store.models.register(name, digest=digest, flavor=FLAVOR, run_id=None,
                                        signature=None, input_datasets=[], actor="mallory")
        store.releases.set_alias(name, "production", version.version, actor="mallory",
                                 reason="crafted")
    return f"{name}@production"


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    path = tmp_path.parent / f"{tmp_path.name}-marker"
    yield path
    assert not path.exists(), "the crafted model file ran its payload"


@pytest.mark.parametrize("kind", KINDS)
def test_load_model_refuses_crafted_files(project: Project, tracker, marker: Path,
                                          kind: str) -> None:
    data, named = crafted(kind, marker)
    ref = register_crafted(project, data)
    expected = InvalidInput if kind in ("pickled-array", "pickle-in-zip", "bare-pickle") \
        else UntrustedModel
    with pytest.raises(expected) as info:
        mlops.load_model(ref)
    assert named in str(info.value)
    assert "\n" not in str(info.value)


def test_the_refusal_says_what_to_do(project: Project, tracker, marker: Path) -> None:
    data, _ = crafted("memmap", marker)
    with pytest.raises(UntrustedModel) as info:
        load_model_bytes(data)
    assert info.value.types == ["numpy.memmap"]
    assert "trusted=[...]" in str(info.value)


def test_a_prefix_in_trusted_trusts_nothing(marker: Path) -> None:
    data, _ = crafted("memmap", marker)
    for prefix in ("numpy", "numpy.", "numpy.*"):
        with pytest.raises(UntrustedModel):
            load_model_bytes(data, trusted=[prefix])


def test_naming_the_type_is_the_explicit_way_in(tmp_path: Path) -> None:
    target = tmp_path / "mapped.bin"
    data = _skops_zip(_call("numpy.memmap", str(target), "uint8", "w+", 0, [4]))
    loaded = load_model_bytes(data, trusted=["numpy.memmap"])
    assert isinstance(loaded, np.memmap) and target.stat().st_size == 4


@pytest.mark.parametrize("kind", SIDE_EFFECT_KINDS)
def test_batch_scoring_refuses_crafted_files(project: Project, tracker, marker: Path,
                                             kind: str) -> None:
    """`mlops pipeline run` of the example scoring pipeline, with `production` crafted."""
    import pandas as pd

    for folder in ("notebooks", "pipelines"):
        shutil.copytree(REPO / folder, project.root / folder,
                        ignore=shutil.ignore_patterns("*.parquet", "outputs"))
    (project.root / "data").mkdir()
    pd.DataFrame({"x0": [0.0, 1.0]}).to_parquet(project.root / "data" / "test.parquet")
    data, named = crafted(kind, marker)
    register_crafted(project, data, name="breast-cancer")
    result = subprocess.run([sys.executable, "-m", "jupyter_mlops.cli.main", "pipeline", "run",
                             "pipelines/score.yaml"], capture_output=True, text=True,
                            timeout=600, cwd=project.root)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert named in output, output
    assert not (project.root / "outputs" / "scores.parquet").exists()


def _serve_outcome(proc: subprocess.Popen, base: str, timeout: float = 90.0) -> int | None:
    """Wait until `mlops serve` exits (its exit code) or answers /health (None)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return proc.returncode
        try:
            with urllib.request.urlopen(base + "/health", timeout=2):
                pytest.fail("mlops serve answered /health with 200 on a crafted model")
        except urllib.error.HTTPError as error:
            assert error.code == 503, error.code
            return None
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"mlops serve neither exited nor answered within {timeout:.0f} s")


@pytest.mark.parametrize("kind", SIDE_EFFECT_KINDS)
def test_serve_refuses_crafted_files(project: Project, tracker, marker: Path,
                                     kind: str) -> None:
    """`mlops serve` either refuses to start or answers 503: never loads the file."""
    data, named = crafted(kind, marker)
    ref = register_crafted(project, data)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "jupyter_mlops.cli.main", "serve", ref,
                             "--port", str(port)], cwd=project.root, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        code = _serve_outcome(proc, base)
        if code is None:  # still running without a model: /predict must be a 503 too
            request = urllib.request.Request(base + "/predict", data=b'{"instances": [{}]}',
                                             headers={"Content-Type": "application/json"})
            with pytest.raises(urllib.error.HTTPError) as info:
                urllib.request.urlopen(request, timeout=10)
            assert info.value.code == 503
            proc.send_signal(signal.SIGTERM)
        _, errors = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    if code is not None:
        assert code == 1 and errors.startswith("mlops: error: "), errors
    assert "Traceback" not in errors
    assert named in errors, errors


def test_serve_keeps_its_model_when_the_alias_moves_to_a_crafted_file(
        project: Project, tracker, marker: Path) -> None:
    """The hot reload is a door too: the crafted version is refused, the old one serves."""
    import threading

    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True, as_frame=True)
    with mlops.start_run():
        mlops.log_model(LogisticRegression(max_iter=300).fit(X, y), name="evil", input_example=X)
    with Store(project.db_path) as store:
        store.releases.set_alias("evil", "production", 1, actor="test", reason="good one")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "jupyter_mlops.cli.main", "serve",
                             "evil@production", "--port", str(port), "--poll", "0.2"],
                            cwd=project.root, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    errors: list[str] = []
    threading.Thread(target=lambda: errors.extend(proc.stderr), daemon=True).start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(base + "/health", proc)
        data, named = crafted("memmap", marker)
        register_crafted(project, data)  # evil:2, and `production` now points at it
        assert wait_for(lambda: any(named in line for line in errors), timeout=60), errors
        request = urllib.request.Request(
            base + "/predict", headers={"Content-Type": "application/json"},
            data=json.dumps({"instances": [X.iloc[0].to_dict()]}).encode())
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
            assert json.loads(response.read())["model"] == "evil:1"
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert not any("Traceback" in line for line in errors)


def _forest_with_a_crafted_tree(tamper, n_features: int | None = None) -> bytes:
    """A fitted forest whose second tree's node array was edited by `tamper(nodes)`."""
    import skops.io as sio
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.tree._tree import Tree

    X, y = load_iris(return_X_y=True)
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y)
    member = forest.estimators_[1]
    state = member.tree_.__getstate__()
    state["nodes"] = state["nodes"].copy()
    tamper(state["nodes"])
    width = n_features or member.tree_.n_features
    tree = Tree(width, np.asarray(member.tree_.n_classes, dtype=np.intp), member.tree_.n_outputs)
    tree.__setstate__(state)
    member.tree_, member.n_features_in_ = tree, width
    return sio.dumps(forest)


def _set(field: str, value: int):  # noqa: ANN202
    def tamper(nodes) -> None:  # noqa: ANN001
        nodes[field][0] = value
    return tamper


@pytest.mark.parametrize(("tamper", "n_features", "problem"), [
    (_set("left_child", 10**6), None, "node 0 points outside the tree"),
    (_set("right_child", 0), None, "node 0 points outside the tree"),  # a loop
    (_set("feature", 50), None, "feature 50 of 4 columns"),
    (_set("feature", 99), 100, "claims 100 input columns inside an ensemble given 4"),
])
def test_crafted_tree_indices_are_refused_before_predict(tamper, n_features: int | None,
                                                         problem: str) -> None:
    """scikit-learn walks trees without bounds checks: a crafted index would read outside
    memory (or loop for ever) at predict time, so the file is refused on load."""
    data = _forest_with_a_crafted_tree(tamper, n_features)
    with pytest.raises(InvalidInput, match="refusing a crafted model") as info:
        load_model_bytes(data)
    assert problem in str(info.value)
    assert "estimators_[1]" in str(info.value)


def test_untrusted_types_are_errors_of_the_package(marker: Path) -> None:
    for kind in KINDS:
        data, _ = crafted(kind, marker)
        with pytest.raises(MlopsError):
            load_model_bytes(data)


def test_a_gap_in_skops_audit_is_not_a_way_in(marker: Path, monkeypatch) -> None:
    """skops' audit has had gaps (nodes whose types it did not check). Simulated here by
    switching it off, since the installed skops has no gap we know of: our own check of
    every node still refuses the files, and nothing runs."""
    import skops.io as sio
    import skops.io._persist as persist

    monkeypatch.setattr(sio, "get_untrusted_types", lambda **_: [])
    monkeypatch.setattr(persist, "audit_tree", lambda tree, trusted: None)
    for kind in ("memmap", "os.system", "eval"):
        data, named = crafted(kind, marker)
        with pytest.raises(UntrustedModel, match=named):
            load_model_bytes(data)
