"""Finding the project (the folder holding `.mlops/`) and reading its configuration."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InvalidInput, NotFound, ProjectNotFound

MLOPS_DIR = ".mlops"
CONFIG_FILE = "config.toml"

DEFAULT_CONFIG_TEXT = """\
# jupyter-mlops project configuration.

[tracking]
# A running run writes a heartbeat this often; a run whose heartbeat is older
# than `stale_after_seconds` is shown as `killed` (its process died).
heartbeat_seconds = 30
stale_after_seconds = 120

[registry]
# Aliases that move only through an approved release request.
protected_aliases = ["production"]
# Data on which `mlops gates run` evaluates both sides of a comparison.
# evaluation_data = "data/test.parquet"
# evaluation_target = "target"

# Gates every release is checked against: METRIC OP NUMBER, or
# METRIC OP ALIAS.METRIC [+|- NUMBER]. Metrics: accuracy, precision, recall,
# f1, roc_auc, brier, log_loss (classifiers); mae, rmse, r2 (regressors).
# [[gates]]
# check = "accuracy >= 0.9"
# [[gates]]
# check = "recall >= production.recall - 0.01"
# [[gates]]
# check = "brier <= 0.1"
# models = ["churn"]       # optional: only these models

[monitoring]
# Thresholds of `mlops monitor check` and the dashboard's verdicts.
max_error_rate = 0.05
max_latency_p95_ms = 250
alpha = 0.01              # KS / chi-squared drift tests (small samples)
psi_threshold = 0.2       # numeric drift on large samples
js_threshold = 0.1        # categorical drift on large samples
max_ece = 0.1             # expected calibration error, once labels arrive
# min_accuracy = 0.9

[store]
# Files under .mlops/ are private to your account (folders 0700, files 0600).
# For a team folder shared through a Unix group, set group_shared = true
# (folders 2770, files 0660).
# group_shared = false
# SQLite loses data on network filesystems (NFS, SMB/CIFS, ...) when several
# processes write at once, so a store there is refused. Set this only if you
# are sure a single process writes at a time.
# allow_network_fs = false

[audit]
# Audit rows are chained with an HMAC under a key kept outside the database:
# .mlops/audit.key (created by `mlops init`, mode 0600; 0640 with group_shared,
# since every member signs the rows they cause) unless you name another.
# key_file = "/etc/jupyter-mlops/audit.key"

# Who may do what, by login (the dashboard) or OS user (the CLI).
# Roles: reviewer (approves, rejects), admin (may also override failing gates).
# [users.alice]
# roles = ["reviewer"]
"""


@dataclass(frozen=True)
class TrackingConfig:
    heartbeat_seconds: float = 30.0
    stale_after_seconds: float = 120.0


@dataclass(frozen=True)
class GateConfig:
    check: str
    models: tuple[str, ...] = ()  # empty: every model


@dataclass(frozen=True)
class RegistryConfig:
    protected_aliases: tuple[str, ...] = ("production",)
    evaluation_data: str | None = None
    evaluation_target: str | None = None
    gates: tuple[GateConfig, ...] = ()
    roles: dict[str, tuple[str, ...]] = field(default_factory=dict)  # user -> roles


@dataclass(frozen=True)
class MonitoringConfig:
    max_error_rate: float = 0.05
    max_latency_p95_ms: float = 250.0
    alpha: float = 0.01  # KS and chi-squared significance
    psi_threshold: float = 0.2
    js_threshold: float = 0.1
    min_rows: int = 30
    min_accuracy: float | None = None
    max_ece: float = 0.1


@dataclass(frozen=True)
class StoreConfig:
    group_shared: bool = False  # modes for a team folder shared through a Unix group
    allow_network_fs: bool = False  # accept a store on NFS/SMB/CIFS (unsafe with many writers)
    audit_key_file: str | None = None  # default: .mlops/audit.key

    @property
    def dir_mode(self) -> int:
        return 0o2770 if self.group_shared else 0o700

    @property
    def file_mode(self) -> int:
        return 0o660 if self.group_shared else 0o600

    @property
    def audit_key_mode(self) -> int:
        """In a group-shared folder every member appends audit rows (registering a
        model does), so the group reads the key; nobody else ever does."""
        return 0o640 if self.group_shared else 0o600


@dataclass(frozen=True)
class Project:
    """A project root and the paths inside its `.mlops/` folder."""

    root: Path
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    registry: RegistryConfig = field(default_factory=RegistryConfig)
    monitoring: MonitoringConfig = field(default_factory=MonitoringConfig)
    store: StoreConfig = field(default_factory=StoreConfig)

    @property
    def home(self) -> Path:
        return self.root / MLOPS_DIR

    @property
    def db_path(self) -> Path:
        return self.home / "mlops.db"

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def audit_key_path(self) -> Path:
        """The audit chain's HMAC key: `[audit] key_file`, else `.mlops/audit.key`."""
        if self.store.audit_key_file is None:
            return self.home / "audit.key"
        path = Path(self.store.audit_key_file).expanduser()
        return path if path.is_absolute() else self.root / path


def find_project(start: str | os.PathLike[str] | None = None,
                 environ: Mapping[str, str] | None = None) -> Project:
    """Return the project governing `start` (default: the working directory).

    `MLOPS_HOME` in `environ` (default: `os.environ`) names the project root and
    wins over the walk up from `start`. Raises `ProjectNotFound`.
    """
    environ = os.environ if environ is None else environ
    override = environ.get("MLOPS_HOME")
    if override:
        root = Path(override).expanduser().resolve()
        if root.name == MLOPS_DIR:
            root = root.parent
        if not (root / MLOPS_DIR).is_dir():
            raise NotFound(
                f"MLOPS_HOME={override!r} holds no {MLOPS_DIR}/ folder; "
                f"run `mlops init {override}` or unset MLOPS_HOME"
            )
        return _load(root)
    here = Path(start if start is not None else os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / MLOPS_DIR).is_dir():
            return _load(folder)
    raise ProjectNotFound(str(here))


def init_project(root: str | os.PathLike[str]) -> tuple[Project, bool]:
    """Create `.mlops/` (folders and a default config) under `root`.

    Idempotent: an existing project keeps its content, but its folders and
    files get the modes the configuration asks for (private, or group-shared),
    so running it again fixes an older project's world-readable files. Returns
    the project and whether it was created now. The database is created by
    `Store.migrate()`, the audit key by `store.audit.create_key()` (it records
    where the log ends, so it needs the database).
    """
    root_path = Path(root).expanduser().resolve()
    if root_path.exists() and not root_path.is_dir():
        raise InvalidInput(f"cannot create a project in {root_path}: it is a file")
    home = root_path / MLOPS_DIR
    created = not home.exists()
    root_path.mkdir(parents=True, exist_ok=True)  # the user's folder: their umask applies
    make_dirs(home, 0o700)
    config = home / CONFIG_FILE
    if not config.exists():
        write_new_file(config, DEFAULT_CONFIG_TEXT.encode("utf-8"), 0o600)
    project = _load(root_path)
    apply_modes(project)
    if project.audit_key_path.parent == home:  # the key itself is written by the store
        _chmod_own(project.audit_key_path, project.store.audit_key_mode)
    return project, created


def apply_modes(project: Project) -> None:
    """Give `.mlops/`, its standard folders and files the configured modes.

    Folders 0700 and files 0600, or 2770 and 0660 with `[store] group_shared`
    (setgid: new files take the folder's group). Code that creates entries
    later derives their modes from the folder they go in (`modes_for`), so
    this is the one place where the configuration is read.
    """
    dir_mode, file_mode = project.store.dir_mode, project.store.file_mode
    home = project.home
    _chmod_own(home, dir_mode)
    for folder in (project.artifacts_dir, project.artifacts_dir / "tmp", project.cache_dir):
        make_dirs(folder, dir_mode)
        _chmod_own(folder, dir_mode)
    for name in (CONFIG_FILE, "mlops.db", "mlops.db-wal", "mlops.db-shm",
                 "cache/stat-cache.db", "cache/stat-cache.db-wal", "cache/stat-cache.db-shm"):
        _chmod_own(home / name, file_mode)


def _chmod_own(path: Path, mode: int) -> None:
    """chmod `path` (never through a link) if it exists and this account owns it; in a
    group-shared project the entries another member created stay as they are."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode) or st.st_uid != os.geteuid():
        return
    os.chmod(path, mode)


def modes_for(folder: str | os.PathLike[str]) -> tuple[int, int]:
    """(folder mode, file mode) for a new entry in `folder` under `.mlops/`.

    A setgid folder (what `group_shared = true` makes) gives 2770 / 0660,
    anything else the private 0700 / 0600. Deriving the modes from the parent
    lets low layers (the store, the blob store, the stat cache) create files
    with the right mode without being handed the configuration.
    """
    try:
        shared = os.stat(folder).st_mode & stat.S_ISGID
    except FileNotFoundError:
        shared = 0
    return (0o2770, 0o660) if shared else (0o700, 0o600)


def make_dirs(path: str | os.PathLike[str], mode: int | None = None) -> Path:
    """Create `path` and its missing parents with `mode` set explicitly (not via umask).

    `mode=None` takes the modes of the nearest existing parent (`modes_for`).
    Folders that already exist are left as they are.
    """
    target = Path(path)
    missing: list[Path] = []
    folder = target
    while not folder.exists():
        missing.append(folder)
        if folder.parent == folder:
            break
        folder = folder.parent
    if mode is None:
        mode = modes_for(folder)[0]
    for new in reversed(missing):
        try:
            os.mkdir(new, 0o700)
        except FileExistsError:
            continue  # created by a concurrent process: its creator sets the mode
        os.chmod(new, mode)
    return target


def write_new_file(path: Path, data: bytes, mode: int) -> bool:
    """Create `path` holding `data` with `mode`, unless it exists; never follows a link."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as out:
        os.fchmod(out.fileno(), mode)
        out.write(data)
    return True


def create_file_with_mode(path: str | os.PathLike[str]) -> None:
    """Create an empty file (if missing) with the mode its folder asks for.

    Used before SQLite opens a new database: SQLite creates the -wal and -shm
    files with the database file's mode, so setting it here makes them private
    too, with no moment at which any of them is world-readable.
    """
    file_mode = modes_for(Path(path).parent)[1]
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, file_mode)
    finally:
        os.close(fd)


def _load(root: Path) -> Project:
    config_path = root / MLOPS_DIR / CONFIG_FILE
    if not config_path.exists():
        return Project(root=root)
    import tomllib

    try:
        data = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{config_path}: not valid TOML: {exc}") from None
    tracking = data.get("tracking", {})
    try:
        config = TrackingConfig(
            heartbeat_seconds=float(tracking.get("heartbeat_seconds", 30.0)),
            stale_after_seconds=float(tracking.get("stale_after_seconds", 120.0)),
        )
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{config_path}: [tracking] values must be numbers: {exc}") from None
    if config.heartbeat_seconds <= 0 or config.stale_after_seconds <= config.heartbeat_seconds:
        raise InvalidInput(
            f"{config_path}: need 0 < heartbeat_seconds < stale_after_seconds, got "
            f"{config.heartbeat_seconds} and {config.stale_after_seconds}"
        )
    return Project(root=root, tracking=config, registry=_registry(data, config_path),
                   monitoring=_monitoring(data, config_path),
                   store=_store(data, config_path))


def _store(data: dict, config_path: Path) -> StoreConfig:
    section = data.get("store", {})
    audit = data.get("audit", {})
    if not isinstance(section, dict) or not isinstance(audit, dict):
        raise InvalidInput(f"{config_path}: [store] and [audit] must be tables")
    unknown = (set(section) - {"group_shared", "allow_network_fs"}) | {
        f"audit.{k}" for k in set(audit) - {"key_file"}}
    if unknown:
        raise InvalidInput(f"{config_path}: unknown setting {sorted(unknown)[0]!r} in "
                           "[store] or [audit]")
    flags = {}
    for name in ("group_shared", "allow_network_fs"):
        value = section.get(name, False)
        if not isinstance(value, bool):
            raise InvalidInput(f"{config_path}: [store] {name} must be true or false, got "
                               f"{value!r}")
        flags[name] = value
    key_file = audit.get("key_file")
    if key_file is not None and (not isinstance(key_file, str) or not key_file.strip()):
        raise InvalidInput(f"{config_path}: [audit] key_file must be a path, got {key_file!r}")
    return StoreConfig(**flags, audit_key_file=key_file)


def _monitoring(data: dict, config_path: Path) -> MonitoringConfig:
    section = data.get("monitoring", {})
    defaults = MonitoringConfig()
    values: dict = {}
    for name in ("max_error_rate", "max_latency_p95_ms", "alpha", "psi_threshold",
                 "js_threshold", "min_accuracy", "max_ece"):
        if name in section:
            try:
                values[name] = float(section[name])
            except (TypeError, ValueError):
                raise InvalidInput(f"{config_path}: [monitoring] {name} must be a number, got "
                                   f"{section[name]!r}") from None
    if "min_rows" in section:
        values["min_rows"] = int(section["min_rows"])
    unknown = set(section) - set(values)
    if unknown:
        raise InvalidInput(f"{config_path}: unknown [monitoring] setting "
                           f"{sorted(unknown)[0]!r}")
    return MonitoringConfig(**{**defaults.__dict__, **values})


def _registry(data: dict, config_path: Path) -> RegistryConfig:
    section = data.get("registry", {})
    gates_raw = data.get("gates", [])
    users = data.get("users", {})
    try:
        protected = tuple(str(a) for a in section.get("protected_aliases", ["production"]))
        gates = tuple(GateConfig(check=str(g["check"]),
                                 models=tuple(str(m) for m in g.get("models", [])))
                      for g in gates_raw)
        roles = {str(user): tuple(str(r) for r in body.get("roles", []))
                 for user, body in users.items()}
    except (TypeError, KeyError, AttributeError) as exc:
        raise InvalidInput(f"{config_path}: [registry], [[gates]] or [users] is malformed: "
                           f"{exc!r} (see the comments in a fresh `mlops init` config)") from None
    for user_roles in roles.values():
        unknown = set(user_roles) - {"reviewer", "admin"}
        if unknown:
            raise InvalidInput(f"{config_path}: unknown role {sorted(unknown)[0]!r} "
                               "(roles: reviewer, admin)")
    data_path = section.get("evaluation_data")
    target = section.get("evaluation_target")
    return RegistryConfig(protected_aliases=protected,
                          evaluation_data=None if data_path is None else str(data_path),
                          evaluation_target=None if target is None else str(target),
                          gates=gates, roles=roles)
