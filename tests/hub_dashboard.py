"""tests/hub.py's real JupyterHub, with the dashboard as a second managed service,
`mlops-dashboard` (`mlops server dashboard` on the same team-server home), reachable by
the groups ml-users, ml-reviewers and ml-guests, as the README's snippet sets it up;
server.toml's [hub] gives roles by group only (dave, in ml-guests, has none).

    hub = start_hub_with_dashboard(folder)
    hub.dashboard_url                   # hub.url + "/services/mlops-dashboard"
    hub.as_team_server("bob")           # tests/team.py's record_run etc. with bob's Hub token

tests/hub.py writes a fixed jupyterhub_config.py; `DashboardHub.start` appends the
dashboard's service and role to it, and starts the Hub as `Hub.start` does.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from .helpers import free_port
from .hub import CONFIG, GROUPS, Hub, prepare_hub, server_command

DASHBOARD = "mlops-dashboard"
# dave may reach the dashboard (the Hub grants ml-guests the access scope) but has no role
# here: no default role, so only [hub.roles] gives one
GUESTS = {"ml-guests": ["dave"]}
HUB_SECTION = """
[hub]
default_roles = []
[hub.roles]
writer = ["group:ml-users", "group:ml-reviewers"]
reviewer = ["group:ml-reviewers"]
"""
DASHBOARD_CONFIG = """
# --- the dashboard beside the team server (README, "The dashboard on a JupyterHub") ---
c.JupyterHub.services.append(
    {"name": "mlops-dashboard",
     "url": settings["dashboard_url"],
     "command": settings["dashboard_command"],
     "environment": {"PYTHONPATH": settings["pythonpath"]},
     "oauth_no_confirm": True})
c.JupyterHub.load_roles.append(
    {"name": "mlops-dashboard-users", "scopes": ["access:services!service=mlops-dashboard"],
     "groups": ["ml-users", "ml-reviewers", "ml-guests"]})
"""


class DashboardHub(Hub):
    """A `Hub` whose config also runs the dashboard; `start` waits for both services."""

    @property
    def dashboard_url(self) -> str:
        return f"{self.url}/services/{DASHBOARD}"

    def as_team_server(self, user: str) -> HubUser:
        return HubUser(self, self.token_for(user))

    def start(self, settings: dict[str, Any]) -> None:
        config = self.folder / "jupyterhub_config.py"
        config.write_text(CONFIG.format(settings=json.dumps(settings)) + DASHBOARD_CONFIG)
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
            if self._answers(self.service_url + "/api/v1/version", "X-Mlops-Api") and \
                    self._answers(self.dashboard_url + "/releases", "Location"):
                return
            time.sleep(0.25)
        self.stop()
        raise AssertionError(f"the Hub, its mlops service and its dashboard did not answer "
                             f"in 120 s:\n{self.log_text()}")

    @staticmethod
    def _answers(url: str, header: str) -> bool:
        try:  # the dashboard answers a page without a session with a redirect to log in
            return header in requests.get(url, timeout=2, allow_redirects=False).headers
        except requests.ConnectionError:
            return False


@dataclass
class HubUser:
    """tests/team.py's `TeamServer` calls (`request`, `post`), as one Hub user with a Hub
    token of theirs, through the Hub's proxy (the role argument is ignored)."""

    hub: Hub
    token: str

    def request(self, method: str, path: str, role: str | None = None,
                **kwargs: Any) -> requests.Response:
        return self.hub.service(method, path, self.token, **kwargs)

    def post(self, path: str, role: str | None = None, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, role, **kwargs)


def start_hub_with_dashboard(folder: Path, registry_toml: str = "") -> DashboardHub:
    """`tests.hub.start_hub`, plus the dashboard service (see the module)."""
    hub, settings = prepare_hub(DashboardHub, folder, registry_toml, HUB_SECTION)
    dashboard_port = free_port()
    settings.update({
        "groups": {**GROUPS, **GUESTS},
        "admins": [],  # dave is a guest here, not tests/hub.py's Hub admin
        "dashboard_url": f"http://127.0.0.1:{dashboard_port}",
        "dashboard_command": [*server_command(hub.team_home), "dashboard", "--port",
                              str(dashboard_port)],
    })
    hub.start(settings)
    return hub
