"""`%mlops compare RUN RUN [...]`: runs side by side, differences highlighted."""

from __future__ import annotations

from dataclasses import replace

from ..inspection import compare_runs
from ..views import comparison_html, comparison_text
from .parsing import MagicParser

HELP = "compare runs side by side: params, metrics, data, environment, code"


def parser() -> MagicParser:
    p = MagicParser(prog="%mlops compare", description="Show two or more runs side by side; "
                    "rows that differ are highlighted.")
    p.add_argument("runs", nargs="+", metavar="RUN")
    p.add_argument("--diff", action="store_true", help="show only rows that differ")
    return p


def run(magics, args) -> None:  # noqa: ANN001
    comparison = compare_runs(magics.tracker.store, args.runs)
    if args.diff:
        comparison = replace(comparison, rows=tuple(comparison.differences))
    magics.show(comparison_text(comparison), comparison_html(comparison))
