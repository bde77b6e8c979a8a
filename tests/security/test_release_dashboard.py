"""Issue 9, point 2, as a reviewer sees it: the releases page shows the request's own
evidence as the verdict, and the requester's `gates run` on chosen data only as
labelled information. A real dashboard server and a real browser."""

from __future__ import annotations

from sklearn.datasets import load_breast_cancer

from jupyter_mlops.hashing import digest_file
from jupyter_mlops.project import Project
from tests.helpers import running_dashboard
from tests.security.test_release_integrity import mlops_cli, released  # noqa: F401 (fixture)


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
