"""Issue 9, point 2, as a reviewer sees it: the releases page shows the request's own
evidence as the verdict, and the requester's `gates run` on chosen data only as
labelled information; evaluation data changed since the last release is flagged and
takes a tick to approve; evidence judged by other gates than today's can't be
approved. A real dashboard server and a real browser."""

from __future__ import annotations

import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from jupyter_mlops import capture
from jupyter_mlops.hashing import digest_file
from jupyter_mlops.project import Project
from jupyter_mlops.registry.identity import identity_for
from jupyter_mlops.store import Store
from tests.helpers import running_dashboard
from tests.security.test_release_integrity import (  # noqa: F401 (released is a fixture)
    EVALUATION,
    GATES,
    mlops_cli,
    registry_of,
    released,
    users,
)


def test_the_releases_page_labels_chosen_data_as_information(released: Project,  # noqa: F811
                                                             browser) -> None:
    frame = load_breast_cancer(as_frame=True).frame
    chosen = released.root / "chosen.csv"
    frame[frame["target"] == 1].to_csv(chosen, index=False)
    assert mlops_cli(released, "gates", "run", "cancer:2", "--data", "chosen.csv",
                     "--target", "target").returncode == 0
    assert mlops_cli(released, "release", "request", "cancer:2", "--to", "production",
                     "--reason", "the gates pass").returncode == 0
    with running_dashboard(released.root, "--dev", ready_path="/releases") as (port, _):
        base = f"http://127.0.0.1:{port}"
        page = browser.new_page()
        page.goto(base + "/releases")
        page.get_by_text("#2: cancer:2").wait_for()
        # Panel renders into shadow roots: Playwright's locators look inside them.
        assert page.get_by_text("Gates (the verdict)").count() == 1
        assert page.get_by_text(digest_file(released.root / "eval.parquet")).count() >= 1
        assert page.get_by_text("information only, not the verdict").count() == 1
        assert page.get_by_text(digest_file(chosen), exact=True).count() == 1
        # The verdict fails; the only PASS is the requester's run on chosen data.
        assert page.get_by_role("cell", name="FAIL", exact=True).count() == 1
        assert page.get_by_role("cell", name="PASS", exact=True).count() == 1
        assert page.get_by_role("button", name="Approve").count() == 0


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.UndefinedMetricWarning")  # one class
def test_changed_evaluation_data_is_flagged_and_takes_the_checkbox(released: Project,  # noqa: F811
                                                                   browser) -> None:
    """The requester swapped in easy data: the page says so, and approving takes the tick."""
    me = capture.user()
    (released.home / "config.toml").write_text(EVALUATION + GATES + users("alice", me))
    data = released.root / "eval.parquet"
    old = digest_file(data)
    frame = pd.read_parquet(data)
    frame[frame["target"] == 1].to_parquet(data)
    new = digest_file(data)
    registry = registry_of(released)
    try:
        request = registry.request_release("cancer:2", "production",
                                           identity_for("bob", registry.project), "passes")
    finally:
        registry.store.close()
    assert request.evidence["gates_passed"] is True
    with running_dashboard(released.root, "--dev", ready_path="/releases") as (port, _):
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/releases")
        page.get_by_text("#2: cancer:2").wait_for()
        page.get_by_text("Evaluation data changed since release #1").wait_for()
        assert page.get_by_text(old, exact=True).count() == 1
        assert page.get_by_text(new, exact=True).count() >= 1
        page.get_by_placeholder("why approve or reject").fill("looks fine")
        page.get_by_placeholder("why approve or reject").press("Tab")
        page.get_by_role("button", name="Approve").click()
        page.get_by_text("then approve with --accept-data-change").wait_for()
        page.screenshot(path=str(released.root / "data-changed.png"), full_page=True)
        with Store(released.db_path) as store:
            assert store.releases.alias_version("cancer", "production") == 1
        tick = page.locator(f".accept-data-{request.id} input[type=checkbox]")
        assert page.get_by_text("I accept the changed evaluation data (recorded in").count() == 1
        tick.check()
        page.get_by_role("button", name="Approve").click()
        page.get_by_text("production now points at cancer:2").wait_for()
    with Store(released.db_path) as store:
        assert store.releases.alias_version("cancer", "production") == 2
        (accepted,) = [e for e in store.audit.entries()
                       if e.action == "evaluation data change accepted"]
    assert accepted.actor == me and accepted.payload["from"] == old
    assert accepted.payload["to"] == new


def test_evidence_judged_by_a_weakened_gate_has_no_approve_button(released: Project,  # noqa: F811
                                                                  browser) -> None:
    me = capture.user()
    weak = '\n[[gates]]\ncheck = "accuracy >= 0.5"\n'
    (released.home / "config.toml").write_text(EVALUATION + weak + users("alice", me))
    registry = registry_of(released)
    try:
        registry.request_release("cancer:2", "production", identity_for("bob", registry.project),
                                 "passes")
    finally:
        registry.store.close()
    (released.home / "config.toml").write_text(EVALUATION + weak.replace("0.5", "0.9")
                                               + users("alice", me))
    with running_dashboard(released.root, "--dev", ready_path="/releases") as (port, _):
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/releases")
        page.get_by_text("#2: cancer:2").wait_for()
        page.get_by_text("evidence stale: the gates for 'cancer' changed").wait_for()
        assert page.get_by_role("button", name="Approve").count() == 0
        assert page.get_by_role("button", name="Reject").count() == 1
