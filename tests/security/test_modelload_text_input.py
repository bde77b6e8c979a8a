"""A text vectorizer saved with `input="filename"` or `"file"` is refused on load (issue 9).

Such a vectorizer opens whatever path each value names, so a model file that
holds one turns every `transform`/`predict` into a file read chosen by the
caller of the scoring service: a request holding `/etc/passwd` would read that
file. The files here are real skops files of fitted scikit-learn models whose
vectorizer was switched to reading files, wherever it sits in the model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import CountVectorizer, HashingVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline

import jupyter_mlops as mlops
from jupyter_mlops.errors import InvalidInput
from jupyter_mlops.models import load_model_bytes
from jupyter_mlops.project import Project

from .test_model_files import register_crafted

TEXTS = ["good day sunshine", "bad day rain", "good night moon", "bad night storm"] * 3
LABELS = [0, 1, 0, 1] * 3
VECTORIZERS = {"count": CountVectorizer, "tfidf": TfidfVectorizer, "hashing": HashingVectorizer}


def _vectorizer(kind: str):  # noqa: ANN202
    # A small hashing space: 2**20 columns make fitting the classifier take seconds.
    return HashingVectorizer(n_features=256) if kind == "hashing" else VECTORIZERS[kind]()


def _placed(where: str, vectorizer) -> tuple[object, object]:  # noqa: ANN001
    """(fitted model, input it predicts on) with `vectorizer` at `where`."""
    if where == "pipeline":
        model = Pipeline([("words", vectorizer), ("clf", LogisticRegression())])
        return model.fit(TEXTS, LABELS), TEXTS
    if where == "column-transformer":
        columns = ColumnTransformer([("words", vectorizer, "text")])
        model = Pipeline([("columns", columns), ("clf", LogisticRegression())])
        frame = pd.DataFrame({"text": TEXTS})
        return model.fit(frame, LABELS), frame
    if where == "feature-union":
        union = FeatureUnion([("chars", CountVectorizer(analyzer="char")), ("words", vectorizer)])
        model = Pipeline([("union", union), ("clf", LogisticRegression())])
        return model.fit(TEXTS, LABELS), TEXTS
    if where == "nested-pipeline":
        inner = Pipeline([("words", vectorizer)])
        model = Pipeline([("text", inner), ("clf", LogisticRegression())])
        return model.fit(TEXTS, LABELS), TEXTS
    raise ValueError(where)


PLACES = {
    "pipeline": "model.steps['words']",
    "column-transformer": "model.steps['columns'].transformers['words']",
    "feature-union": "model.steps['union'].transformer_list['words']",
    "nested-pipeline": "model.steps['text'].steps['words']",
}


def _reading_files(model, mode: str) -> None:  # noqa: ANN001
    """Switch the fitted `model`'s vectorizer named "words" to reading files: the edit an
    attacker makes (or a notebook that trained on files and was saved as it was)."""
    for name, value in model.get_params(deep=True).items():
        if name.split("__")[-1] == "words":
            value.set_params(input=mode)
    for step in getattr(model, "named_steps", {}).values():
        for name, transformer, _ in getattr(step, "transformers_", []):
            if name == "words":  # ColumnTransformer's fitted clones
                transformer.set_params(input=mode)


@pytest.mark.parametrize("mode", ["filename", "file"])
@pytest.mark.parametrize("kind", list(VECTORIZERS))
@pytest.mark.parametrize("where", list(PLACES))
def test_a_vectorizer_reading_files_is_refused_wherever_it_sits(where: str, kind: str,
                                                                mode: str) -> None:
    model, _ = _placed(where, _vectorizer(kind))
    _reading_files(model, mode)
    data = sio.dumps(model)
    with pytest.raises(InvalidInput) as info:
        load_model_bytes(data)
    message = str(info.value)
    assert PLACES[where] in message, message
    assert f"input={mode!r}" in message and VECTORIZERS[kind].__name__ in message
    assert "input='content'" in message and "\n" not in message


def test_the_refused_file_really_reads_the_file_a_request_names(tmp_path: Path) -> None:
    """What the check stops: loaded by skops alone, the model reads a file named in the data."""
    secret = tmp_path / "secret.txt"
    secret.write_text("sunshine " * 50)
    model, _ = _placed("pipeline", TfidfVectorizer())
    _reading_files(model, "filename")
    data = sio.dumps(model)
    unchecked = sio.loads(data, trusted=sio.get_untrusted_types(data=data))
    assert unchecked.steps[0][1].transform([str(secret)]).nnz == 1  # it opened the file
    with pytest.raises(InvalidInput, match="input='filename'"):
        load_model_bytes(data)


def test_the_vectorizer_in_the_fitted_and_the_declared_steps_are_both_checked() -> None:
    """A ColumnTransformer keeps its declared transformers and fitted clones apart: a file
    edited in the fitted copy only (the one predict uses) is refused too."""
    model, _ = _placed("column-transformer", TfidfVectorizer())
    model.named_steps["columns"].transformers_[0][1].set_params(input="filename")
    assert model.named_steps["columns"].transformers[0][1].input == "content"
    with pytest.raises(InvalidInput) as info:
        load_model_bytes(sio.dumps(model))
    assert "model.steps['columns'].transformers_['words']" in str(info.value)


@pytest.mark.parametrize("where", list(PLACES))
@pytest.mark.parametrize("kind", list(VECTORIZERS))
def test_vectorizers_reading_content_still_load(where: str, kind: str) -> None:
    model, X = _placed(where, _vectorizer(kind))
    loaded = load_model_bytes(sio.dumps(model))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_load_model_refuses_it_through_the_registry(project: Project, tracker,
                                                    tmp_path: Path) -> None:
    model, _ = _placed("pipeline", CountVectorizer())
    with mlops.start_run():
        mlops.log_model(model, name="words")
    assert mlops.load_model("words:1").predict(["good day"]).shape == (1,)
    _reading_files(model, "file")
    ref = register_crafted(project, sio.dumps(model), name="words")
    with pytest.raises(InvalidInput, match=r"model.steps\['words'\] \(CountVectorizer\)"):
        mlops.load_model(ref)
