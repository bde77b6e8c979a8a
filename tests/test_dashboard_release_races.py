"""Two reviewers with the same release open in two browsers: the first decision wins
(the registry decides inside one write transaction), the second is told who decided
it, and its card leaves the page instead of offering buttons that can only fail. And
who gets which button: a non-reviewer none, a reviewer no Approve on failing gates.
A real dashboard server, real sessions, Debian's chromium."""

from __future__ import annotations

import json

import pytest

import jupyter_mlops as mlops
from jupyter_mlops.dashboard.credentials import add_user
from jupyter_mlops.project import find_project
from jupyter_mlops.registry.identity import Identity
from jupyter_mlops.registry.releases import Registry
from jupyter_mlops.store import Store

from .helpers import running_dashboard
from .test_dashboard_views import HOSTILE, _record_runs, no_injected_html, sign_in


@pytest.fixture
def pending(tmp_path_factory):
    """iris:1 requested for production by bob (no gates apply); alice and carol review,
    dave has no role."""
    root = tmp_path_factory.mktemp("races")
    project = mlops.init(root)
    _record_runs(project)
    config = project.home / "config.toml"
    roles = {"alice": ["reviewer"], "carol": ["reviewer"], "dave": []}
    config.write_text(config.read_text() + "".join(
        f"\n[users.{user}]\nroles = {json.dumps(granted)}\n" for user, granted in roles.items()))
    project = find_project(root, environ={})
    with Store(project.db_path) as store:
        Registry(project, store).request_release("iris:1", "production",
                                                 Identity("bob", frozenset()), HOSTILE)
    creds = tmp_path_factory.mktemp("creds") / "credentials.json"
    for user in ("alice", "bob", "carol", "dave"):
        add_user(creds, user, f"{user}-password")
    with running_dashboard(root, "--auth", str(creds)) as (port, _log):
        yield f"http://127.0.0.1:{port}", project


def _decide(page, verb: str, reason: str) -> None:
    box = page.get_by_placeholder("why approve or reject")
    box.fill(reason)
    box.press("Tab")  # the text reaches the server on change
    page.get_by_role("button", name=verb).click()


def test_the_second_of_two_simultaneous_decisions_is_told_and_loses_its_buttons(
        pending, browser) -> None:
    base, project = pending
    alice, alice_dialogs = sign_in(browser, base, "alice", start="/releases")
    carol, _ = sign_in(browser, base, "carol", start="/releases")
    for page in (alice, carol):
        page.get_by_text("#1: iris:1").wait_for()
        assert page.get_by_role("button", name="Approve").count() == 1
    _decide(carol, "Approve", "carol checked it")
    carol.get_by_text("production now points at iris:1").wait_for()
    _decide(alice, "Reject", "alice thinks not")  # her page still shows the request
    alice.get_by_text("release request 1 is already approved (by carol)").wait_for()
    alice.get_by_text("No pending releases.").wait_for()  # the stale card is gone
    assert alice.get_by_role("button", name="Reject").count() == 0
    with Store(project.db_path) as store:
        decided = store.releases.get(1)
        assert (decided.status, decided.decided_by) == ("approved", "carol")
        assert [e.action for e in store.audit.entries(limit=50)
                if e.actor == "alice"] == []  # her click changed nothing
    no_injected_html(alice, alice_dialogs)


def test_a_user_without_the_reviewer_role_gets_no_button(pending, browser) -> None:
    base, _ = pending
    page, dialogs = sign_in(browser, base, "dave", start="/releases")
    page.get_by_text("#1: iris:1").wait_for()
    page.get_by_text("only reviewers decide releases").wait_for()
    assert page.get_by_role("button").filter(has_text="Approve").count() == 0
    assert page.get_by_role("button").filter(has_text="Reject").count() == 0
    assert page.get_by_text(HOSTILE).count() >= 1  # the reason and the run name, as text
    no_injected_html(page, dialogs)
