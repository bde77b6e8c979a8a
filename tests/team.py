"""A real `mlops server` for tests: `start_team_server(tmp, db_url)` makes a home,
one token per role, starts the server on a free 127.0.0.1 port and waits for it.

    server = start_team_server(tmp_path_factory.mktemp("team"))   # SQLite
    server = start_team_server(folder, fresh_database_url())      # PostgreSQL
    server.url                      # http://127.0.0.1:PORT
    server.tokens["writer"]         # a token per role: reader writer runner reviewer admin
    server.get("/api/v1/whoami", role="writer")   # requests.Response
    server.stop()                   # SIGTERM, kill if it hangs; returns its output

`team_server(request, tmp_path_factory, db="sqlite")` is the same as a fixture
body with the stop registered as a finalizer (one server per module:
`@pytest.fixture(scope="module")`). `server.restart()` starts it again on the
same home, database and port; `server.kill()` is kill -9.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from jupyter_mlops.team_protocol import API_VERSION, ROLES

from .helpers import free_port

USERS = {role: f"{role}-user" for role in ROLES}  # the user each role's token acts as


def mlops(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """`mlops server --home HOME ARGS` in a new process."""
    done = subprocess.run([sys.executable, "-m", "jupyter_mlops.cli.main", "server",
                           "--home", str(home), *args], capture_output=True, text=True,
                          timeout=120, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"mlops server {' '.join(args)} failed ({done.returncode}): "
                             f"{done.stdout}{done.stderr}")
    return done


@dataclass
class TeamServer:
    """A running `mlops server start` (a subprocess of the test)."""

    folder: Path
    home: Path
    db_url: str
    artifacts: Path | str  # a folder, or an fsspec URL
    port: int
    tokens: dict[str, str]
    args: tuple[str, ...] = ()
    proc: subprocess.Popen | None = None
    file_size_limit: int | None = None  # RLIMIT_FSIZE of the next start (a full disk)
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.folder / "server.log"

    @property
    def url(self) -> str:
        scheme = "https" if "--tls-cert" in self.args else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def verify(self) -> bool | str:
        """What requests checks the server's certificate with (its own cert under TLS)."""
        if "--tls-cert" in self.args:
            return self.args[self.args.index("--tls-cert") + 1]
        return True

    def headers(self, role: str | None = "admin", **extra: str) -> dict[str, str]:
        """Authorization (the token of `role`; None: no token) and X-Mlops-Api."""
        headers = {"X-Mlops-Api": str(API_VERSION), **extra}
        if role is not None:
            headers["Authorization"] = f"Bearer {self.tokens[role]}"
        return headers

    def request(self, method: str, path: str, role: str | None = "admin",
                **kwargs: Any) -> requests.Response:
        headers = {**self.headers(role), **kwargs.pop("headers", {})}
        return requests.request(method, self.url + path, headers=headers,
                                timeout=kwargs.pop("timeout", 60), verify=self.verify,
                                **kwargs)

    def get(self, path: str, role: str | None = "admin", **kwargs: Any) -> requests.Response:
        return self.request("GET", path, role, **kwargs)

    def post(self, path: str, role: str | None = "admin", **kwargs: Any) -> requests.Response:
        return self.request("POST", path, role, **kwargs)

    def start(self) -> None:
        """Start the server (again) and wait until it answers."""
        log = self.log_path.open("a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter_mlops.cli.main", "server", "--home",
             str(self.home), "start", "--port", str(self.port), *self.args],
            stdout=log, stderr=subprocess.STDOUT, preexec_fn=self._limits)
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"mlops server exited ({self.proc.returncode}):\n"
                                     f"{self.log_text()}")
            try:
                requests.get(self.url + "/api/v1/version", timeout=2, verify=self.verify)
                return
            except requests.ConnectionError:
                time.sleep(0.1)
        self.kill()
        raise AssertionError(f"mlops server did not answer within 60 s:\n{self.log_text()}")

    def _limits(self) -> None:
        if self.file_size_limit is not None:
            import resource

            resource.setrlimit(resource.RLIMIT_FSIZE, (self.file_size_limit,) * 2)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> str:
        """SIGTERM (kill after 30 s); returns what the server printed."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        return self.log_text()

    def kill(self) -> None:
        """kill -9: no clean stop at all."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def restart(self) -> None:
        self.stop()
        self.start()


def start_team_server(folder: Path, db_url: str | None = None, *args: str,
                      artifacts: str | None = None) -> TeamServer:
    """Init a home in `folder` on `db_url` (default: a SQLite file there) and `artifacts`
    (default: the folder `folder/artifacts`; or an fsspec URL), make one token per role,
    start the server on a free port; `args` go to `mlops server start`."""
    folder = Path(folder)
    home = folder / "home"
    location: Path | str = artifacts or folder / "artifacts"
    db_url = db_url or f"sqlite:///{folder / 'team.db'}"
    mlops(home, "init", "--db", db_url, "--artifacts", str(location))
    from jupyter_mlops.teamserver.home import ServerHome

    with ServerHome(home).open_store() as store:  # in-process: 5 CLI starts cost 5 s
        tokens = {role: store.tokens.create(USERS[role], [role])[1] for role in ROLES}
    server = TeamServer(folder, home, db_url, location, free_port(), tokens, tuple(args))
    try:
        server.start()
    except BaseException:
        server.kill()
        raise
    return server


def team_server(request: Any, tmp_path_factory: Any, db: str = "sqlite",
                *args: str) -> TeamServer:
    """A started server whose stop is a finalizer of `request` (a fixture's); `db` is
    "sqlite" or "postgresql" (a fresh database on the tests' cluster)."""
    folder = tmp_path_factory.mktemp("team")
    url = None
    if db == "postgresql":
        request.getfixturevalue("postgres_cluster")  # skips (fails under CI) without one
        from .postgres import fresh_database_url

        url = fresh_database_url("team")
    server = start_team_server(folder, url, *args)
    request.addfinalizer(server.stop)
    return server



def digest_of(data: bytes) -> str:
    import blake3

    return "blake3:" + blake3.blake3(data).hexdigest()


def record_run(server: TeamServer, name: str, *, params: dict[str, str] | None = None,
               metrics: dict[str, float] | None = None,
               files: dict[str, bytes] | None = None, model: str | None = None,
               role: str = "writer") -> dict[str, Any]:
    """Record a finished run through the server as `role` (its blobs uploaded first): its
    params, metrics, artifacts `files` (name -> bytes) and, with `model`, a model version
    of that name. Returns the server's answer (`run_id`, `models`)."""
    import uuid

    stream = uuid.uuid4().hex
    records: list[dict[str, Any]] = [
        {"op": "start", "run": {"uuid": stream, "name": name, "started_at": 1_700_000_000.0,
                                "source_kind": "notebook"}},
        {"op": "params", "params": params or {}},
        {"op": "metrics", "points": [[key, value, None, 1_700_000_001.0]
                                     for key, value in (metrics or {}).items()]}]
    blobs = dict(files or {})
    if model is not None:
        blobs[f"model {model} {stream}"] = f"model {model} {stream}".encode()
    for data in blobs.values():
        answer = server.request("PUT", f"/api/v1/blobs/{digest_of(data)}", role, data=data)
        assert answer.status_code == 200, answer.text
    for file_name, data in (files or {}).items():
        records.append({"op": "artifact", "name": file_name, "digest": digest_of(data),
                        "size": len(data), "kind": "artifact"})
    if model is not None:
        data = blobs[f"model {model} {stream}"]
        records.append({"op": "model", "name": model, "digest": digest_of(data),
                        "size": len(data), "flavor": "sklearn", "signature": None,
                        "profile": None})
    records.append({"op": "end", "status": "finished", "error": None})
    numbered = [{"seq": seq, "version": 1, **record} for seq, record in enumerate(records, 1)]
    answer = server.post("/api/v1/records", role, json={"stream": stream,
                                                         "records": numbered})
    assert answer.status_code == 200, answer.text
    return answer.json()
