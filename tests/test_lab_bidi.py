"""A pipeline named with a right-to-left override ("\u202enightly": run names refuse
such characters at the door, pipeline names do not) in the JupyterLab panel: the
override is shown as its code point in the Pipelines tab instead of printing the
rest of the line backwards ("Trojan Source"). A real JupyterLab with this tree's
build, Debian's chromium."""

from __future__ import annotations

from jupyter_mlops.store import Store
from jupyter_mlops.store.records import StepFailure

from .lab import running_lab

TOKEN = "mlops-bidi-token"
RLO = "\u202e"


def test_a_bidi_override_in_a_pipeline_name_is_shown_not_obeyed(project, tmp_path_factory,
                                                                 browser) -> None:
    with Store(project.db_path) as store:
        run = store.pipelines.start(f"{RLO}nightly", "p.yaml", "blake3:" + "0" * 64,
                                    "schedule", ["prep"])
        store.pipelines.update_step(run, "prep", status="failed", failure=StepFailure(
            kind="notebook", message=f"{RLO}cell 3 raised KeyError"))
        store.pipelines.finish(run, "failed", error="step prep failed")
    with running_lab(project.root, TOKEN, tmp_path_factory) as base:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{base}/lab?token={TOKEN}")
        page.locator('[data-id="jupyter-mlops-sidebar"]').click(timeout=60000)
        sidebar = page.locator("#jupyter-mlops-sidebar")
        sidebar.get_by_role("tab", name="Pipelines").click(timeout=60000)
        shown = sidebar.locator(f'.jp-mlops-pipeline[data-pipeline-id="{run}"]')
        shown.wait_for(timeout=30000)
        head = shown.locator(".jp-mlops-pipeline-head").inner_text()
        assert "<U+202E>nightly #" in head and RLO not in head
        assert RLO not in shown.inner_text()
        page.close()
