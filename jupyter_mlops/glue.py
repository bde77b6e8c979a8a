"""Scraps in scrapbook's format, written and read without importing scrapbook.

A scrap is a display output with the media type
`application/scrapbook.scrap.json+json` holding
`{"name", "data", "encoder": "json", "version": 1}` and metadata
`{"scrapbook": {"name", "data": true, "display": false}}`: exactly what
`scrapbook.glue(name, value, encoder="json")` writes, so `scrapbook.read_notebook`
reads ours and we read what a notebook glues with scrapbook. We write the
format ourselves because importing scrapbook costs a kernel 0.4-2.4 s per step.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

SCRAP_MIME_PREFIX = "application/scrapbook.scrap."
JSON_SCRAP_MIME = SCRAP_MIME_PREFIX + "json+json"
TEXT_SCRAP_MIME = SCRAP_MIME_PREFIX + "text+json"
RECORD_PREFIX = "mlops.record."  # our records; every other scrap is a step output


def glue(name: str, value: Any) -> None:
    """Record a JSON value under `name` in the current cell's outputs."""
    from IPython.display import display

    payload = {"name": name, "data": json.loads(json.dumps(value)), "encoder": "json",
               "version": 1}
    display({JSON_SCRAP_MIME: payload},
            metadata={"scrapbook": {"name": name, "data": True, "display": False}}, raw=True)


def read_scraps(notebook: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(name, value) of every json or text scrap, in cell and output order.

    Scraps with other encoders (pandas, arrow, display-only) are skipped: their
    values are not plain JSON.
    """
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []) or []:
            data = output.get("data") or {}
            for mime in (JSON_SCRAP_MIME, TEXT_SCRAP_MIME):
                payload = data.get(mime)
                if isinstance(payload, str):  # some writers store JSON media as text
                    payload = json.loads(payload)
                if isinstance(payload, dict) and "name" in payload:
                    yield payload["name"], payload.get("data")
