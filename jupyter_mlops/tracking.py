"""The run lifecycle: start, log, heartbeat, end.

A `Tracker` is one process's tracking session: it finds the project, opens the
store, and holds at most one active run. The `%mlops` magics and the module
level API (`jupyter_mlops.start_run`, ...) share one tracker per process; tests
build their own.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import numbers
import operator
import os
import sys
import threading
import time
import traceback
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from . import capture
from .artifacts import ArtifactStore, GcReport
from .datasets import describe_path, describe_table, is_dataframe, is_table
from .errors import InvalidInput, MlopsError, NoActiveRun, NotFound
from .hashing import StatCache, list_folder_files
from .models import FLAVOR, load_model_bytes, save_model, signature
from .project import Project, find_project
from .recorders import OUTBOX_ENV, GlueRecorder, Recorder, StoreRecorder
from .store import Store
from .store.ids import MAX_INTEGER, storable
from .store.records import DATASET_ROLES, ArtifactLink, DatasetVersion, ModelVersion, Run
from .store.runs import NewRun, check_key
from .table_digests import SUPPORTED_TABLES
from .validation import check_artifact_name, check_dataset_source, check_model_name


def open_project_store(project: Project, *, create: bool = False) -> Store:
    """Open (with `create`: create) `project`'s store, migrated to the current schema.

    The one way a project's store is opened: it refuses a store on a network
    filesystem (`NetworkFilesystem`) unless `[store] allow_network_fs = true`.
    """
    store = Store.for_project(project, create=create)
    try:
        if create or store.needs_migration():
            store.migrate()
    except BaseException:
        store.close()
        raise
    return store


def format_param(value: object) -> str:
    """Params are stored as text: strings as they are, other values as JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return str(value)


def check_metric(key: object, value: object, step: object) -> tuple[str, float, int | None]:
    check_key("metric", key)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidInput(f"metric {key!r} must be a number, got {type(value).__name__} "
                           f"{str(value)[:40]!r}")
    if step is not None:
        if isinstance(step, bool):
            raise InvalidInput(f"step of metric {key!r} must be an integer, got a bool")
        try:
            step = operator.index(step)
        except TypeError:
            raise InvalidInput(f"step of metric {key!r} must be an integer, "
                               f"got {step!r}") from None
        if not storable(step):
            raise InvalidInput(f"step of metric {key!r} is {step}, past the largest step a "
                               f"record holds ({MAX_INTEGER})")
    return key, float(value), step


class ActiveRun:
    """A run being recorded. Every call commits (or glues) before it returns.

    `id` is the store's run id, or None inside a pipeline step, where the
    runner creates the run when it ingests the step.
    """

    def __init__(self, tracker: Tracker, recorder: Recorder, run_id: int | None,
                 run_uuid: str, name: str | None, source: capture.Source) -> None:
        self._tracker = tracker
        self._recorder = recorder
        self.id = run_id
        self.uuid = run_uuid
        self.name = name
        self.source = source
        self.started_at = time.time()
        self.ended = False
        self.status = "running"
        self._heartbeat_stop = threading.Event()
        self._logged_params: set[str] = set()
        # True for a run opened on the user's behalf (autolog's run of a fit): the user's
        # next `start_run` ends it instead of refusing to start
        self.ends_when_replaced = False

    def __repr__(self) -> str:
        label = f" {self.name}" if self.name else ""
        return f"<ActiveRun {self.id if self.id is not None else 'step'}{label}>"

    # -- params, tags, metrics ---------------------------------------------

    def log_param(self, key: str, value: object) -> None:
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, object]) -> None:
        self._check_open()
        self._recorder.log_params(self.id, {k: format_param(v) for k, v in params.items()})
        self._logged_params.update(params)

    def _log_injected_params(self) -> None:
        """Record the parameters papermill injected into this kernel (its `# Parameters`
        cell), as params of the run, except those the notebook logged itself: an
        explicit `%mlops param` wins. Never fails the run: a param refused here is said
        once as a warning."""
        injected = {k: v for k, v in capture.injected_parameters().items()
                    if k not in self._logged_params}
        if not injected:
            return
        try:
            self.log_params(injected)
        except MlopsError as exc:
            warnings.warn(f"jupyter-mlops: papermill's parameters were not recorded: {exc}",
                          stacklevel=2)

    def set_tag(self, key: str, value: object) -> None:
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, object]) -> None:
        self._check_open()
        self._recorder.set_tags(self.id, {k: format_param(v) for k, v in tags.items()})

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        self._check_open()
        key, value, step = check_metric(key, value, step)
        self._recorder.log_metrics(self.id, [(key, value, step, time.time())])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log many metrics in one transaction (the primitive `log_metric` mirrors)."""
        self._check_open()
        now = time.time()
        points = []
        for key, value in metrics.items():
            key, value, checked_step = check_metric(key, value, step)
            points.append((key, value, checked_step, now))
        if points:
            self._recorder.log_metrics(self.id, points)

    def log_evaluation(self, metrics: Mapping[str, float],
                       datasets: Mapping[str, Any] | None = None) -> None:
        """Record an evaluation of this run's model, also after the run ended.

        A model is usually scored after the cell that trained it finished (autolog's
        `score(X_test, y_test)`); its figures belong with the run that made it, as
        MLflow's post-training metrics do. `datasets` maps a name to the in-memory
        table evaluated on (recorded by digest as an input). Only this call writes
        into an ended run; every other `log_*` still refuses.
        """
        now = time.time()
        points = []
        for key, value in metrics.items():
            key, number, _ = check_metric(key, value, None)
            points.append((key, number, None, now))
        tables = []
        for name, data in (datasets or {}).items():
            if not is_table(data):
                raise InvalidInput(f"log_evaluation takes {SUPPORTED_TABLES} as datasets, "
                                   f"got {type(data).__name__} for {name!r}")
            tables.append((describe_table(data), check_dataset_source(name)))
        if points:
            self._recorder.log_metrics(self.id, points)
        for version, source in tables:
            self._recorder.log_dataset(self.id, version, "input", source)

    # -- data, artifacts, models -------------------------------------------

    def log_dataset(self, data: Any, role: str = "input", name: str | None = None,
                    keep: bool = False) -> DatasetVersion:
        """Record a file, folder or in-memory table by content digest, as an input or output.

        A table is a pandas DataFrame or Series, a numpy array, a pyarrow Table,
        RecordBatch or array, or a polars DataFrame or Series. `keep=True` also stores
        a file's or folder's bytes in the artifact store (content-addressed: the same
        bytes are stored once), so `mlops reproduce` can restore them after the file
        changed.
        """
        self._check_open()
        if role not in DATASET_ROLES:
            raise InvalidInput(f"dataset role must be one of {', '.join(DATASET_ROLES)}, "
                               f"got {role!r}")
        if is_table(data):
            if keep:
                raise InvalidInput("keep=True stores a file's bytes; write the table to a "
                                   "file (e.g. df.to_parquet(PATH)) and log that path")
            version = describe_table(data)
            source = check_dataset_source(name or "dataframe")
        elif isinstance(data, (str, os.PathLike)):
            path = Path(data)
            source = check_dataset_source(name or self._tracker.display_path(path))
            version = describe_path(path, self._recorder.stat_cache,
                                    self._recorder.known_dataset)
            if keep:
                self._keep_dataset(path, source, version)
        else:
            raise InvalidInput(f"log_dataset takes a path or {SUPPORTED_TABLES}, "
                               f"got {type(data).__name__}")
        self._recorder.log_dataset(self.id, version, role, source)
        return version

    def _keep_dataset(self, path: Path, source: str, version: DatasetVersion) -> None:
        """Store the bytes just digested, under `datasets/SOURCE` (a folder's files under
        `datasets/SOURCE/...`), refusing bytes that changed since."""
        if Path(source).is_absolute():
            raise InvalidInput(f"keep=True keeps files of the project (reproduce restores "
                               f"them in place of the project's); {source} is outside it")
        base = check_artifact_name(f"datasets/{source}")
        if version.kind == "folder":
            files = [(check_artifact_name(f"{base}/{rel}"), full)
                     for rel, full in list_folder_files(path)]
            self._recorder.put_files(self.id, files, "dataset")
            return
        link = self._recorder.put_file(self.id, base, path.resolve(), "dataset")
        if link.digest != version.digest:
            raise MlopsError(f"{source} changed while it was being kept: its digest was "
                             f"{version.digest}, the bytes stored hash to {link.digest}; "
                             "log it again once nothing writes it")

    def log_artifact(self, path: str | os.PathLike[str], name: str | None = None
                     ) -> list[ArtifactLink]:
        """Store a file (or every file of a folder) and link it to the run."""
        self._check_open()
        source = Path(path)
        if not source.exists():
            raise NotFound(f"no file or folder {source}")
        base = check_artifact_name(name) if name is not None else self._default_name(source)
        if source.is_dir():
            # Links inside the folder are refused by the walk; names are checked there.
            pairs = [(check_artifact_name(f"{base}/{rel}"), full)
                     for rel, full in list_folder_files(source)]
            return self._recorder.put_files(self.id, pairs, "artifact")  # every file or none
        # The path the user named may be a link: they chose its target.
        return [self._recorder.put_file(self.id, base, source.resolve(), "artifact")]

    def _default_name(self, source: Path) -> str:
        try:
            relative = source.resolve().relative_to(Path.cwd().resolve()).as_posix()
        except ValueError:
            relative = source.name
        return check_artifact_name(relative)

    def log_model(self, model: Any, name: str, input_example: Any = None) -> ModelVersion:
        """Save a scikit-learn model with skops as the next version of `name`.

        `input_example`, a DataFrame of training inputs, gives the signature's dtypes and
        the reference profile that monitoring compares live inputs with.
        """
        self._check_open()
        check_model_name(name)
        data = save_model(model)
        if capture.reproducing() is not None:
            # A re-execution checks the model, it does not release one: the bytes are kept
            # with the run for `mlops reproduce` to compare, no version is registered.
            link = self._recorder.put_bytes(self.id, f"models/{name}", data, "model")
            return ModelVersion(name=name, version=None, run_id=self.id, digest=link.digest,
                                flavor=FLAVOR, signature=None, created_at=time.time())
        schemas = [d.schema for d in self._recorder.input_datasets(self.id) if d.schema]
        profile = None
        if input_example is not None and is_dataframe(input_example):
            from .monitoring.profile import build_profile, model_outputs, model_task

            profile = build_profile(input_example, model_outputs(model, input_example),
                                    model_task(model))
        return self._recorder.register_model(self.id, name, data, FLAVOR,
                                             signature(model, input_example, schemas), profile)

    def log_predictions(self, model: str, inputs: Any, outputs: Any) -> int:
        """Log a batch of predictions of `model` (NAME:VERSION) for monitoring."""
        self._check_open()
        if capture.reproducing() is not None:
            return 0  # a re-execution's predictions are not traffic: monitoring never sees them
        from .monitoring.predlog import prediction_frame
        from .store.models import parse_model_ref

        name, version, alias = parse_model_ref(model)
        if version is None or alias is not None:
            raise InvalidInput(f"log_predictions needs NAME:VERSION, got {model!r}")
        if not is_dataframe(inputs):
            raise InvalidInput("log_predictions takes the inputs as a pandas DataFrame")
        if len(inputs) != len(outputs):
            raise InvalidInput(f"{len(inputs)} input rows but {len(outputs)} outputs")
        frame = prediction_frame(inputs, outputs, version=version)
        self._recorder.log_predictions(self.id, name, frame)
        return len(frame)

    # -- lifecycle -----------------------------------------------------------

    def _check_open(self) -> None:
        if self.ended:
            raise MlopsError(f"run {self.id} has ended; start a new one")

    def start_heartbeat(self, db_path: Path | None, interval: float) -> None:
        """Refresh `heartbeat_at` from a daemon thread with its own connection (no
        `db_path`, in team mode: a heartbeat record goes through the recorder's queue)."""
        def beat() -> None:
            if db_path is None:
                while not self._heartbeat_stop.wait(interval):
                    self._recorder.heartbeat(self.id)
                return
            store = Store(db_path)
            try:
                while not self._heartbeat_stop.wait(interval):
                    store.runs.heartbeat(self.id)
            finally:
                store.close()

        threading.Thread(target=beat, name=f"mlops-heartbeat-{self.id}", daemon=True).start()

    def end(self, status: str = "finished", error: str | None = None) -> Run | None:
        """Store the source snapshot, then mark the run ended; ending twice is a no-op.

        Returns the recorded run, or None inside a pipeline step.
        """
        if not self.ended:
            self._heartbeat_stop.set()
            self._log_injected_params()
            notebook, digest = self._snapshot_source()
            self._note_readiness()
            self._recorder.end(self.id, status, error, notebook, digest)
            self.ended = True
            self.status = status
            if self._tracker.active_run is self:
                self._tracker.active_run = None
        if self.id is None:
            return None
        if self.server is not None:  # what the server has may still be on its way
            return Run(id=self.id, uuid=self.uuid, name=self.name, status=self.status,
                       started_at=self.started_at, ended_at=time.time(),
                       notebook=str(self.source.path) if self.source.path else None,
                       source_kind=self.source.kind, code_digest=None, git_commit=None,
                       git_branch=None, git_dirty=None, python=None, env_digest=None,
                       host=None, user=None, error=error)
        return self._tracker.store.runs.get(self.id)

    @property
    def server(self) -> str | None:
        """The team server this run records into, or None (the project's own store)."""
        client = getattr(self._recorder, "client", None)
        return getattr(client, "url", None)

    @property
    def unacknowledged(self) -> int:
        """Team mode: records of this ended run the server had not taken (spooled)."""
        return getattr(self._recorder, "unacknowledged", 0)

    def _note_readiness(self) -> None:
        """Tag a run that can't be re-executed from its record, with the reason
        (`reproduce.readiness`); a refusal is one warning, never a failed run."""
        from .reproduce.readiness import NOT_REPRODUCIBLE_TAG, not_reproducible

        reason = not_reproducible(self.source.kind, self.source.path)
        if reason is None:
            return
        try:
            self.set_tags({NOT_REPRODUCIBLE_TAG: reason})
        except MlopsError as exc:
            warnings.warn(f"jupyter-mlops: could not note whether run {self.id} is "
                          f"reproducible: {exc}", stacklevel=3)

    def _snapshot_source(self) -> tuple[str | None, str | None]:
        path = self.source.path
        if path is not None and path.is_file():
            kind = "notebook" if path.suffix == ".ipynb" else "source"
            self._recorder.put_file(self.id, f"source/{path.name}", path.resolve(), kind)
            return str(path), capture.code_digest(self.source)
        if self._tracker.history is not None:
            text = self._tracker.history()
            if text:
                self._recorder.put_bytes(self.id, "source/session.py", text.encode("utf-8"),
                                         "source")
        return None, None

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            self.end("finished")
        elif isinstance(exc, KeyboardInterrupt):
            self.end("killed", "KeyboardInterrupt")
        else:
            self.end("failed", "".join(traceback.format_exception_only(exc)).strip())


class Tracker:
    """One process's tracking session. Nothing is opened until first used."""

    def __init__(self, project: Project | None = None) -> None:
        self._project = project
        self._store: Store | None = None
        self._stat_cache: StatCache | None = None
        self._capture = capture.CaptureCache()
        self.active_run: ActiveRun | None = None
        # Set by the IPython extension: the session's input history, and the
        # error of the last executed cell (None when it succeeded).
        self.history: Callable[[], str] | None = None
        self.last_error: str | None = None
        self._atexit_registered = False
        self._remote: tuple[Any, Any] | None = None  # team mode: (Client, RecordQueue)

    @property
    def project(self) -> Project:
        if self._project is None:
            self._project = find_project()
        return self._project

    @property
    def store(self) -> Store:
        """The project's store; in team mode a `RemoteStore` whose reads the server answers
        (runs are recorded through `RemoteRecorder`, never written through this)."""
        if self._store is None:
            url = self.project.server_url()
            if url is not None:
                from .remote.store import RemoteStore

                self._store = RemoteStore(self._team_client(url))  # type: ignore[assignment]
            else:
                self._store = open_project_store(self.project, create=True)
        return self._store

    def _team_client(self, url: str) -> Any:
        from .remote.client import Client
        from .remote.credentials import token_for

        return Client(url, token_for(url))

    @property
    def artifacts(self) -> ArtifactStore:
        return ArtifactStore(self.project.artifacts_dir)

    @property
    def stat_cache(self) -> StatCache:
        if self._stat_cache is None:
            self._stat_cache = StatCache(self.project.cache_dir / "stat-cache.db")
        return self._stat_cache

    def display_path(self, path: Path) -> str:
        """A path as recorded: relative to the project root (the working directory in a
        pipeline step, whose kernel may run where no project exists; the scratch folder
        standing in for the root when `mlops reproduce` re-executes a run)."""
        reproducing = capture.reproducing()
        if os.environ.get(OUTBOX_ENV):
            base = Path.cwd()
        elif reproducing is not None:
            base = reproducing[1]
        else:
            base = self.project.root
        try:
            return path.resolve().relative_to(base.resolve()).as_posix()
        except ValueError:
            return str(path.resolve())

    def switch_project(self, project: Project) -> None:
        """Record into `project` from now on (e.g. after `%mlops init`)."""
        if self.active_run is not None and not self.active_run.ended:
            raise MlopsError(f"run {self.active_run.id} is active; end it before switching "
                             "projects")
        self.close()
        self._project = project

    def close(self) -> None:
        if self._remote is not None:
            self._remote[1].stop()  # what it could not send stays in the spool
            self._remote[0].close()
            self._remote = None
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._stat_cache is not None:
            self._stat_cache.close()
            self._stat_cache = None

    # -- runs ------------------------------------------------------------------

    def start_run(self, name: str | None = None, *, tags: Mapping[str, object] | None = None,
                  params: Mapping[str, object] | None = None,
                  source: capture.Source | None = None) -> ActiveRun:
        """Start recording a run; the previous active run, if any, must be ended first
        (unless autolog opened it on the user's behalf: `ends_when_replaced`)."""
        active = self.active_run
        if active is not None and not active.ended:
            if not active.ends_when_replaced:
                raise MlopsError(f"run {active.id} is still active; end it first "
                                 "(`%mlops end` or `run.end()`)")
            active.end()
        if name is not None and (not isinstance(name, str) or len(name) > 200
                                 or any(ord(c) < 32 for c in name)):
            raise InvalidInput(f"run name must be a string of at most 200 printable "
                               f"characters, got {str(name)[:80]!r}")
        source = source or capture.detect_source()
        recorder = self.recorder()
        # Inside a pipeline step the runner captures git and environment for the step.
        in_step = recorder.in_step
        git = None if in_step else self._capture.git_state(self._git_folder(source), source.path)
        env = None if in_step else self._capture.environment()
        run_uuid = uuid.uuid4().hex
        run_id = recorder.start(NewRun(
            uuid=run_uuid, name=name, started_at=time.time(), source_kind=source.kind,
            notebook=str(source.path) if source.path else None,
            code_digest=capture.code_digest(source),
            git_commit=git.commit if git else None, git_branch=git.branch if git else None,
            git_dirty=git.dirty if git else None, python=env.python if env else None,
            env_digest=env.digest if env else None,
            host=capture.host(), user=capture.user(), pid=os.getpid()), env)
        run = ActiveRun(self, recorder, run_id, run_uuid, name, source)
        self.active_run = run
        self.last_error = None
        if git and git.diff:
            recorder.put_bytes(run_id, "git/uncommitted.diff", git.diff, "git-diff")
        notes = self._notes(source, git, in_step)
        if notes or tags:
            run.set_tags({**notes, **(tags or {})})
        env_params = os.environ.get("MLOPS_RUN_PARAMS")  # set by `mlops run -p`
        if env_params:
            try:
                given = json.loads(env_params)
            except ValueError:
                given = None
            if not isinstance(given, dict):
                raise InvalidInput(f"MLOPS_RUN_PARAMS must hold a JSON object, got "
                                   f"{env_params[:80]!r}")
            run.log_params(given)
        if params:
            run.log_params(params)
        if run_id is not None:
            run.start_heartbeat(None if run.server else self.store.path,
                                self.project.tracking.heartbeat_seconds)
        if not self._atexit_registered:
            atexit.register(self._end_at_exit)
            self._atexit_registered = True
        return run

    def _notes(self, source: capture.Source, git: capture.GitState | None, in_step: bool
               ) -> dict[str, str]:
        """What the tracker notes of a run as it starts: the run it reproduces, the
        working folder when it is not the project's root (where the notebook's relative
        paths start), and a source no git commit holds (only the run's snapshot has it)."""
        notes = {}
        reproducing = capture.reproducing()
        if reproducing is not None:
            notes[capture.REPRODUCES_TAG] = reproducing[0]
        if not in_step:
            base = reproducing[1] if reproducing is not None else self.project.root
            workdir = capture.working_folder(base)
            if workdir is not None:
                notes[capture.WORKDIR_TAG] = workdir
        if git and git.source_tracked is False and source.path is not None:
            notes[capture.UNTRACKED_SOURCE_TAG] = source.path.name
        return notes

    def _git_folder(self, source: capture.Source) -> Path:
        """The source's folder when it lies in the project, else the project root."""
        root = self.project.root
        if source.path is not None and source.path.parent.is_relative_to(root):
            return source.path.parent
        return root

    def recorder(self) -> Recorder:
        """Glue into the notebook inside a pipeline step, send to the team server when the
        project names one (`[store] url`, `MLOPS_URL`), else write to the store."""
        outbox = os.environ.get(OUTBOX_ENV)
        if outbox:
            return GlueRecorder(outbox)
        url = self.project.server_url()
        if url is not None:
            return self._remote_recorder(url)
        from .monitoring.predlog import PredictionLog

        return StoreRecorder(self.store, self.artifacts, self.stat_cache,
                             PredictionLog(self.project))

    def _remote_recorder(self, url: str) -> Recorder:
        """A recorder for the next run; runs of this tracker share one client and queue."""
        from .remote.queue import RecordQueue
        from .remote.recorder import RemoteRecorder
        from .remote.spool import Spool

        if self._remote is None or self._remote[0].url != url:
            if self._remote is not None:
                self._remote[1].stop()
            client = self._team_client(url)
            self._remote = (client, RecordQueue(client, Spool.for_project(self.project)))
        client, queue = self._remote
        return RemoteRecorder(client, queue.spool, stat_cache=self.stat_cache,
                              ack_timeout=self.project.store.ack_timeout_seconds, queue=queue)

    def require_run(self) -> ActiveRun:
        if self.active_run is None or self.active_run.ended:
            raise NoActiveRun()
        return self.active_run

    def end_run(self, status: str = "finished", error: str | None = None) -> Run | None:
        return self.require_run().end(status, error)

    def _end_at_exit(self) -> None:
        """At interpreter exit, end a run left open: failed if the last cell or script raised."""
        run = self.active_run
        if run is None or run.ended:
            return
        error = self.last_error
        if error is None and self.history is None and getattr(sys, "last_value", None):
            error = "".join(traceback.format_exception_only(sys.last_value)).strip()
        try:
            run.end("failed" if error else "finished", error)
        except Exception as exc:  # the process is exiting: report, never raise
            print(f"jupyter-mlops: could not end run {run.id}: {exc}", file=sys.stderr)

    def get_run(self, ref: str | int) -> Run:
        return self.store.runs.resolve(ref)

    def search_runs(self, filter: str | None = None, *, limit: int = 100, offset: int = 0
                    ) -> list[Run]:
        return self.store.runs.search(filter, limit=limit, offset=offset)

    # -- models ------------------------------------------------------------------

    def get_model_version(self, ref: str) -> ModelVersion:
        return self.store.models.resolve(ref)

    def load_model(self, ref: str, trusted: Iterable[str] | None = None) -> Any:
        """Load `name` (latest), `name:version` or `name@alias`, verifying its digest first."""
        version = self.get_model_version(ref)
        if getattr(self.store, "remote", False):  # team mode: from the server, verified
            import io

            buffer = io.BytesIO()
            self.store.client.get_blob(version.digest, buffer)  # type: ignore[attr-defined]
            return load_model_bytes(buffer.getvalue(), trusted)
        data = self.artifacts.read_bytes(version.digest)
        return load_model_bytes(data, trusted)

    # -- integrity -----------------------------------------------------------------

    def verify(self, progress: Callable[[int, int], None] | None = None
               ) -> list[tuple[str, str]]:
        """Re-hash every stored artifact; return (digest, problem) for each bad one."""
        digests = list(self.store.artifacts.all_digests())
        store = self.artifacts
        problems = [(str(path), problem) for path, problem in store.unsafe_entries()]
        for index, (digest, _size) in enumerate(digests, 1):
            problem = store.check(digest)
            if problem:
                problems.append((digest, problem))
            if progress is not None:
                progress(index, len(digests))
        return problems

    def collect_garbage(self, older_than: float = 3600.0, delete: bool = False) -> GcReport:
        """Remove stale temporaries (the blob store's and the prediction log's) and report
        (with `delete`: remove) unreferenced blobs."""
        from .monitoring.predlog import PredictionLog

        now = time.time()
        report = self.artifacts.collect_garbage(self.store.artifacts.locked_references,
                                                older_than=older_than, delete=delete, now=now)
        removed, size, kept = PredictionLog(self.project).remove_stale_temporaries(older_than,
                                                                                   now)
        return dataclasses.replace(
            report, temporaries_removed=report.temporaries_removed + removed,
            temporary_bytes=report.temporary_bytes + size,
            temporaries_busy=report.temporaries_busy + kept)
