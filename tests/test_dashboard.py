"""The dashboard in a real Panel server, driven by Playwright in Debian's chromium."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import jupyter_mlops as mlops
from jupyter_mlops.dashboard.credentials import add_user
from jupyter_mlops.store import Store
from jupyter_mlops.tracking import Tracker

from .helpers import running_dashboard

HOSTILE = "<img src=x onerror=alert(1)>"


def _grant_roles(project, roles: dict[str, list[str]]) -> None:
    """Roles live in the project's config.toml, the one source of roles."""
    config = project.home / "config.toml"
    lines = [f'\n[users.{user}]\nroles = {json.dumps(granted)}\n'
             for user, granted in roles.items()]
    config.write_text(config.read_text(encoding="utf-8") + "".join(lines), encoding="utf-8")


def _legacy_roles(path, user: str, roles: list[str]) -> None:
    """Give `user` roles inside the credentials file, as older versions wrote them."""
    data = json.loads(path.read_text())
    data["users"][user]["roles"] = roles
    path.write_text(json.dumps(data))


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory):
    """A project with two model versions, a pending release by bob, and a running server.

    One server for the module: the requester test runs while release #1 is
    pending, the approval test then approves it (file order).
    """
    root = tmp_path_factory.mktemp("dashboard")
    project = mlops.init(root)
    tracker = Tracker(project)
    old = mlops.use_tracker(tracker)
    try:
        X, y = load_iris(return_X_y=True, as_frame=True)
        with mlops.start_run(name=HOSTILE):
            mlops.log_metric("acc", 0.9)
            mlops.log_model(LogisticRegression(max_iter=300).fit(X, y), name="iris")
            mlops.log_model(LogisticRegression(max_iter=300, C=0.1).fit(X, y), name="iris")
    finally:
        tracker.close()
        mlops.use_tracker(old)
    with Store(project.db_path) as store:
        store.releases.request("iris", 1, "production", requester="bob",
                               reason="first release <b>bold?</b>",
                               evidence={"gates": [], "gates_passed": True,
                                         "candidate": {"ref": "iris:1", "metrics": {}}})
    _grant_roles(project, {"alice": ["reviewer"]})
    creds = tmp_path_factory.mktemp("creds") / "credentials.json"
    add_user(creds, "alice", "alice-password")
    add_user(creds, "bob", "bob-password")
    _legacy_roles(creds, "bob", ["admin", "reviewer"])  # ignored: config.toml decides
    with running_dashboard(root, "--auth", str(creds)) as (port, log):
        yield f"http://127.0.0.1:{port}", project, log


def chart_titles(page) -> list[str]:
    """The titles of the Bokeh charts on the page (drawn on a canvas, so read from
    Bokeh's document in the browser), once at least one is there."""
    page.wait_for_function("Bokeh.documents.length > 0 && [...Bokeh.documents[0].all_models]"
                           ".some(m => m.type == 'Title' && m.text)")
    return page.evaluate("[...Bokeh.documents].flatMap(d => [...d.all_models])"
                         ".filter(m => m.type == 'Title').map(m => m.text)")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # noqa: ANN002, ANN003
        return None


@pytest.mark.parametrize("path", ["/releases", "/models", "/runs", "/audit"])
def test_unauthenticated_requests_get_the_login_page(dashboard, path: str) -> None:
    base, _, _ = dashboard
    opener = urllib.request.build_opener(_NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as info:
        opener.open(base + path, timeout=10)
    assert info.value.code == 302 and "/login" in info.value.headers["Location"]
    page = urllib.request.urlopen(base + path, timeout=10).read().decode()
    assert "Sign in" in page and "iris" not in page


def test_artifacts_need_a_login_and_a_digest(dashboard) -> None:
    base, _, _ = dashboard
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(base + "/artifact/blake3:" + "0" * 64, timeout=10)
    assert info.value.code == 403


def test_a_wrong_password_is_refused(dashboard, browser) -> None:
    base, _, _ = dashboard
    page = browser.new_page()
    page.goto(base + "/login")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", "not-her-password")
    page.click("#login")
    assert "Wrong user name or password" in page.content()


def _login(browser, base: str, user: str, password: str, start: str = "/releases"):
    page = browser.new_context().new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(base + start)
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.click("#login")
    page.wait_for_url("**/releases")
    page.get_by_text("Pending releases").first.wait_for()
    return page, dialogs


def test_a_bookmark_with_a_trailing_slash_lands_on_the_page(dashboard, browser) -> None:
    base, _, _ = dashboard
    page, dialogs = _login(browser, base, "bob", "bob-password", start="/releases/")
    assert page.url == base + "/releases"
    assert dialogs == []


def test_the_requester_sees_no_approve_button(dashboard, browser) -> None:
    base, _, _ = dashboard
    page, _ = _login(browser, base, "bob", "bob-password")
    page.get_by_text("#1: iris:1").wait_for()
    assert page.get_by_text("bob (no role)").count() == 1  # the file's old roles are ignored
    assert page.get_by_role("button", name="Approve").count() == 0
    assert page.get_by_text("you requested this release").count() == 1
    assert page.get_by_text("first release <b>bold?</b>").count() == 1  # shown as text


def test_a_reviewer_approves_and_the_alias_moves(dashboard, browser) -> None:
    base, project, _ = dashboard
    page, dialogs = _login(browser, base, "alice", "alice-password")
    assert page.get_by_text("alice (reviewer)").count() == 1  # roles from config.toml
    page.get_by_role("button", name="Approve").click()
    page.get_by_text("Reason is required").first.wait_for()  # a reason is required
    page.get_by_placeholder("why approve or reject").fill("metrics checked, ship it")
    page.get_by_placeholder("why approve or reject").press("Tab")
    page.get_by_role("button", name="Approve").click()
    page.get_by_text("production now points at iris:1").wait_for()
    with Store(project.db_path) as store:
        assert store.releases.alias_version("iris", "production") == 1
    page.goto(base + "/audit")
    page.get_by_text("alias moved").first.wait_for()
    assert page.get_by_text("hash chain intact").count() == 1
    assert page.get_by_text("metrics checked, ship it").count() >= 1
    page.screenshot(path=str(project.root / "approved.png"), full_page=True)
    assert dialogs == []


def test_hostile_run_names_render_as_text(dashboard, browser) -> None:
    base, _, _ = dashboard
    page, dialogs = _login(browser, base, "alice", "alice-password")
    page.goto(base + "/runs")
    page.get_by_text(HOSTILE).first.wait_for()
    page.get_by_placeholder("e.g. 10 12 14").fill("1 1")  # one run: refused, said as text
    page.get_by_placeholder("e.g. 10 12 14").press("Enter")
    page.get_by_text("give two or more run ids").wait_for()
    assert page.locator("img[src=x]").count() == 0
    assert dialogs == []


def test_roles_left_in_the_credentials_file_are_reported_at_start(dashboard) -> None:
    _, _, log = dashboard
    warnings = [line for line in log.read_text().splitlines() if "are ignored" in line]
    assert len(warnings) == 1
    assert "bob" in warnings[0] and "config.toml" in warnings[0]


@pytest.mark.parametrize(("args", "message"), [
    ([], "needs a credentials file"),
    (["--dev", "--address", "0.0.0.0"], "only on localhost"),
    (["--auth", "missing.json"], "no credentials file"),
])
def test_the_dashboard_refuses_to_start_unsafely(project, args: list[str], message: str) -> None:
    result = subprocess.run([sys.executable, "-m", "jupyter_mlops.cli.main", "dashboard", *args],
                            capture_output=True, text=True, cwd=project.root, timeout=120)
    assert result.returncode == 1 and message in result.stderr


def test_plain_text_passwords_are_refused(tmp_path) -> None:
    from jupyter_mlops.dashboard.credentials import load_credentials
    from jupyter_mlops.errors import InvalidInput

    path = tmp_path / "creds.json"
    path.write_text(json.dumps({"cookie_secret": "x" * 40,
                                "users": {"alice": {"password": "hunter22"}}}))
    path.chmod(0o600)
    with pytest.raises(InvalidInput, match="plain-text passwords are refused"):
        load_credentials(path)


def test_the_monitoring_page_ties_charts_to_the_release(dashboard, browser) -> None:
    import numpy as np

    from jupyter_mlops.monitoring.predlog import PredictionLog, prediction_frame
    from jupyter_mlops.monitoring.profile import build_profile

    base, project, _ = dashboard
    X, _ = load_iris(return_X_y=True, as_frame=True)
    rng = np.random.default_rng(0)
    with Store(project.db_path) as store:
        if store.releases.get(1).status == "pending":  # the approval test may have run
            store.releases.decide(1, decision="approve", actor="alice", reason="ship it")
        store.predictions.save_profile("iris", 1, build_profile(X, rng.uniform(0, 1, len(X))))
        live = X.sample(200, replace=True, random_state=1)
        live["petal length (cm)"] += 3  # drifted
        frame = prediction_frame(live, rng.uniform(0, 1, 200), version=1,
                                 latency_ms=rng.uniform(1, 9, 200))
        PredictionLog(project).write(store, "iris", frame, "service")
    page, dialogs = _login(browser, base, "alice", "alice-password")
    page.goto(base + "/monitoring")
    page.get_by_text("200 predictions").wait_for()
    assert page.get_by_text("in force since release").count() == 1
    assert page.get_by_text("approved by alice").count() == 1
    page.get_by_text("most severe first").wait_for()  # drift, measured after the summary
    assert page.get_by_text("ALERT: iris:1 drift petal length (cm)").count() == 1
    assert page.get_by_text("ok: iris:1 drift sepal width (cm)").count() == 1
    titles = chart_titles(page)
    assert "latency p95" in titles and "iris:1 (release #1 to production)" in titles
    page.wait_for_function(  # the worst feature's distributions, drawn after the summary
        "[...Bokeh.documents[0].all_models].some(m => m.type == 'Title' && "
        "m.text.startsWith('petal length (cm): reference'))")
    assert dialogs == []


def test_a_long_queue_shows_every_card_and_a_later_one_can_be_decided(dashboard,
                                                                      browser) -> None:
    """The first cards come with the page, the rest once it is loaded: all are shown, and
    a card that came later approves like any other."""
    base, project, _ = dashboard
    with Store(project.db_path) as store:
        ids = [store.releases.request("iris", 2, f"canary-{i}", requester="bob",
                                      reason=f"queue {i}",
                                      evidence={"gates": [], "gates_passed": True,
                                                "candidate": {"ref": "iris:2", "metrics": {}}}
                                      ).id for i in range(6)]
    page, dialogs = _login(browser, base, "alice", "alice-password")
    for request_id in ids:
        page.get_by_text(f"#{request_id}: iris:2").wait_for()
    oldest = ids[0]  # listed last: among the cards sent after the page loaded
    page.locator(f".reason-{oldest} textarea").fill("queue checked")
    page.locator(f".reason-{oldest} textarea").press("Tab")
    page.locator(f".approve-{oldest} button").click()
    page.get_by_text("canary-0 now points at iris:2").wait_for()
    with Store(project.db_path) as store:
        assert store.releases.alias_version("iris", "canary-0") == 2
        assert store.releases.get(ids[1]).status == "pending"
    page.get_by_text("queue 1").wait_for()  # the others are listed again
    assert dialogs == []
