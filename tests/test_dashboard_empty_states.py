"""Pages as a new user first meets them: what they say with nothing to show, built
outside a server session (Panel objects only)."""

from __future__ import annotations

import panel as pn

from jupyter_mlops.dashboard.context import DashboardContext
from jupyter_mlops.dashboard.pages.models import model_page


def test_the_model_page_without_a_name_asks_which_model(project) -> None:
    page = model_page(DashboardContext(root=project.root, auth=None, dev=True))
    said = " ".join(str(pane.object) for part in page.main
                    for pane in part.select(pn.pane.HTML))
    assert "which model? pick one on the Models page" in said
    assert "no model named" not in said
