"""`mlops serve` refuses the hostile model files of issue 9's loading review.

A text pipeline reading files, a model whose sparse matrix points outside its
arrays and a zip bomb: each registered as `production` and served, the service
never loads it (it exits with one line, or answers 503), never crashes, and
prints no traceback. A text pipeline reading content serves, and a path sent
to it is just text.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sparse
import skops.io as sio
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline

import jupyter_mlops as mlops
from jupyter_mlops.project import Project
from jupyter_mlops.store import Store

from ..helpers import free_port, wait_until_serving
from .test_model_files import _serve_outcome, register_crafted

TEXT = pd.DataFrame({"text": ["good day sunshine", "bad day rain", "good night moon",
                              "bad night storm"] * 3})
LABELS = [0, 1, 0, 1] * 3


def _text_model(mode: str = "content") -> Pipeline:
    columns = ColumnTransformer([("words", TfidfVectorizer(), "text")])
    model = Pipeline([("columns", columns), ("clf", LogisticRegression())]).fit(TEXT, LABELS)
    for step in (columns.transformers[0][1], columns.transformers_[0][1]):
        step.set_params(input=mode)
    return model


def hostile(kind: str) -> tuple[bytes, str]:
    """A hostile model file of `kind`, and what the refusal must name."""
    if kind == "text-reads-files":
        return sio.dumps(_text_model("filename")), "input='filename'"
    if kind == "sparse-out-of-range":
        X = sparse.random(40, 10, density=0.3, format="csr", random_state=0)
        model = KNeighborsClassifier(n_neighbors=3).fit(X, np.arange(40) % 2)
        model._fit_X.indices[:] = 10**9
        return sio.dumps(model), "model._fit_X (csr_matrix) has indices outside"
    if kind == "zip-bomb":
        import io

        buffer = io.BytesIO(sio.dumps(_text_model(), compression=zipfile.ZIP_DEFLATED))
        with zipfile.ZipFile(buffer, "a", compression=zipfile.ZIP_DEFLATED) as archive:
            with archive.open("bomb.npy", "w", force_zip64=True) as out:
                for _ in range(256):
                    out.write(bytes(2**20))
        return buffer.getvalue(), "member 'bomb.npy' declares 256.0 MiB"
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["text-reads-files", "sparse-out-of-range", "zip-bomb"])
def test_serve_refuses_hostile_model_files(project: Project, tracker, kind: str) -> None:
    data, named = hostile(kind)
    ref = register_crafted(project, data)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "jupyter_mlops.cli.main", "serve", ref,
                             "--port", str(port)], cwd=project.root, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        code = _serve_outcome(proc, base)
        if code is None:  # running without a model: /predict is a 503, never a crash
            request = urllib.request.Request(
                base + "/predict", headers={"Content-Type": "application/json"},
                data=json.dumps({"instances": [{"text": "/etc/passwd"}]}).encode())
            with pytest.raises(urllib.error.HTTPError) as info:
                urllib.request.urlopen(request, timeout=10)
            assert info.value.code == 503
            proc.send_signal(signal.SIGTERM)
        _, errors = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code in (None, 1), (code, errors)  # never killed by a signal (a segfault)
    assert "Traceback" not in errors
    assert named in errors, errors


def test_a_text_model_reading_content_serves_and_a_path_is_just_text(project: Project,
                                                                      tracker) -> None:
    with mlops.start_run():
        mlops.log_model(_text_model(), name="words", input_example=TEXT)
    with Store(project.db_path) as store:
        store.releases.set_alias("words", "production", 1, actor="test", reason="test")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "jupyter_mlops.cli.main", "serve",
                             "words@production", "--port", str(port)], cwd=project.root,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(base + "/health", proc)
        request = urllib.request.Request(
            base + "/predict", headers={"Content-Type": "application/json"},
            data=json.dumps({"instances": [{"text": "/etc/passwd"},
                                           {"text": "good day"}]}).encode())
        with urllib.request.urlopen(request, timeout=30) as response:
            reply = json.loads(response.read())
        assert len(reply["predictions"]) == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
