"""The model being served, following an alias: a new version is loaded off the
request path and swapped in with one assignment, so no request is dropped.

A version that cannot be loaded (an untrusted type in its file, bytes that no
longer match their digest, an unreadable file) is refused once, with one line
naming it and why; the service keeps the model it had, or answers 503 on
/predict when it has none, and tries again only when the alias moves.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from ..artifacts import ArtifactStore
from ..errors import MlopsError
from ..models import load_model_bytes
from ..monitoring.predlog import INPUT_PREFIX
from ..project import Project
from ..store import Store
from ..store.models import parse_model_ref
from ..store.records import ModelVersion
from .inputs import NumericInput, numeric_input


@dataclass(frozen=True)
class Loaded:
    version: ModelVersion
    model: Any
    columns: tuple[tuple[str, str | None], ...]  # (name, dtype) in the model's order
    numeric: NumericInput | None = None  # the fast path, when every feature is a number

    @cached_property
    def log_names(self) -> tuple[str, ...]:
        """The prediction log's input columns of the fast path (`numeric`'s names)."""
        return tuple(INPUT_PREFIX + name for name in self.numeric.names) if self.numeric else ()


class ModelNotLoaded(MlopsError):
    """The version a reference points at could not be loaded (untrusted, corrupted, unreadable)."""

    def __init__(self, ref: str, version: ModelVersion, reason: MlopsError,
                 still_serving: ModelVersion | None) -> None:
        self.ref = ref
        self.version = version
        self.reason = reason
        keeping = (f"still serving {still_serving.ref}" if still_serving is not None
                   else f"/predict answers 503 until {ref} points at a version that loads")
        super().__init__(f"cannot load {version.ref} ({ref}): {reason}; {keeping}")


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
    """The model `ref` names now. `client` (team mode) is the team server's: the
    reference is resolved through its read route and the model downloaded from it,
    checked against its digest; else the project's store and artifact folder."""

    def __init__(self, project: Project, ref: str, client: Any = None) -> None:
        self.project = project
        self.ref = ref
        self.client = client
        self.name, _, self.alias = parse_model_ref(ref)
        self._lock = threading.Lock()
        self.current: Loaded | None = None
        self.switches = 0
        self._refused: tuple[int, str] | None = None  # (version, digest) that failed to load
        self.refused: ModelNotLoaded | None = None  # why the version the ref names isn't served

    def _resolve(self) -> ModelVersion:
        if self.client is not None:
            from ..remote.store import RemoteStore

            return RemoteStore(self.client).models.resolve(self.ref)
        with Store.for_project(self.project) as store:
            return store.models.resolve(self.ref)

    def refresh(self) -> bool:
        """Load the version the reference points at now, if it changed. Thread-safe.

        Returns whether a new model was swapped in. Raises `NotFound` when the
        reference resolves to nothing, and `ModelNotLoaded` the first time a
        version fails to load (later calls skip that version silently).
        """
        with self._lock:
            version = self._resolve()
            key = (version.version, version.digest)
            current = self.current
            if current is not None and (current.version.version,
                                        current.version.digest) == key:
                self._refused, self.refused = None, None  # back on the version served
                return False
            if self._refused == key:
                return False
            try:
                loaded = self._load(version)
            except MlopsError as exc:
                self._refused = key
                self.refused = ModelNotLoaded(self.ref, version, exc,
                                              current.version if current else None)
                raise self.refused from None
            self._refused, self.refused = None, None
            self.current = loaded  # one assignment: requests see the old or the new model
            if current is not None:
                self.switches += 1
            return True

    def _load(self, version: ModelVersion) -> Loaded:
        """Read, verify and load one version's model; raises the store's or loader's error."""
        if self.client is not None:
            from ..remote.blobs import RemoteBlobs

            data = RemoteBlobs(self.client).read_bytes(version.digest)
        else:
            data = ArtifactStore(self.project.artifacts_dir).read_bytes(version.digest)
        model = load_model_bytes(data)
        columns = columns_of(version, model)
        return Loaded(version=version, model=model, columns=columns,
                      numeric=numeric_input(model, columns))
