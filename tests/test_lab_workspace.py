"""The panel as a workspace, in a real JupyterLab driven by Playwright in Debian's
chromium: a run's detail and a compare open as wide main-area tabs with metric charts
(axes, one line per run), a detail opened mid-run follows the run to its end, the
commands are in the palette, and stored strings stay text."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .lab import running_lab
from .test_lab_diff import notebook_of

TOKEN = "mlops-workspace-token"
HOSTILE = "<img src=x onerror=alert(1)>"
PNG = bytes.fromhex(  # a 2x1 image: one red pixel, one blue
    "89504e470d0a1a0a0000000d49484452000000020000000108020000007b40e8dd0000000d4944"
    "4154789c63f8cf0004ff01070001ffe2239e590000000049454e44ae426082")
ARTIFACTS = {
    "roc.png": PNG,
    "notes.txt": f"threshold 0.5\n{HOSTILE}\n".encode(),
    "report.html": b"<p id='shown'>drift report</p><script>document.body.dataset.ran='yes';"
                   b"parent.document.title='pwned'</script>",
    "logo.svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="4" height="2">'
                b'<rect width="4" height="2" fill="red"/>'
                b"<script>alert(document.domain)</script></svg>",
}


@pytest.fixture
def workspace(tracker, project, tmp_path_factory):
    """Two finished runs that logged `loss` over 12 steps (the second named HOSTILE,
    their notebooks differing in one cell), and a third run still going."""
    import jupyter_mlops as mlops
    from jupyter_mlops import capture

    notebook = project.root / "train.ipynb"
    ids = []
    for name, rate in [("baseline", 0.1), (HOSTILE, 0.3)]:
        notebook.write_text(notebook_of("import math", f"rate = {rate}"))
        with tracker.start_run(name, source=capture.Source("papermill", notebook)) as run:
            mlops.log_param("rate", rate)
            data = project.root / "train.csv"
            data.write_text("a,b\n1,x\n2,y\n" if rate == 0.1 else "a,b\n1,x\n2,y\n3,z\n")
            mlops.log_dataset(data)
            if rate == 0.3:
                (project.root / f"{HOSTILE}.csv").write_text("p\n0.5\n")
                mlops.log_dataset(project.root / f"{HOSTILE}.csv", role="output")
            for step in range(12):
                mlops.log_metric("loss", 1 / (1 + rate * step), step=step)
                mlops.log_metric("acc", 1 - 1 / (2 + rate * step), step=step)
            if rate == 0.1:
                for name, content in ARTIFACTS.items():
                    (project.root / name).write_bytes(content)
                    run.log_artifact(project.root / name, name=f"reports/{name}")
                from sklearn.dummy import DummyClassifier

                mlops.log_model(DummyClassifier().fit([[0], [1]], [0, 1]), "churn")
        ids.append(run.id)
    tracker.store.releases.set_alias("churn", "production", 1, actor="test", reason=None)
    (project.root / "use.ipynb").write_text(notebook_of("import jupyter_mlops as mlops"))
    live = tracker.start_run("live")
    mlops.log_metric("loss", 0.9, step=0)
    mlops.log_metric("loss", 0.7, step=1)
    with running_lab(project.root, TOKEN, tmp_path_factory) as base:
        yield base, ids, live


def chart_texts(figure) -> list[str]:
    return figure.locator("svg .jp-mlops-axis text").all_text_contents()


def test_detail_and_compare_open_as_wide_tabs_with_charts(workspace, browser) -> None:
    base, (first, second), live = workspace
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(f"{base}/lab?token={TOKEN}")
    page.locator('[data-id="jupyter-mlops-sidebar"]').click(timeout=60000)
    sidebar = page.locator("#jupyter-mlops-sidebar")
    row = sidebar.locator(f'tr.jp-mlops-run[data-run-id="{first}"]')
    row.wait_for(timeout=60000)
    row.focus()
    page.keyboard.press("Enter")  # keyboard reachable

    detail = page.locator(".jp-MainAreaWidget .jp-mlops-detail")
    detail.get_by_text("Parameters").wait_for(timeout=30000)
    assert sidebar.locator(".jp-mlops-detail").count() == 0  # not squeezed in the sidebar
    assert detail.bounding_box()["width"] > 800
    figures = detail.locator(".jp-mlops-figure")
    assert sorted(figures.locator("figcaption").all_inner_texts()) == ["acc", "loss"]
    loss = figures.filter(has_text="loss")
    assert "step" in chart_texts(loss) and "10" in chart_texts(loss)  # x axis, labelled
    assert "1" in chart_texts(loss)  # y axis ticks: loss starts at 1
    assert loss.locator("circle").count() == 12
    tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text=f"Run {first}: baseline")
    assert tab.count() == 1

    # a run opened while it is going follows it to its end
    sidebar.locator(f'tr.jp-mlops-run[data-run-id="{live.id}"]').click()
    live_detail = page.locator(".jp-MainAreaWidget:visible .jp-mlops-detail")
    live_detail.locator(".jp-mlops-badge", has_text="running").wait_for(timeout=30000)
    live.log_metric("loss", 0.5, step=2)
    live.end()
    live_detail.locator(".jp-mlops-badge", has_text="finished").wait_for(timeout=30000)
    assert live_detail.locator(".jp-mlops-figure circle").count() == 3

    # compare: one chart per stepped metric, a line per run, the legend as text, the diff
    for run_id in (second, first):
        sidebar.locator(f'tr.jp-mlops-run[data-run-id="{run_id}"] input[type=checkbox]').check()
    sidebar.get_by_role("button", name="Compare selected (2)").click()
    compare = page.locator(".jp-MainAreaWidget .jp-mlops-compare-view")
    compare.get_by_text("Comparing 2 runs").wait_for(timeout=30000)
    assert compare.bounding_box()["width"] > 800
    loss = compare.locator(".jp-mlops-figure").filter(has_text="loss")
    assert loss.locator("polyline.jp-mlops-line").count() == 2
    assert loss.locator(".jp-mlops-legend li").all_inner_texts() == [
        f"#{first} baseline", f"#{second} {HOSTILE}"]
    compare.locator(".jp-mlops-diff-del", has_text="rate = 0.1").wait_for(timeout=30000)
    assert compare.locator(".jp-mlops-diff-add").all_inner_texts() == ['+rate = 0.3']
    colours = {loss.locator(f"polyline.jp-mlops-line-{i}").evaluate(
        "node => getComputedStyle(node).stroke") for i in (0, 1)}
    assert len(colours) == 2  # two runs, two colours from the theme

    # stored strings stay text everywhere
    assert page.locator("#jupyter-mlops-sidebar img, .jp-MainAreaWidget img").count() == 0
    assert not dialogs

    # the commands are in the palette
    page.keyboard.press("Control+Shift+c")
    page.locator(".lm-CommandPalette-input").fill("MLOps")
    items = page.locator(".lm-CommandPalette-item").all_inner_texts()
    assert any("Open Run" in item for item in items), items
    assert any("Compare Runs" in item for item in items), items
    page.keyboard.press("Escape")

    shots = os.environ.get("MLOPS_SCREENSHOTS")
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
        news = page.get_by_role("button", name="No", exact=True)
        if news.count():
            news.click()  # JupyterLab's "get notified about news?" toast
        page.screenshot(path=str(Path(shots) / "lab-workspace-light.png"))
        page.get_by_text("Settings", exact=True).click()
        page.get_by_text("Theme", exact=True).hover()
        page.get_by_text("JupyterLab Dark", exact=True).click()
        page.wait_for_timeout(1500)
        page.screenshot(path=str(Path(shots) / "lab-workspace-dark.png"))


def test_copy_as_code_copies_and_inserts_the_loading_line(workspace, browser) -> None:
    base, (first, _), _ = workspace
    context = browser.new_context(viewport={"width": 1400, "height": 900},
                                  permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    page.goto(f"{base}/lab?token={TOKEN}")
    page.locator('[data-id="jupyter-mlops-sidebar"]').click(timeout=60000)
    sidebar = page.locator("#jupyter-mlops-sidebar")
    sidebar.locator(f'tr.jp-mlops-run[data-run-id="{first}"]').click(timeout=60000)
    detail = page.locator(".jp-MainAreaWidget .jp-mlops-detail")
    detail.get_by_role("button", name="Copy as code").first.click(timeout=30000)
    detail.get_by_text(f"Copied: mlops.get_run({first})").wait_for(timeout=10000)
    assert page.evaluate("navigator.clipboard.readText()") == f"mlops.get_run({first})"

    sidebar.get_by_role("tab", name="Models").click()
    version = sidebar.locator('.jp-mlops-versions li[data-version="1"]')
    assert "production" in version.inner_text(timeout=30000)
    version.get_by_role("button", name="Insert in notebook").click()
    version.get_by_text("Open a notebook first").wait_for(timeout=10000)
    assert sidebar.evaluate("node => node.scrollWidth <= node.clientWidth")  # fits

    page.goto(f"{base}/lab/tree/use.ipynb?token={TOKEN}")
    page.locator(".jp-Notebook").wait_for(timeout=60000)
    page.locator('[data-id="jupyter-mlops-sidebar"]').click()
    sidebar.get_by_role("tab", name="Models").click()
    version.get_by_role("button", name="Insert in notebook").click(timeout=30000)
    code = 'mlops.load_model("churn@production")'
    page.locator(".jp-Notebook .jp-Cell", has_text=code).wait_for(timeout=10000)
    version.get_by_role("button", name="Copy as code").click()
    assert page.evaluate("navigator.clipboard.readText()") == code
    context.close()


def test_the_datasets_tab_lists_versions_and_opens_their_runs(workspace, browser) -> None:
    base, (first, second), _ = workspace
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(f"{base}/lab?token={TOKEN}")
    page.locator('[data-id="jupyter-mlops-sidebar"]').click(timeout=60000)
    sidebar = page.locator("#jupyter-mlops-sidebar")
    sidebar.get_by_role("tab", name="Datasets").click(timeout=60000)
    items = sidebar.locator(".jp-mlops-dataset-list > li")
    items.first.wait_for(timeout=30000)
    texts = items.locator(".jp-mlops-dataset-toggle").all_inner_texts()
    assert len(texts) == 3, texts
    assert f"{HOSTILE}.csv" in texts[0] and "1 rows" in texts[0]  # newest first, as text
    assert "train.csv" in texts[1] and "3 rows" in texts[1] and "B" in texts[1]
    assert "train.csv" in texts[2] and "2 rows" in texts[2]
    oldest = items.nth(2)
    toggle = oldest.locator(".jp-mlops-dataset-toggle")
    toggle.focus()
    page.keyboard.press("Enter")  # keyboard reachable
    assert toggle.get_attribute("aria-expanded") == "true"
    schema = oldest.locator("table tbody tr").all_inner_texts()
    assert [row.split("\t")[0] for row in schema] == ["a", "b"]
    (used,) = oldest.locator(".jp-mlops-dataset-runs li").all_inner_texts()
    assert used.startswith(f"run {first} read ") and used.endswith("train.csv"), used
    assert sidebar.evaluate("node => node.scrollWidth <= node.clientWidth")  # fits
    oldest.get_by_role("button", name=f"run {first}").click()
    page.locator(".jp-MainAreaWidget .jp-mlops-detail").get_by_text("Parameters").wait_for(
        timeout=30000)
    items.first.locator(".jp-mlops-dataset-toggle").click()
    items.first.get_by_text(f"run {second}").wait_for(timeout=10000)
    assert page.locator("#jupyter-mlops-sidebar img, .jp-MainAreaWidget img").count() == 0
    assert not dialogs


def test_a_three_run_compare_fits_the_notebook(workspace, browser) -> None:
    """`%mlops compare` of three runs (digests, paths, packages) in a 1,220-pixel window
    stays inside the notebook: long values wrap instead of widening the table."""
    base, (first, second), live = workspace
    page = browser.new_page(viewport={"width": 1220, "height": 900})
    page.goto(f"{base}/lab/tree/use.ipynb?token={TOKEN}")
    page.locator(".jp-Notebook").wait_for(timeout=60000)
    page.locator(".jp-StatusBar-TextItem", has_text="Idle").first.wait_for(timeout=60000)
    cell = page.locator(".jp-Notebook .jp-Cell").first
    cell.click()
    page.keyboard.press("Escape")
    page.keyboard.press("Enter")
    page.keyboard.press("Control+a")
    page.keyboard.type(f"%load_ext jupyter_mlops\n%mlops compare {first} {second} {live.id}")
    page.keyboard.press("Shift+Enter")
    table = page.locator(".jp-OutputArea-output table").first
    table.wait_for(timeout=60000)
    notebook = page.locator(".jp-Notebook").first.bounding_box()
    output = page.locator(".jp-OutputArea-output").first.bounding_box()
    width = table.evaluate("node => node.getBoundingClientRect().width")
    print(f"compare table {width:.0f} px, output {output['width']:.0f} px, "
          f"notebook {notebook['width']:.0f} px")
    assert width <= output["width"] + 1
    assert HOSTILE in table.inner_text() and page.locator(".jp-OutputArea img").count() == 0


def test_artifacts_open_in_tabs_images_text_and_sandboxed_html(workspace, browser) -> None:
    base, (first, _), _ = workspace
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(f"{base}/lab?token={TOKEN}")
    page.locator('[data-id="jupyter-mlops-sidebar"]').click(timeout=60000)
    page.locator(f'#jupyter-mlops-sidebar tr.jp-mlops-run[data-run-id="{first}"]').click(
        timeout=60000)
    detail = page.locator(".jp-MainAreaWidget .jp-mlops-detail")
    artifacts = detail.locator(".jp-mlops-artifacts li")
    artifacts.first.wait_for(timeout=30000)

    artifacts.filter(has_text="reports/roc.png").get_by_role("button", name="View").click()
    image = page.locator(".jp-MainAreaWidget:visible .jp-mlops-artifact-image")
    image.wait_for(timeout=30000)
    page.wait_for_function("img => img.complete && img.naturalWidth === 2",
                           arg=image.element_handle(), timeout=10000)

    page.locator(f'.lm-TabBar-tab[data-id="jupyter-mlops-run-{first}"]').click()
    artifacts.filter(has_text="reports/notes.txt").get_by_role("button", name="View").click()
    text = page.locator(".jp-MainAreaWidget:visible .jp-mlops-artifact-text")
    text.wait_for(timeout=30000)
    assert text.inner_text() == f"threshold 0.5\n{HOSTILE}\n"

    page.locator(f'.lm-TabBar-tab[data-id="jupyter-mlops-run-{first}"]').click()
    artifacts.filter(has_text="reports/report.html").get_by_role("button", name="View").click()
    frame = page.locator(".jp-MainAreaWidget:visible iframe.jp-mlops-artifact-html")
    frame.wait_for(timeout=30000)
    assert frame.get_attribute("sandbox") == ""  # no scripts, no same origin
    report = page.frame_locator(".jp-MainAreaWidget:visible iframe.jp-mlops-artifact-html")
    assert report.locator("#shown").inner_text(timeout=10000) == "drift report"
    assert report.locator("body").get_attribute("data-ran") is None  # its script never ran
    assert page.title() != "pwned"
    assert page.locator(".jp-MainAreaWidget img:not(.jp-mlops-artifact-image)").count() == 0
    assert not dialogs


def test_an_svg_artifact_opened_in_a_tab_of_its_own_runs_no_script_as_jupyterlab(
        workspace, browser) -> None:
    """An SVG is an image that can hold scripts. Shown from a blob: URL (JupyterLab's
    origin), "Open image in new tab" ran its script there, with the user's session;
    shown from a data: URL its document has no origin of JupyterLab's."""
    base, (first, _), _ = workspace
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    dialogs: list[str] = []
    context.on("page", lambda tab: tab.on(
        "dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss())))
    page = context.new_page()
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(f"{base}/lab?token={TOKEN}")
    page.locator('[data-id="jupyter-mlops-sidebar"]').click(timeout=60000)
    page.locator(f'#jupyter-mlops-sidebar tr.jp-mlops-run[data-run-id="{first}"]').click(
        timeout=60000)
    artifacts = page.locator(".jp-MainAreaWidget .jp-mlops-detail .jp-mlops-artifacts li")
    artifacts.first.wait_for(timeout=30000)
    artifacts.filter(has_text="reports/logo.svg").get_by_role("button", name="View").click()
    image = page.locator(".jp-MainAreaWidget:visible .jp-mlops-artifact-image")
    image.wait_for(timeout=30000)
    page.wait_for_function("img => img.complete && img.naturalWidth === 4",
                           arg=image.element_handle(), timeout=10000)
    source = image.get_attribute("src") or ""
    assert source.startswith("data:image/svg+xml;base64,")

    tab = context.new_page()  # what "Open image in new tab" does
    tab.goto(source)
    tab.wait_for_function("document.readyState === 'complete'", timeout=10000)
    assert not tab.evaluate("() => window.origin.startsWith('http')")
    assert not any("127.0.0.1" in d for d in dialogs), dialogs
    context.close()
