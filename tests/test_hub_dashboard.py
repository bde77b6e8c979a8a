"""The dashboard beside the team server as a JupyterHub service, on a real Hub
(tests/hub_dashboard.py) in Debian's chromium: people sign in through the Hub's own
login (OAuth, no token, no second password), their roles come from Hub groups as the
server's do, and decisions are recorded under their Hub names."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests

from jupyter_mlops.dashboard.hub import HubSignIn
from jupyter_mlops.errors import InvalidInput
from jupyter_mlops.store import codec
from jupyter_mlops.teamserver.home import ServerHome
from jupyter_mlops.teamserver.hub import HubConfig

from .hub_dashboard import DashboardHub, start_hub_with_dashboard
from .team import mlops, record_run

PREFIX = "/services/mlops-dashboard"


@pytest.fixture(scope="module")
def hub(request, tmp_path_factory) -> DashboardHub:
    """A Hub with the team server and the dashboard as services; bob recorded churn:1
    through the team server with his own Hub token."""
    hub = start_hub_with_dashboard(tmp_path_factory.mktemp("hub"))
    request.addfinalizer(hub.stop)
    made = record_run(hub.as_team_server("bob"), "trained-by-bob", metrics={"acc": 0.9},
                      model="churn")
    assert made["models"], made
    return hub


def request_release(hub: DashboardHub, alias: str) -> int:
    """bob asks, through the team server with his Hub token, for churn:1 -> `alias`."""
    answer = hub.as_team_server("bob").post("/api/v1/releases", json={
        "model": "churn:1", "alias": alias, "reason": "better recall"})
    assert answer.status_code == 200, answer.text
    return codec.decode(answer.json()["request"]).id


def hub_lookups(hub: DashboardHub, user: str) -> int:
    """How many times the Hub was asked who a token of `user`'s is (its request log)."""
    return hub.log_text().count(f"GET /hub/api/user ({user}@")


def hub_login(browser, hub: DashboardHub, user: str):
    """A fresh browser that opened the dashboard and logged in on the Hub's own page
    (DummyAuthenticator: any password)."""
    page = browser.new_context().new_page()
    page.goto(hub.dashboard_url + "/releases")
    assert urlsplit(page.url).path == "/hub/login"  # the Hub's page, not ours
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", "any")
    page.click("#login_submit")
    return page


def test_a_page_without_a_session_goes_to_the_hubs_oauth(hub) -> None:
    page = requests.get(hub.dashboard_url + "/releases", allow_redirects=False, timeout=30)
    assert page.status_code == 302
    login_url = urljoin(page.url, page.headers["Location"])
    assert urlsplit(login_url).path == f"{PREFIX}/login"
    login = requests.get(login_url, allow_redirects=False, timeout=30)
    assert login.status_code == 302
    target = urlsplit(login.headers["Location"])
    query = parse_qs(target.query)
    assert target.path == "/hub/api/oauth2/authorize"
    assert query["client_id"] == ["service-mlops-dashboard"]
    assert query["redirect_uri"] == [f"{PREFIX}/oauth_callback"]
    assert query["code_challenge_method"] == ["S256"] and query["state"]


@pytest.mark.parametrize(("path", "target"), [
    ("", f"{PREFIX}/"),  # ./login from the bare prefix would leave it
    ("/releases/", f"{PREFIX}/releases"),
])
def test_the_bare_prefix_and_trailing_slashes_go_to_one_url_under_it(hub, path,
                                                                      target) -> None:
    answer = requests.get(hub.dashboard_url + path, allow_redirects=False, timeout=30)
    assert answer.status_code == 302 and answer.headers["Location"] == target


def test_a_callback_without_its_state_cookie_is_refused(hub) -> None:
    answer = requests.get(hub.dashboard_url + "/oauth_callback?code=x&state=y", timeout=30)
    assert answer.status_code == 403
    assert "started in another browser or expired" in answer.text


def test_bob_sees_his_own_request_without_an_approve_button(hub, browser) -> None:
    request_id = request_release(hub, "staging")
    page = hub_login(browser, hub, "bob")
    page.wait_for_url(f"**{PREFIX}/releases")
    page.get_by_text(f"#{request_id}: churn:1").wait_for()
    assert page.get_by_text("bob (writer)").count() == 1  # roles from his Hub groups
    page.get_by_role("link", name="Runs").click()  # the page links stay under the prefix
    page.wait_for_url(f"**{PREFIX}/runs")
    page.get_by_text("trained-by-bob").first.wait_for()
    page.goto(hub.dashboard_url + "/releases")
    page.get_by_text(f"#{request_id}: churn:1").wait_for()
    assert page.get_by_text("you requested this release").count() == 1
    assert page.get_by_role("button", name="Approve").count() == 0
    assert page.get_by_role("button", name="Reject").count() == 0
    page.get_by_text("sign out").click()  # the session ends, then the Hub's logout
    page.wait_for_url("**/hub/**")
    page.goto(hub.dashboard_url + "/releases")
    assert urlsplit(page.url).path == "/hub/login"  # signed out of the Hub too


def test_alice_signs_in_through_the_hub_and_approves_bobs_request(hub, browser) -> None:
    request_id = request_release(hub, "production")
    page = hub_login(browser, hub, "alice")
    page.wait_for_url(f"**{PREFIX}/releases")
    page.get_by_text(f"#{request_id}: churn:1").wait_for()
    assert page.get_by_text("alice (reviewer, writer)").count() == 1  # group ml-reviewers
    asked = hub_lookups(hub, "alice")
    assert asked == 1  # at sign-in, by the OAuth callback
    for name in ("runs", "models", "releases"):  # each page and its websocket
        page.goto(f"{hub.dashboard_url}/{name}")
        page.get_by_text("alice (reviewer, writer)").wait_for()
    assert hub_lookups(hub, "alice") == asked  # her Hub token's answer came from the cache
    box = page.locator(f".reason-{request_id} textarea")
    box.fill("evidence checked")
    box.press("Tab")
    shots = os.environ.get("MLOPS_SCREENSHOTS")  # a folder: docs/img refreshes the README's
    if shots:
        page.screenshot(path=str(Path(shots) / "hub-dashboard.png"))
    page.locator(f".approve-{request_id} button").click()
    page.get_by_text("production now points at churn:1").wait_for()
    with ServerHome(hub.team_home).open_store() as store:  # the team server's database
        decided = store.releases.get(request_id)
        assert decided.status == "approved" and decided.decided_by == "alice"
        assert decided.requester == "bob"
        assert store.releases.alias_version("churn", "production") == 1
        actors = {entry.actor for entry in store.audit.entries(subject="churn:1")}
        assert store.audit.verify().ok
    assert {"bob", "alice"} <= actors


def test_a_hub_user_outside_the_groups_gets_403(hub, browser) -> None:
    page = hub_login(browser, hub, "carol")  # logged in on the Hub, in no group
    answer = page.goto(hub.dashboard_url + "/releases")
    assert answer is not None and answer.status == 403
    assert "churn" not in page.content()
    assert requests.get(hub.dashboard_url + "/releases", timeout=30,
                        cookies={c["name"]: c["value"] for c in page.context.cookies()},
                        allow_redirects=False).status_code == 302  # no session of ours


def test_a_hub_user_the_hub_lets_in_but_with_no_role_here_gets_403(hub, browser) -> None:
    page = hub_login(browser, hub, "dave")  # ml-guests: access to the service, no role
    page.get_by_text("has no role here").wait_for()
    assert urlsplit(page.url).path == f"{PREFIX}/oauth_callback"
    assert "churn" not in page.content()
    # no session was opened: the page goes through the Hub again, to the same refusal
    answer = page.goto(hub.dashboard_url + "/releases")
    assert answer is not None and answer.status == 403
    assert "Hub user 'dave' has no role here" in page.content()


SERVICE_ENV = {"JUPYTERHUB_API_TOKEN": "t" * 32, "JUPYTERHUB_API_URL": "http://127.0.0.1:1/hub/api",
               "JUPYTERHUB_SERVICE_NAME": "mlops-dashboard",
               "JUPYTERHUB_CLIENT_ID": "service-mlops-dashboard",
               "JUPYTERHUB_SERVICE_PREFIX": "/services/mlops-dashboard/",
               "JUPYTERHUB_OAUTH_CALLBACK_URL": "/services/mlops-dashboard/oauth_callback"}


@pytest.mark.parametrize(("change", "error"), [
    ({"JUPYTERHUB_SERVICE_PREFIX": ""}, "JUPYTERHUB_SERVICE_PREFIX is not set"),
    ({"JUPYTERHUB_API_TOKEN": ""}, "JUPYTERHUB_API_TOKEN is not set"),
    ({"JUPYTERHUB_OAUTH_CALLBACK_URL": "/elsewhere/callback"},
     "the service's oauth_redirect_uri is /elsewhere/callback"),
])
def test_an_incomplete_hub_environment_is_one_clear_error(change, error) -> None:
    with pytest.raises(InvalidInput, match=error):
        HubSignIn(HubConfig(), {**SERVICE_ENV, **change})


def test_under_a_hub_a_server_home_without_hub_roles_refuses_to_start(tmp_path) -> None:
    home = tmp_path / "home"
    mlops(home, "init", "--db", f"sqlite:///{tmp_path / 'team.db'}", "--artifacts",
          str(tmp_path / "artifacts"))
    done = subprocess.run([sys.executable, "-m", "jupyter_mlops.cli.main", "server", "--home",
                           str(home), "dashboard", "--port", "1"], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **SERVICE_ENV})
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().count("\n") == 0 and "has no [hub] section" in done.stderr
