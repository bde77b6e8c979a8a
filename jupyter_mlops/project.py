"""Finding the project (the folder holding `.mlops/`), creating it, and the modes of
the files inside it. Its settings are read by `config.py`."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .config import (
    DEFAULT_CONFIG_TEXT,
    MonitoringConfig,
    RegistryConfig,
    StoreConfig,
    TrackingConfig,
    check_server_url,
    load_config,
)
from .errors import InvalidInput, NotFound, ProjectNotFound

MLOPS_DIR = ".mlops"
CONFIG_FILE = "config.toml"


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
    def spool_dir(self) -> Path:
        """Team mode: batches the server has not acknowledged yet (`mlops sync`)."""
        return self.home / "spool"

    def server_url(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The team server this project records into, or None (embedded mode).

        `MLOPS_URL` in `environ` (default: `os.environ`) wins over `[store] url`;
        both are checked by `config.check_server_url` (raises `InvalidInput`).
        """
        environ = os.environ if environ is None else environ
        override = environ.get("MLOPS_URL")
        if override:
            try:
                return check_server_url(override, allow_insecure=self.store.allow_insecure)
            except InvalidInput as exc:
                raise InvalidInput(f"MLOPS_URL: {exc}") from None
        return self.store.url

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
    tracking, registry, monitoring, store = load_config(root / MLOPS_DIR / CONFIG_FILE)
    return Project(root=root, tracking=tracking, registry=registry, monitoring=monitoring,
                   store=store)
