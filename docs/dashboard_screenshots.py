"""Take the README's dashboard screenshots (light and dark) from real data.

    python docs/dashboard_screenshots.py

Builds a throwaway project with the browser tests' data (three runs with stepped
metrics, two versions of `iris`, a prediction log with one drifted feature and
late labels, a release request with a failing gate), starts `mlops dashboard
--dev` on it and saves, with Debian's chromium at 1400 pixels wide:
docs/img/dashboard-monitoring-{light,dark}.png and
docs/img/dashboard-compare-{light,dark}.png.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))


def main() -> None:
    from playwright.sync_api import sync_playwright

    import jupyter_mlops as mlops
    from jupyter_mlops.store import Store
    from tests.helpers import running_dashboard
    from tests.test_dashboard_views import _log_predictions, _record_runs, _request_releases

    root = Path(tempfile.mkdtemp(prefix="mlops-shots-"))
    project = mlops.init(root)
    _record_runs(project)
    _request_releases(root)
    with Store(project.db_path) as store:
        _log_predictions(project, store)
    out = HERE / "img"
    with running_dashboard(root, "--dev", ready_path="/runs") as (port, _log), \
            sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                             args=["--no-sandbox"])
        base = f"http://127.0.0.1:{port}"
        for theme, panel_theme in (("light", "default"), ("dark", "dark")):
            page = browser.new_page(viewport={"width": 1400, "height": 1250})
            page.goto(f"{base}/monitoring?theme={panel_theme}")
            page.get_by_text("most severe first").wait_for()
            page.wait_for_timeout(2500)  # the canvases draw after their models arrive
            page.screenshot(path=str(out / f"dashboard-monitoring-{theme}.png"))
            page.set_viewport_size({"width": 1400, "height": 1350})
            page.goto(f"{base}/runs?theme={panel_theme}")
            picker = page.get_by_placeholder("e.g. 10 12 14")
            picker.fill("1 2 3")
            picker.press("Enter")
            page.get_by_text("Compared: runs 1, 2, 3").wait_for()
            page.wait_for_timeout(2500)
            page.screenshot(path=str(out / f"dashboard-compare-{theme}.png"))
            page.close()
        browser.close()


if __name__ == "__main__":
    main()
