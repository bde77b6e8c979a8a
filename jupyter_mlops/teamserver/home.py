"""The server's home: `server.toml` (database, artifact store, allowed hosts) and
`audit.key` (the audit chain's key, which only the server holds).

Whoever can read the home is the server's admin: it names the database (with
any password in its URL) and holds the key; so it is made 0700 and its files
0600, and `mlops server token ...` works on it directly.
"""

from __future__ import annotations

import json
import os
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import Conflict, InvalidInput, NotFound, PermissionDenied
from ..hosts import check_host_name
from ..store import Store
from .hub import HubConfig, hub_toml, parse_hub_section

HOME_ENV = "MLOPS_SERVER_HOME"
DEFAULT_HOME = "~/.mlops-server"
CONFIG_NAME = "server.toml"
KEY_NAME = "audit.key"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
SQLITE_SCHEME = "sqlite:///"


def home_path(given: str | os.PathLike[str] | None = None) -> Path:
    """The server's home: `given` (--home), else `$MLOPS_SERVER_HOME`, else ~/.mlops-server."""
    text = os.fspath(given) if given else os.environ.get(HOME_ENV) or DEFAULT_HOME
    return Path(text).expanduser().absolute()


@dataclass(frozen=True)
class ServerConfig:
    """What server.toml holds."""

    db: str
    artifacts: str
    allow_hosts: tuple[str, ...] = field(default_factory=tuple)
    hub: HubConfig | None = None  # [hub]: run as a JupyterHub service (teamserver/hub.py)


def check_db_url(url: str) -> str:
    """A `postgresql://...` URL, or `sqlite:///path` made absolute. Raises `InvalidInput`."""
    if url.startswith(POSTGRES_SCHEMES):
        return url
    if url.startswith(SQLITE_SCHEME) and len(url) > len(SQLITE_SCHEME):
        path = Path(url[len(SQLITE_SCHEME):]).expanduser().absolute()
        return f"{SQLITE_SCHEME}{path}"  # sqlite:////abs/path: the path keeps its /
    raise InvalidInput(f"--db {url[:100]!r} refused: give postgresql://USER@HOST:PORT/DATABASE "
                       "(the team database) or sqlite:///PATH (one machine)")


class ServerHome:
    """An initialized server home. `ServerHome(path)` opens one (`NotFound` if it was
    never initialized); `ServerHome.init(...)` makes one."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = home_path(path)
        self.config_path = self.path / CONFIG_NAME
        self.key_path = self.path / KEY_NAME
        self.config = self._read()

    @classmethod
    def init(cls, path: str | os.PathLike[str] | None, db: str, artifacts: str) -> ServerHome:
        """Make the home (0700), write server.toml (0600), migrate the database and
        write the audit key (0600). Running it again with the same database and
        artifact store migrates and changes nothing else; with others, `Conflict`.

        `artifacts` is a folder, or an fsspec URL (`s3://bucket/path`, `memory://...`).
        Raises `InvalidInput` for a bad URL or location, `StoreUnavailable` when
        the database can't be reached.
        """
        from ..fsspec_artifacts import check_location, is_url

        home = home_path(path)
        db = check_db_url(db)
        location = check_location(artifacts)
        config = ServerConfig(db=db, artifacts=location)
        config_path = home / CONFIG_NAME
        if config_path.exists():
            old = cls(home).config
            if (old.db, old.artifacts) != (config.db, config.artifacts):
                raise Conflict(f"{config_path} already names database {_safe_url(old.db)} "
                               f"and artifacts {old.artifacts}: edit it, or init another "
                               "--home")
            config = old
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(home, 0o700)
        if not is_url(location):  # an fsspec store's folders appear as blobs are written
            Path(location).mkdir(mode=0o700, parents=True, exist_ok=True)
        if db.startswith(SQLITE_SCHEME):
            Path(db[len(SQLITE_SCHEME):]).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _write_private(config_path, _toml(config))
        opened = cls(home)
        with opened.open_store(create=True) as store:
            store.migrate()
            store.audit.create_key(0o600)
        return opened

    def _read(self) -> ServerConfig:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise NotFound(f"no server home at {self.path}: run `mlops server init --db URL "
                           "--artifacts DIR` (or give --home / MLOPS_SERVER_HOME)") from None
        if st.st_mode & 0o077:
            raise PermissionDenied(f"the server home {self.path} is open to group or others "
                                   f"(mode {stat.S_IMODE(st.st_mode):o}): it holds the audit "
                                   f"key and the database URL; run chmod 700 {self.path}")
        try:
            data = tomllib.loads(self.config_path.read_text())
        except FileNotFoundError:
            raise NotFound(f"{self.config_path} is missing: run `mlops server init`") from None
        except tomllib.TOMLDecodeError as exc:
            raise InvalidInput(f"{self.config_path} is not valid TOML: {exc}") from None
        server = data.get("server")
        if not isinstance(server, dict) or not isinstance(server.get("db"), str) \
                or not isinstance(server.get("artifacts"), str):
            raise InvalidInput(f"{self.config_path} needs [server] db = \"...\" and "
                               "artifacts = \"...\" (run `mlops server init`)")
        hosts = server.get("allow_hosts", [])
        if not isinstance(hosts, list):
            raise InvalidInput(f"{self.config_path}: allow_hosts must be a list of names")
        hub = data.get("hub")
        return ServerConfig(db=check_db_url(server["db"]), artifacts=server["artifacts"],
                            allow_hosts=tuple(check_host_name(h, "allow_hosts") for h in hosts),
                            hub=None if hub is None else parse_hub_section(
                                hub, str(self.config_path)))

    def open_artifacts(self) -> Any:  # -> ArtifactStore | FsspecArtifactStore
        """The blob store server.toml names: a folder, or an fsspec URL."""
        from ..fsspec_artifacts import open_artifact_store

        return open_artifact_store(self.config.artifacts)

    def open_store(self, *, create: bool = False) -> Store:
        """The team store, keyed with this home's audit key."""
        return Store(self.config.db, create=create, audit_key_path=self.key_path)


def _safe_url(url: str) -> str:
    """A database URL without its password, for messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        credentials, host = rest.rsplit("@", 1)
        return f"{scheme}://{credentials.split(':', 1)[0]}@{host}"
    return url


def _toml(config: ServerConfig) -> str:
    hosts = ", ".join(json.dumps(h) for h in config.allow_hosts)
    return ("# The team server's settings (`mlops server init` wrote them).\n"
            "[server]\n"
            f"db = {json.dumps(config.db)}\n"
            f"artifacts = {json.dumps(config.artifacts)}\n"
            "# names clients reach this server by, beside localhost (like --allow-host)\n"
            f"allow_hosts = [{hosts}]\n"
            + ("" if config.hub is None else "\n" + hub_toml(config.hub)))


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(text)
    os.replace(tmp, path)
