"""Can a run be re-executed from its record? Said when the run ends: a run that can't
gets the tag `mlops.not_reproducible` with the reason (`runs show`: "reproducible:
no, because ..."), so the user learns it while the notebook is still open and the
fix is one "Restart and run all" away. A run that can gets no tag.

- papermill, `mlops run`, a pipeline step, a script: executed top to bottom from a file
  the run snapshotted: yes.
- a notebook run from JupyterLab: yes when its saved execution counts rise from the
  first code cell to the last that ran (with none skipped between), else no, naming
  the first cell out of order; the counts are the saved file's, so save first.
- an interactive session with no file: no, only its input history was kept.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..validation import NOT_REPRODUCIBLE_TAG as NOT_REPRODUCIBLE_TAG  # re-exported
from .cells import cell_text


def not_reproducible(source_kind: str, path: Path | None) -> str | None:
    """Why a run of this source can't be re-executed from its record (one line), or None."""
    if path is None or not path.is_file():
        return ("an interactive session has no notebook or script file; only its input "
                "history was kept (source/session.py)")
    if source_kind != "jupyter" or path.suffix != ".ipynb":
        return None
    try:
        cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
    except (OSError, ValueError, AttributeError) as exc:
        return f"the notebook {path.name} could not be read ({type(exc).__name__})"
    problem = order_problem(cells)
    return None if problem is None else f"{problem}: restart the kernel and run all"


def order_problem(cells: list[object]) -> str | None:
    """What breaks top-to-bottom execution in a notebook's saved code cells, or None."""
    counts = [(number, cell.get("execution_count")) for number, cell in
              enumerate((c for c in cells if isinstance(c, dict)
                         and c.get("cell_type") == "code" and cell_text(c).strip()), start=1)]
    ran = [(number, count) for number, count in counts if isinstance(count, int)]
    if not ran:
        return "no code cell of the saved notebook has run"
    last_ran = ran[-1][0]
    for number, count in counts:
        if number < last_ran and not isinstance(count, int):
            return f"code cell {number} did not run, but a later one did"
    for (number, count), (_, earlier) in zip(ran[1:], ran, strict=False):
        if count <= earlier:
            return (f"code cell {number} ran before the cell above it "
                    f"(execution counts {earlier} then {count})")
    return None
