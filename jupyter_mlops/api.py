"""The module-level Python API, over one lazily created `Tracker` per process.

The tracker is made on first use (never at import), shared with the `%mlops`
magics so that `%mlops start` and `mlops.log_model(...)` record into the same
run. `use_tracker()` swaps it (tests, or a second project in one process).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .inspection import Comparison, RunDetail, compare_runs, describe_run
from .project import Project, apply_modes, init_project
from .store.records import ArtifactLink, DatasetVersion, ModelVersion, Run
from .tracking import ActiveRun, Tracker, open_project_store

if TYPE_CHECKING:  # imported when autolog is first switched on, not with the package
    from .autologging import AutologSession

_tracker: Tracker | None = None
_autolog: AutologSession | None = None


def tracker() -> Tracker:
    """The process's shared tracker, created on first call."""
    global _tracker
    if _tracker is None:
        _tracker = Tracker()
    return _tracker


def use_tracker(new: Tracker | None) -> Tracker | None:
    """Replace the shared tracker (None: make a fresh one on next use); return the old one."""
    global _tracker
    old, _tracker = _tracker, new
    return old


def autolog(*, model_name: str | None = None, children: int = 0,
            exclude_params: Iterable[str] = (), exclude_metrics: Iterable[str] = (),
            off: bool = False) -> AutologSession | None:
    """Record every scikit-learn `fit` from now on (`off=True`: stop, restore the methods).

    Each outermost fit records its params (`get_params(deep=True)`, minus names
    matching an `exclude_params` pattern), fit time and training metrics (minus
    `exclude_metrics`, `"*"` for none), the digests of X and y, a search's best
    params, best score and `cv_results_` (and its top `children` candidates as runs
    of their own), and with `model_name` the model as the next version of that name.
    Into the active run, else into a run of its own that ends with the notebook's
    cell. Calling it again replaces the settings. Returns the session (None when off).
    Raises `InvalidInput` for a bad model name, `children` or pattern list.
    """
    global _autolog
    from .autologging import AutologOptions, AutologSession
    from .autologging.session import ipython_shell

    options = None if off else AutologOptions(
        model_name=model_name, children=children,
        exclude_params=_patterns(exclude_params), exclude_metrics=_patterns(exclude_metrics))
    if _autolog is not None:
        _autolog.stop()
        _autolog = None
    if options is None:
        return None
    session = AutologSession(tracker(), options, shell=ipython_shell())
    session.start()
    _autolog = session
    return session


def autolog_session() -> AutologSession | None:
    """The running autolog session, or None."""
    return _autolog


def _patterns(values: Iterable[str]) -> tuple[str, ...]:
    return (values,) if isinstance(values, str) else tuple(values)


def init(path: str | os.PathLike[str] = ".") -> Project:
    """Create `.mlops/` under `path` with an up-to-date database; idempotent.

    Folders and files get private modes (or group-shared ones, per the config).
    Raises `NetworkFilesystem` when `.mlops/` is on NFS, SMB/CIFS, ... unless
    `[store] allow_network_fs = true`; `Conflict` when the audit key is missing
    but the log holds rows keyed with it (restore the key: a new one is refused).
    """
    project, _ = init_project(path)
    with open_project_store(project, create=True) as store:
        store.audit.create_key(project.store.audit_key_mode)  # records where the log ends
    apply_modes(project)  # the database files SQLite just created
    return project


def start_run(name: str | None = None, *, tags: Mapping[str, object] | None = None,
              params: Mapping[str, object] | None = None) -> ActiveRun:
    return tracker().start_run(name, tags=tags, params=params)


def active_run() -> ActiveRun | None:
    run = tracker().active_run
    return None if run is None or run.ended else run


def end_run(status: str = "finished") -> Run:
    return tracker().end_run(status)


def log_param(key: str, value: object) -> None:
    tracker().require_run().log_param(key, value)


def log_params(params: Mapping[str, object]) -> None:
    tracker().require_run().log_params(params)


def set_tags(tags: Mapping[str, object]) -> None:
    tracker().require_run().set_tags(tags)


def log_metric(key: str, value: float, step: int | None = None) -> None:
    tracker().require_run().log_metric(key, value, step)


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    tracker().require_run().log_metrics(metrics, step)


def log_dataset(data: Any, role: str = "input", name: str | None = None, keep: bool = False
                ) -> DatasetVersion:
    return tracker().require_run().log_dataset(data, role, name, keep)


def log_artifact(path: str | os.PathLike[str], name: str | None = None) -> list[ArtifactLink]:
    return tracker().require_run().log_artifact(path, name)


def log_model(model: Any, name: str, input_example: Any = None) -> ModelVersion:
    return tracker().require_run().log_model(model, name, input_example)


def log_predictions(model: str, inputs: Any, outputs: Any) -> int:
    """Log a batch of predictions of `model` (NAME:VERSION) for monitoring."""
    return tracker().require_run().log_predictions(model, inputs, outputs)


def load_model(ref: str, trusted: Iterable[str] | None = None) -> Any:
    """Load `name` (latest version) or `name:version`; the digest is verified first."""
    return tracker().load_model(ref, trusted)


def get_run(ref: str | int) -> Run:
    return tracker().get_run(ref)


def search_runs(filter: str | None = None, *, limit: int = 100, offset: int = 0) -> list[Run]:
    """Runs matching a filter (`metrics.acc > 0.9 and params.C = '0.5'`), newest first."""
    return tracker().search_runs(filter, limit=limit, offset=offset)


def show_run(ref: str | int) -> RunDetail:
    return describe_run(tracker().store, ref)


def compare(*refs: str | int) -> Comparison:
    return compare_runs(tracker().store, refs)
