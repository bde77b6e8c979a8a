"""`%mlops show [RUN]`: everything recorded about a run (default: the active one)."""

from __future__ import annotations

from IPython.core.error import UsageError

from ..inspection import describe_run
from ..views import run_detail_html, run_detail_text
from .parsing import MagicParser

HELP = "everything recorded about a run (default: the active run)"


def parser() -> MagicParser:
    p = MagicParser(prog="%mlops show", description="Show params, metrics, datasets, "
                    "artifacts, models and environment of a run.")
    p.add_argument("run", nargs="?", default=None, help="run id or uuid prefix")
    return p


def run(magics, args) -> None:  # noqa: ANN001
    ref = args.run
    if ref is None:
        active = magics.tracker.active_run
        if active is None:
            raise UsageError("%mlops show: no active run; give a run id")
        ref = active.id
    detail = describe_run(magics.tracker.store, ref)
    magics.show(run_detail_text(detail), run_detail_html(detail))
