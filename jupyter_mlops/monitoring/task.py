"""What a model version predicts (a class, the probability of one, or a number), so
that labels are checked and quality is measured from the model, never guessed
from the label values.

The answer comes from the version's reference profile (`task`, recorded by
`log_model` since profile version 2) or, for a version logged before that or
without an input example, from its model file: loaded (digest verified, trusted
types only) and asked (`classes_`, `predict_proba`, scikit-learn's estimator type).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..errors import MlopsError
from ..project import Project
from ..store import Store
from .profile import model_task

CLASSIFICATION = "classification"
REGRESSION = "regression"


@dataclass(frozen=True)
class ModelTask:
    kind: str  # classification | regression
    output: str  # probability (of classes[1]) | label | value
    classes: tuple[Any, ...] | None  # a classifier's classes, when it lists them
    source: str  # where this was read: "profile" or "model file"

    @classmethod
    def from_json(cls, data: Any, source: str) -> ModelTask | None:
        """The task recorded as `model_task` JSON, or None when `data` isn't one."""
        if not isinstance(data, dict) or data.get("kind") not in (CLASSIFICATION, REGRESSION):
            return None
        classes = data.get("classes")
        if data["kind"] == REGRESSION:
            return cls(REGRESSION, "value", None, source)
        output = data.get("output")
        listed = tuple(classes) if isinstance(classes, list) and classes else None
        if output not in ("probability", "label") or (output == "probability" and (
                listed is None or len(listed) != 2)):
            output = "label"
        return cls(CLASSIFICATION, output, listed, source)

    @property
    def numeric_classes(self) -> tuple[float, ...] | None:
        """The classes as numbers, when every class is a (finite) number."""
        if self.classes is None or not all(_is_number(c) for c in self.classes):
            return None
        return tuple(float(c) for c in self.classes)

    def describe(self) -> str:
        if self.kind == REGRESSION:
            return "a regression model (it predicts numbers)"
        if self.classes is None:
            return "a classifier"
        return f"a classifier of the classes {', '.join(map(_show, self.classes[:20]))}" + (
            f" and {len(self.classes) - 20} more" if len(self.classes) > 20 else "")


def _is_number(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


def _show(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value) if isinstance(value, str) else str(value)


class TaskFinder:
    """Finds and remembers the task of each version of one model."""

    def __init__(self, project: Project, store: Store, name: str) -> None:
        self.project = project
        self.store = store
        self.name = name
        self._found: dict[int, tuple[ModelTask | None, str]] = {}

    def task(self, version: int | None) -> tuple[ModelTask | None, str]:
        """(the task of `name:version`, "") or (None, why it is not known)."""
        if version is None or version < 0:
            return None, "the predictions name no model version"
        if version not in self._found:
            self._found[version] = self._find(version)
        return self._found[version]

    def _find(self, version: int) -> tuple[ModelTask | None, str]:
        profile = self.store.predictions.profile(self.name, version)
        if profile is not None:
            task = ModelTask.from_json(profile.get("task"), "profile")
            if task is not None:
                return task, ""
        from ..fsspec_artifacts import open_artifact_store
        from ..models import load_model_bytes

        ref = f"{self.name}:{version}"
        try:
            model_version = self.store.models.get(self.name, version)
            data = open_artifact_store(self.project.artifacts_dir).read_bytes(model_version.digest)
            model = load_model_bytes(data)
        except (MlopsError, OSError) as exc:
            return None, (f"{ref} records no task and its model file could not be read "
                          f"({str(exc)[:200]})")
        found = ModelTask.from_json(model_task(model), "model file")
        if found is None:
            return None, f"{ref} is neither a classifier nor a regressor"
        return found, ""
