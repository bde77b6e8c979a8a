"""A stored notebook's code cells, read defensively: the snapshot may be anyone's (a
teammate's client, a crafted artifact), so any shape that is not a notebook's gives no
cells rather than an exception."""

from __future__ import annotations

import json
from typing import Any


def code_cells(text: str) -> list[dict[str, Any]]:
    """The code cells of a notebook's JSON text; [] when it is not a notebook."""
    try:
        cells = json.loads(text).get("cells")
    except (ValueError, AttributeError, RecursionError):
        return []
    if not isinstance(cells, list):
        return []
    return [c for c in cells if isinstance(c, dict) and c.get("cell_type") == "code"]


def cell_text(cell: dict[str, Any]) -> str:
    """A cell's source as one string (nbformat allows a string or a list of lines)."""
    source = cell.get("source", "")
    if isinstance(source, list):
        return "".join(line for line in source if isinstance(line, str))
    return source if isinstance(source, str) else ""


def cell_tags(cell: dict[str, Any]) -> list[str]:
    metadata = cell.get("metadata")
    tags = metadata.get("tags") if isinstance(metadata, dict) else None
    return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []
