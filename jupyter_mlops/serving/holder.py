"""The model being served, following an alias: a new version is loaded off the
request path and swapped in with one assignment, so no request is dropped."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from ..artifacts import ArtifactStore
from ..models import load_model_bytes
from ..project import Project
from ..store import Store
from ..store.models import parse_model_ref
from ..store.records import ModelVersion


@dataclass(frozen=True)
class Loaded:
    version: ModelVersion
    model: Any
    columns: tuple[tuple[str, str | None], ...]  # (name, dtype) in the model's order


def columns_of(version: ModelVersion, model: Any) -> tuple[tuple[str, str | None], ...]:
    inputs = (version.signature or {}).get("inputs")
    if inputs:
        return tuple((str(i["name"]), i.get("dtype")) for i in inputs)
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        return tuple((str(n), None) for n in names)
    count = getattr(model, "n_features_in_", 0)
    return tuple((f"x{i}", "float64") for i in range(int(count)))


class ModelHolder:
    def __init__(self, project: Project, ref: str) -> None:
        self.project = project
        self.ref = ref
        self.name, _, self.alias = parse_model_ref(ref)
        self._lock = threading.Lock()
        self.current: Loaded | None = None
        self.switches = 0

    def _resolve(self, store: Store) -> ModelVersion:
        return store.models.resolve(self.ref)

    def refresh(self) -> bool:
        """Load the version the reference points at now, if it changed. Thread-safe."""
        with self._lock:
            with Store(self.project.db_path) as store:
                version = self._resolve(store)
            if self.current is not None and self.current.version.digest == version.digest \
                    and self.current.version.version == version.version:
                return False
            data = ArtifactStore(self.project.artifacts_dir).read_bytes(version.digest)
            model = load_model_bytes(data)
            loaded = Loaded(version=version, model=model, columns=columns_of(version, model))
            switched = self.current is not None
            self.current = loaded  # one assignment: requests see the old or the new model
            if switched:
                self.switches += 1
            return True
