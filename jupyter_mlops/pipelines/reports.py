"""A step's HTML report: its executed notebook as a standalone page (nbconvert)."""

from __future__ import annotations

from typing import Any

from ..glue import SCRAP_MIME_PREFIX

_EMPTY = b'{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'


class ReportRenderer:
    """Renders executed notebooks with one nbconvert exporter, kept: its Jinja templates
    are compiled at the first report (0.05 s of the 0.07 s a report costs with a new
    exporter), not at every one. Use it from one thread at a time (the runner's report
    thread)."""

    def __init__(self) -> None:
        self._exporter: Any = None

    def warm_up(self) -> None:
        """Import nbconvert and compile its HTML template (0.5 s the first time), so the
        first real report costs what the others do. Run it while kernels start."""
        try:
            self.render(_EMPTY)
        except Exception:  # noqa: S110 - only a warm-up: the real report says what failed
            pass

    def render(self, notebook_json: bytes) -> bytes:
        """The page. Raises whatever nbformat or nbconvert raise: the runner keeps that as
        a warning on the step (a report is evidence, not a reason to fail the step)."""
        import nbformat

        if self._exporter is None:
            import nbconvert

            self._exporter = nbconvert.HTMLExporter()
        notebook = nbformat.reads(notebook_json.decode("utf-8"), as_version=4)
        for cell in notebook.cells:  # scraps are data for the runner, not for readers
            if cell.get("outputs"):
                cell.outputs = [o for o in cell.outputs if not _only_scraps(o)]
        body, _ = self._exporter.from_notebook_node(notebook)
        return body.encode("utf-8")


def _only_scraps(output: Any) -> bool:
    data = output.get("data") or {}
    return bool(data) and all(mime.startswith(SCRAP_MIME_PREFIX) for mime in data)
