from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import blake3
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

import jupyter_mlops as mlops
from jupyter_mlops.errors import (
    IntegrityError,
    InvalidInput,
    MlopsError,
    NoActiveRun,
    ProjectNotFound,
    UntrustedModel,
)
from jupyter_mlops.project import find_project
from jupyter_mlops.tracking import Tracker

from .helpers import wait_for


def test_python_api_records_a_run(tracker: Tracker) -> None:
    with mlops.start_run(name="api", tags={"team": "churn"}) as run:
        run.log_params({"C": 0.5, "solver": "lbfgs", "layers": [1, 2]})
        run.log_metric("acc", 0.9)
        run.log_metric("loss", 0.5, step=1)
        run.log_metrics({"loss": 0.4, "f1": 0.8}, step=2)
    recorded = mlops.get_run(run.id)
    assert recorded.status == "finished" and recorded.ended_at is not None
    assert recorded.params == {"C": "0.5", "solver": "lbfgs", "layers": "[1, 2]"}
    assert recorded.metrics == {"acc": 0.9, "loss": 0.4, "f1": 0.8}
    # the user's tags; mlops.* ones are the tool's (an interactive run is noted as such)
    own = {k: v for k, v in recorded.tags.items() if not k.startswith("mlops.")}
    assert own == {"team": "churn"}
    assert recorded.source_kind in ("script", "interactive")
    assert recorded.python and recorded.env_digest.startswith("blake3:")
    assert recorded.host and recorded.user
    env = tracker.store.environments.get(recorded.env_digest)
    assert "pytest" in env.packages


def test_exception_marks_run_failed(tracker: Tracker) -> None:
    with pytest.raises(ZeroDivisionError), mlops.start_run(name="boom") as run:
        1 / 0  # noqa: B018
    recorded = mlops.get_run(run.id)
    assert recorded.status == "failed"
    assert "ZeroDivisionError" in recorded.error


@pytest.mark.parametrize(("value", "step"), [("0.5", None), (None, None), (True, None),
                                             (0.5, "3"), (0.5, 1.5), (0.5, 2**70)])
def test_bad_metric_values_are_refused(tracker: Tracker, value: object, step: object) -> None:
    with mlops.start_run():
        with pytest.raises(InvalidInput):
            mlops.log_metric("acc", value, step=step)


@pytest.mark.parametrize("key", ["acc\u202ex", "a\x85b", "a\u2028b", "a\nb"])
def test_metric_names_that_display_as_something_else_are_refused(tracker: Tracker,
                                                                   key: str) -> None:
    with mlops.start_run():
        with pytest.raises(InvalidInput, match="refused"):
            mlops.log_metric(key, 0.5)
        with pytest.raises(InvalidInput, match="refused"):
            mlops.log_metrics({key: 0.5})


def test_logging_without_a_run_says_how_to_start(tracker: Tracker) -> None:
    with pytest.raises(NoActiveRun, match="%mlops start"):
        mlops.log_metric("acc", 1.0)


def test_one_active_run_at_a_time(tracker: Tracker) -> None:
    tracker.start_run("first")
    with pytest.raises(MlopsError, match="still active"):
        tracker.start_run("second")


def test_same_data_twice_is_one_version_linked_to_both_runs(tracker: Tracker,
                                                          project) -> None:
    path = project.root / "train.csv"
    pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]}).to_csv(path, index=False)
    with mlops.start_run() as first:
        v1 = mlops.log_dataset(path)
    with mlops.start_run() as second:
        v2 = mlops.log_dataset("train.csv", role="output")
    assert v1 == v2
    assert v1.digest == "blake3:" + blake3.blake3(path.read_bytes()).hexdigest()
    assert v1.rows == 3 and v1.schema == {"a": "int64", "b": "str"}
    assert tracker.store.datasets.runs_using(v1.digest) == [(first.id, "input"),
                                                            (second.id, "output")]
    count = tracker.store._conn.execute("SELECT count(*) FROM dataset_versions").fetchone()[0]
    assert count == 1


def test_csv_with_quoted_newlines_and_parquet_shapes(tracker: Tracker, project) -> None:
    csv_path = project.root / "q.csv"
    csv_path.write_text('id,text\n1,"two\nlines"\n2,plain\n', encoding="utf-8")
    parquet_path = project.root / "p.parquet"
    pd.DataFrame({"x": [1.0, 2.0], "y": ["a", "b"]}).to_parquet(parquet_path, index=False)
    with mlops.start_run():
        assert mlops.log_dataset(csv_path).rows == 2
        parquet = mlops.log_dataset(parquet_path)
        frame = mlops.log_dataset(pd.DataFrame({"k": [1, 2, 3]}), name="frame")
    assert parquet.rows == 2 and parquet.schema == {"x": "double", "y": "large_string"} \
        or parquet.schema == {"x": "double", "y": "string"}
    assert frame.kind == "dataframe" and frame.rows == 3 and frame.schema == {"k": "int64"}


def test_missing_and_malformed_datasets(tracker: Tracker, project) -> None:
    bad = project.root / "bad.parquet"
    bad.write_bytes(b"not parquet")
    with mlops.start_run():
        with pytest.raises(MlopsError, match="no file or folder"):
            mlops.log_dataset("nope.csv")
        with pytest.raises(InvalidInput, match="cannot read"):
            mlops.log_dataset(bad)
        with pytest.raises(InvalidInput, match="path or a pandas DataFrame"):
            mlops.log_dataset(42)


@pytest.mark.parametrize("name", ["../escape.txt", "/etc/passwd", "a\\b.txt", "a\x00b",
                                  "ok/../../x", "line\nbreak", "C:/windows", "./x", ""])
def test_hostile_artifact_names_are_refused(tracker: Tracker, project, name: str) -> None:
    path = project.root / "f.txt"
    path.write_text("hello")
    with mlops.start_run():
        with pytest.raises(InvalidInput):
            mlops.log_artifact(path, name=name)
    assert not any(project.artifacts_dir.rglob("*.txt"))


def test_artifacts_are_stored_once_by_digest_and_verified(tracker: Tracker, project) -> None:
    path = project.root / "report.txt"
    path.write_text("same bytes")
    (project.root / "plots").mkdir()
    (project.root / "plots" / "a.txt").write_text("a")
    (project.root / "plots" / "b.txt").write_text("b")
    with mlops.start_run() as run:
        [first] = mlops.log_artifact(path)
        [second] = mlops.log_artifact(path, name="copy/report.txt")
        folder = mlops.log_artifact("plots")
    assert first.digest == second.digest
    assert [link.name for link in folder] == ["plots/a.txt", "plots/b.txt"]
    stored = tracker.artifacts.path_for(first.digest)
    assert stored.relative_to(project.artifacts_dir).parts[0] == "blake3"
    assert stored.read_text() == "same bytes"
    assert list((project.artifacts_dir / "tmp").iterdir()) == []
    names = [a.name for a in tracker.store.artifacts.for_run(run.id)]
    assert {"report.txt", "copy/report.txt", "plots/a.txt"} <= set(names)
    assert tracker.verify() == []
    os.chmod(stored, 0o644)
    stored.write_text("tampered!!")
    problems = tracker.verify()
    assert [digest for digest, _ in problems] == [first.digest]
    assert "hashes to" in problems[0][1]


@pytest.fixture
def iris():
    X, y = load_iris(return_X_y=True, as_frame=True)
    return X, y


def test_model_round_trip_with_signature_and_lineage(tracker: Tracker, iris) -> None:
    X, y = iris
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)).fit(X, y)
    with mlops.start_run() as run:
        data = mlops.log_dataset(X, name="X")
        first = mlops.log_model(clf, name="iris")
        second = mlops.log_model(clf, name="iris", input_example=X)
    assert (first.ref, second.ref) == ("iris:1", "iris:2")
    assert first.run_id == run.id and first.input_datasets == (data.digest,)
    assert first.signature["inputs"][0] == {"name": "sepal length (cm)", "dtype": "float64"}
    assert second.signature == first.signature
    loaded = mlops.load_model("iris:1")
    assert (loaded.predict(X) == clf.predict(X)).all()
    assert mlops.load_model("iris").predict(X[:5]).tolist() == clf.predict(X[:5]).tolist()


def test_corrupted_model_is_caught_on_load_and_by_verify(tracker: Tracker, iris) -> None:
    X, y = iris
    with mlops.start_run():
        version = mlops.log_model(LogisticRegression(max_iter=300).fit(X, y), name="iris")
    stored = tracker.artifacts.path_for(version.digest)
    os.chmod(stored, 0o644)
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="corrupted"):
        mlops.load_model("iris:1")
    assert [digest for digest, _ in tracker.verify()] == [version.digest]


def test_untrusted_types_are_refused_unless_named(tracker: Tracker, iris) -> None:
    X, y = iris
    risky = make_pipeline(FunctionTransformer(os.getcwd), LogisticRegression())
    with mlops.start_run():
        mlops.log_model(risky, name="risky")
    with pytest.raises(UntrustedModel, match="posix.getcwd"):
        mlops.load_model("risky:1")
    loaded = mlops.load_model("risky:1", trusted=["posix.getcwd"])
    assert loaded.steps[0][1].func is os.getcwd


def _representative_models(X: pd.DataFrame, y: pd.Series) -> dict[str, object]:
    """Fitted estimators and pipelines whose types the trusted list must cover."""
    import numpy as np
    from scipy import sparse
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
    )
    from sklearn.impute import SimpleImputer
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder
    from sklearn.svm import SVC

    mixed = X.assign(kind=np.where(X.iloc[:, 0] > 5.8, "long", "short"))
    mixed.iloc[::9, 1] = np.nan
    numeric = list(X.columns)
    prepare = ColumnTransformer([
        ("num", Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())]), numeric),
        ("cat", OneHotEncoder(handle_unknown="ignore"), ["kind"])])
    return {
        "logistic": (LogisticRegression(max_iter=300).fit(X, y), X),
        "forest": (RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y), X),
        "boosting": (GradientBoostingClassifier(n_estimators=5).fit(X, y), X),
        "hist-boosting": (HistGradientBoostingClassifier(max_iter=5).fit(X, y), X),
        "hist-boosting-regressor": (HistGradientBoostingRegressor(max_iter=5).fit(X, y), X),
        "hist-boosting-categorical": (HistGradientBoostingClassifier(
            max_iter=5, categorical_features="from_dtype").fit(
                mixed.astype({"kind": "category"}), y), mixed.astype({"kind": "category"})),
        "svc": (SVC(probability=True, random_state=0).fit(X, y), X),
        "svc-sparse": (SVC().fit(sparse.csr_matrix(X.to_numpy()), y),
                       sparse.csr_matrix(X.to_numpy())),
        "knn": (KNeighborsClassifier().fit(X, y), X),
        "knn-ball-tree": (KNeighborsClassifier(algorithm="ball_tree").fit(X, y), X),
        "mlp": (MLPClassifier(max_iter=50, random_state=0).fit(X, y), X),
        "pipeline": (Pipeline([("prepare", prepare), ("model", LogisticRegression(
            max_iter=300))]).fit(mixed, y), mixed),
    }


def test_fitted_models_of_every_common_kind_load_without_trusted(tracker: Tracker,
                                                                 iris) -> None:
    import warnings

    X, y = iris
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings of the tiny fits
        models = _representative_models(X, y)
    with mlops.start_run():
        for name, (model, _) in models.items():
            mlops.log_model(model, name=name)
    for name, (model, inputs) in models.items():
        loaded = mlops.load_model(name)
        assert type(loaded) is type(model)
        assert (loaded.predict(inputs) == model.predict(inputs)).all(), name


def test_the_trusted_list_names_exact_installed_classes() -> None:
    import importlib

    from jupyter_mlops.models import trusted_types

    names = trusted_types()
    assert "numpy.memmap" not in names
    assert not any(name.startswith(("os.", "posix.", "subprocess.", "operator.", "importlib."))
                   for name in names)
    assert {name for name in names if name.startswith("builtins.")} == {
        f"builtins.{t}" for t in ("str", "int", "float", "bool", "list", "tuple", "set", "dict",
                                  "slice", "bytes", "bytearray")}
    for name in names:
        module, _, attribute = name.rpartition(".")
        obj = getattr(importlib.import_module(module), attribute)
        assert isinstance(obj, type) or name == "sklearn.utils.validation.check_array", name


@pytest.mark.parametrize("name", ["../x", "a b", "<script>", "", "x" * 101, "name:1"])
def test_hostile_model_names_are_refused(tracker: Tracker, iris, name: str) -> None:
    X, y = iris
    with mlops.start_run(), pytest.raises(InvalidInput, match="model name"):
        mlops.log_model(LogisticRegression(max_iter=300).fit(X, y), name=name)


def test_non_estimators_are_refused(tracker: Tracker) -> None:
    with mlops.start_run(), pytest.raises(InvalidInput, match="scikit-learn"):
        mlops.log_model({"weights": [1, 2]}, name="dict")


def test_missing_project_says_how_to_create_one(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("MLOPS_HOME", raising=False)
    with pytest.raises(ProjectNotFound, match="mlops init"):
        find_project(tmp_path)
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "nowhere"))
    with pytest.raises(MlopsError, match="MLOPS_HOME"):
        find_project(tmp_path)


def test_project_is_found_by_walking_up(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("MLOPS_HOME", raising=False)
    mlops.init(tmp_path)
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert find_project(deep).root == tmp_path.resolve()


def test_malformed_config_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("MLOPS_HOME", raising=False)
    project = mlops.init(tmp_path)
    (project.home / "config.toml").write_text("[tracking\nheartbeat_seconds = 'x'")
    with pytest.raises(InvalidInput, match="config.toml: not valid TOML"):
        find_project(tmp_path)
    (project.home / "config.toml").write_text("[tracking]\nheartbeat_seconds = 'fast'")
    with pytest.raises(InvalidInput, match="heartbeat_seconds must be a finite number"):
        find_project(tmp_path)


SCRIPT = """
import sys
import jupyter_mlops as mlops
run = mlops.start_run(name=sys.argv[1])
mlops.log_metric("acc", 0.5)
print(run.id, flush=True)
if sys.argv[1] == "raise":
    raise RuntimeError("the script failed")
if sys.argv[1] == "hang":
    import time
    time.sleep(600)
"""


def _script(project) -> Path:
    path = project.root / "train_script.py"
    path.write_text(SCRIPT)
    return path


@pytest.mark.parametrize(("mode", "status"), [("ok", "finished"), ("raise", "failed")])
def test_scripts_are_captured_and_end_at_exit(tracker: Tracker, project, mode: str,
                                              status: str) -> None:
    script = _script(project)
    result = subprocess.run([sys.executable, str(script), mode], capture_output=True,
                            text=True, timeout=120, cwd=project.root)
    run = tracker.get_run(int(result.stdout.split()[0]))
    assert run.status == status, result.stderr
    assert run.source_kind == "script" and run.notebook == str(script)
    assert run.code_digest == "blake3:" + blake3.blake3(script.read_bytes()).hexdigest()
    if status == "failed":
        assert "the script failed" in run.error
    kinds = {a.name: a.kind for a in tracker.store.artifacts.for_run(run.id)}
    assert kinds["source/train_script.py"] == "source"


def test_a_killed_process_leaves_a_killed_run(tracker: Tracker, project) -> None:
    (project.home / "config.toml").write_text(
        "[tracking]\nheartbeat_seconds = 0.2\nstale_after_seconds = 1.5\n")
    script = _script(project)
    proc = subprocess.Popen([sys.executable, str(script), "hang"], stdout=subprocess.PIPE,
                            text=True, cwd=project.root)
    run_id = int(proc.stdout.readline())
    fresh = Tracker(find_project())
    assert fresh.get_run(run_id).status == "running"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert wait_for(lambda: fresh.get_run(run_id).status == "killed", timeout=30)
    fresh.close()


def test_git_state_and_uncommitted_diff(tracker: Tracker, project) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=project.root, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    (project.root / ".gitignore").write_text(".mlops/\n")
    (project.root / "code.py").write_text("x = 1\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "first")
    (project.root / "code.py").write_text("x = 2\n")
    with mlops.start_run() as run:
        pass
    recorded = mlops.get_run(run.id)
    assert recorded.git_branch == "main" and len(recorded.git_commit) == 40
    assert recorded.git_dirty is True
    [diff] = [a for a in tracker.store.artifacts.for_run(run.id) if a.kind == "git-diff"]
    assert b"+x = 2" in tracker.artifacts.read_bytes(diff.digest)


def test_a_script_git_does_not_track_is_recorded_as_untracked(project, tmp_path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=project.root, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    (project.root / ".gitignore").write_text(".mlops/\n")
    (project.root / "tracked.py").write_text("x = 1\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "first")
    script = textwrap.dedent("""
        import jupyter_mlops as mlops
        with mlops.start_run() as run:
            pass
        print(run.id)
    """)
    (project.root / "tracked.py").write_text(script)
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qam", "script")
    (project.root / "untracked.py").write_text(script)
    ids = {}
    for name in ("tracked.py", "untracked.py"):
        done = subprocess.run([sys.executable, name], cwd=project.root, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        ids[name] = int(done.stdout.split()[-1])
    clean, untracked = (mlops.get_run(ids["tracked.py"]), mlops.get_run(ids["untracked.py"]))
    assert clean.git_dirty is False and "mlops.git_untracked" not in clean.tags
    assert untracked.git_dirty is True  # no commit holds its code
    assert untracked.tags["mlops.git_untracked"] == "untracked.py"
    from jupyter_mlops.inspection import describe_run
    from jupyter_mlops.store import Store
    from jupyter_mlops.views import run_detail_text

    with Store(project.db_path) as store:
        text = run_detail_text(describe_run(store, str(untracked.id)))
    assert "true (the source is not tracked by git)" in text


def test_importing_the_package_opens_nothing() -> None:
    code = textwrap.dedent("""
        import sys
        import jupyter_mlops
        heavy = [m for m in ("pandas", "sqlite_utils", "sklearn", "skops", "papermill",
                             "nbformat", "IPython") if m in sys.modules]
        print(heavy)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.stdout.strip() == "[]", result.stderr
