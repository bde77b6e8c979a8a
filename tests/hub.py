"""A real JupyterHub for tests: `start_hub(folder)` runs `jupyterhub` on 127.0.0.1 (free
ports for the proxy, the Hub and the proxy's API), `DummyAuthenticator`, single-user
servers as the current OS user (`SimpleLocalProcessSpawner`, homes under `folder`),
users alice (group ml-reviewers), bob (group ml-users), carol (no group) and dave (a
Hub admin in no group), and the team server as a *managed* service `mlops` on a SQLite
home whose server.toml has [hub] (reviewer = group:ml-reviewers).

    hub = start_hub(folder)
    hub.url                             # http://127.0.0.1:PORT (the proxy)
    hub.service_url                     # hub.url + "/services/mlops"
    hub.token_for("alice")              # a new Hub API token of alice's (her own rights)
    hub.api("POST", "/users/bob/server")   # the Hub's REST API as an admin service
    hub.start_server("bob"); hub.execute("bob", token, code)   # code in bob's kernel
    hub.stop()

Needs `configurable-http-proxy` (npm) on PATH: `skip_without_proxy()` skips with the
reason, unless CI is set (then it fails). One hub per test module (it takes seconds).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from .helpers import free_port
from .team import mlops

SERVICE = "mlops"
GROUPS = {"ml-reviewers": ["alice"], "ml-users": ["bob"]}
USERS = ("alice", "bob", "carol", "dave")  # carol is in no group: the Hub grants her no access
HUB_ADMINS = ("dave",)  # in no group: every Hub scope, yet only default_roles here
HUB_SECTION = """
[hub]
default_roles = ["writer"]
[hub.roles]
reviewer = ["group:ml-reviewers"]
admin = ["group:ml-admins"]
"""

CONFIG = """\
# written by tests/hub.py: a throwaway JupyterHub on 127.0.0.1
import asyncio
import json
c = get_config()  # noqa: F821
settings = json.loads({settings!r})
c.JupyterHub.bind_url = settings["url"]
c.JupyterHub.public_url = settings["url"]
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = settings["hub_port"]
c.ConfigurableHTTPProxy.api_url = settings["proxy_api"]
c.ConfigurableHTTPProxy.command = [settings["chp"]]
c.JupyterHub.db_url = "sqlite:///" + settings["folder"] + "/hub.sqlite"
c.JupyterHub.cookie_secret_file = settings["folder"] + "/cookie_secret"
c.JupyterHub.pid_file = settings["folder"] + "/hub.pid"
c.JupyterHub.cleanup_servers = True
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allowed_users = set(settings["users"])
c.Authenticator.admin_users = set(settings["admins"])
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = settings["folder"] + "/homes/{{username}}"
c.Spawner.cmd = [settings["singleuser"]]
c.Spawner.environment = {{"PYTHONPATH": settings["pythonpath"],
                          "MLOPS_HUB_SERVICE": "mlops"}}  # README: the only service to trust
c.Spawner.args = settings["singleuser_args"]
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
c.JupyterHub.load_groups = {{name: {{"users": users}} for name, users in
                             settings["groups"].items()}}

# --- what a Hub admin writes (README, "On a JupyterHub") ---
c.JupyterHub.services = [
    {{"name": "mlops",
     "url": settings["service_url"],
     "command": settings["service_command"],
     "environment": {{"PYTHONPATH": settings["pythonpath"]}}}},
    {{"name": "test-admin", "api_token": settings["admin_token"]}},
]
c.JupyterHub.load_roles = [
    # who may reach the service at all
    {{"name": "mlops-users", "scopes": ["access:services!service=mlops"],
     "groups": ["ml-users", "ml-reviewers"]}},
    # the server token (JUPYTERHUB_API_TOKEN in a user's server and kernels) may too
    {{"name": "server", "scopes": ["users:activity!user", "access:servers!server",
                                  "access:services!service=mlops"]}},
    # --- the tests' own admin client ---
    {{"name": "test-admin", "services": ["test-admin"],
     "scopes": ["admin:users", "admin:servers", "tokens", "access:servers", "groups",
                "admin:groups"]}},
]
"""


def proxy_command() -> str | None:
    return shutil.which("configurable-http-proxy")


def skip_without_proxy() -> str:
    """configurable-http-proxy's path; skips without it (fails when CI is set)."""
    found = proxy_command()
    if found is None:
        reason = ("configurable-http-proxy is not installed (npm install -g "
                  "configurable-http-proxy; .ci/run does it)")
        if os.environ.get("CI"):
            pytest.fail(reason + " and CI is set")
        pytest.skip(reason)
    return found


@dataclass
class Hub:
    folder: Path
    port: int
    team_home: Path
    admin_token: str
    proc: subprocess.Popen | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.folder / "hub.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def service_url(self) -> str:
        return f"{self.url}/services/{SERVICE}"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def api(self, method: str, path: str, token: str | None = None,
            **kwargs: Any) -> requests.Response:
        """The Hub's REST API (/hub/api + path), as the admin service by default."""
        return requests.request(method, f"{self.url}/hub/api{path}",
                                headers={"Authorization": f"token {token or self.admin_token}"},
                                timeout=60, **kwargs)

    def token_for(self, user: str) -> str:
        """A new API token of `user`, with the user's own rights (what a person makes on
        the Hub's token page)."""
        answer = self.api("POST", f"/users/{quote(user, safe='')}/tokens", json={"note": "test"})
        assert answer.status_code in (200, 201), answer.text
        return answer.json()["token"]

    def service(self, method: str, path: str, token: str, **kwargs: Any) -> requests.Response:
        """The team server through the Hub's proxy, with `token`."""
        return requests.request(method, self.service_url + path, timeout=60,
                                headers={"Authorization": f"Bearer {token}",
                                         "X-Mlops-Api": "1"}, **kwargs)

    def start_server(self, user: str) -> Path:
        """Start `user`'s single-user server and wait until it is ready; its home."""
        answer = self.api("POST", f"/users/{user}/server")
        assert answer.status_code in (201, 202, 400), answer.text  # 400: already running
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            model = self.api("GET", f"/users/{user}").json()
            server = model.get("servers", {}).get("")
            if server and server.get("ready"):
                return self.folder / "homes" / user
            time.sleep(0.5)
        raise AssertionError(f"{user}'s server did not start in 180 s:\n{self.log_text()}")

    def execute(self, user: str, token: str, code: str, timeout: float = 180) -> str:
        """Run `code` in a new kernel of `user`'s server (the Jupyter Server's kernels
        API and its websocket, through the Hub's proxy); the stdout it printed.
        Raises AssertionError with the traceback when the code raised."""

        return asyncio.run(self._execute(user, token, code, timeout))

    async def _execute(self, user: str, token: str, code: str, timeout: float) -> str:
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect

        base = f"{self.url}/user/{user}/api/kernels"
        headers = {"Authorization": f"token {token}"}
        answer = requests.post(base, headers=headers, json={"name": "python3"}, timeout=60)
        assert answer.status_code == 201, answer.text
        kernel = answer.json()["id"]
        try:
            socket = await websocket_connect(HTTPRequest(
                f"ws://127.0.0.1:{self.port}/user/{user}/api/kernels/{kernel}/channels",
                headers=headers))
            msg_id = uuid.uuid4().hex
            socket.write_message(json.dumps({
                "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": user,
                           "session": uuid.uuid4().hex, "version": "5.3"},
                "parent_header": {}, "metadata": {}, "channel": "shell",
                "content": {"code": code, "silent": False, "store_history": False,
                            "user_expressions": {}, "allow_stdin": False}}))
            out: list[str] = []
            error = None
            deadline = time.monotonic() + timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"the code did not finish in {timeout} s: "
                                         f"{''.join(out)}")
                raw = await asyncio.wait_for(socket.read_message(), left)
                assert raw is not None, "the kernel's websocket closed"
                msg = json.loads(raw)
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind, content = msg["msg_type"], msg["content"]
                if kind == "stream":
                    out.append(content["text"])
                elif kind == "error":
                    error = "\n".join(content["traceback"])
                elif kind == "status" and content["execution_state"] == "idle":
                    break
            socket.close()
        finally:
            requests.delete(f"{base}/{kernel}", headers=headers, timeout=60)
        if error is not None:
            raise AssertionError(f"the kernel raised:\n{error}\nprinted:\n{''.join(out)}")
        return "".join(out)

    def start(self, settings: dict[str, Any]) -> None:
        config = self.folder / "jupyterhub_config.py"
        config.write_text(CONFIG.format(settings=json.dumps(settings)))
        log = self.log_path.open("a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(config)], cwd=self.folder,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"jupyterhub exited ({self.proc.returncode}):\n"
                                     f"{self.log_text()}")
            try:
                answer = requests.get(self.service_url + "/api/v1/version", timeout=2)
                if "X-Mlops-Api" in answer.headers:  # the service answers through the proxy
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.25)
        self.stop()
        raise AssertionError(f"the Hub and its mlops service did not answer in 120 s:\n"
                             f"{self.log_text()}")

    def stop(self) -> str:
        """SIGTERM the Hub (it stops the proxy, the service and the user servers); kill
        its process group if it hangs. Returns its log."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        return self.log_text()


def start_hub(folder: Path, registry_toml: str = "") -> Hub:
    """A Hub with the team server as its managed service `mlops` (see the module)."""
    hub, settings = prepare_hub(Hub, folder, registry_toml, HUB_SECTION)
    hub.start(settings)
    return hub


def prepare_hub(kind: type, folder: Path, registry_toml: str, hub_section: str
                ) -> tuple[Any, dict[str, Any]]:
    """Everything before a Hub starts: the team server's home (with `hub_section`), the
    users' homes, and the settings CONFIG reads; `kind` is `Hub` or a subclass."""
    chp = skip_without_proxy()
    folder = Path(folder)
    team_home = folder / "team-home"
    mlops(team_home, "init", "--db", f"sqlite:///{folder / 'team.db'}",
          "--artifacts", str(folder / "artifacts"))
    with (team_home / "server.toml").open("a") as toml:
        toml.write(hub_section)
    if registry_toml:
        (team_home / "registry.toml").write_text(registry_toml)
    (folder / "homes").mkdir()
    service_port = free_port()
    hub = kind(folder, free_port(), team_home, secrets.token_hex(32))
    pythonpath = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"),
                                             str(Path(__file__).resolve().parents[1])) if p)
    settings = {
        "url": hub.url, "hub_port": free_port(),
        "proxy_api": f"http://127.0.0.1:{free_port()}", "chp": chp,
        "folder": str(folder), "users": list(USERS), "groups": GROUPS,
        "admins": list(HUB_ADMINS),
        "singleuser": str(Path(sys.executable).with_name("jupyterhub-singleuser")),
        "singleuser_args": ["--allow-root"] if os.geteuid() == 0 else [],
        "pythonpath": pythonpath, "admin_token": hub.admin_token,
        "service_url": f"http://127.0.0.1:{service_port}",
        "service_command": [*server_command(team_home), "start", "--port",
                            str(service_port), "--behind-proxy"],
    }
    return hub, settings


def server_command(team_home: Path) -> list[str]:
    """`mlops server --home TEAM_HOME`, as a command line (add the subcommand)."""
    return [sys.executable, "-m", "jupyter_mlops.cli.main", "server", "--home", str(team_home)]


def hub_fixture(request: Any, tmp_path_factory: Any, registry_toml: str = "") -> Hub:
    """A started Hub whose stop is a finalizer of `request` (a module fixture's)."""
    hub = start_hub(tmp_path_factory.mktemp("hub"), registry_toml)
    request.addfinalizer(hub.stop)
    return hub
