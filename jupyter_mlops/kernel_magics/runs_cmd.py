"""`%mlops runs [--filter EXPR] [--limit N]`: recent runs, as a widget or a table."""

from __future__ import annotations

from ..views import runs_html, runs_text
from .parsing import MagicParser

HELP = "list recent runs (an interactive view with filter and compare in JupyterLab)"


def parser() -> MagicParser:
    p = MagicParser(prog="%mlops runs",
                    description="List runs, newest first. In a notebook frontend this is an "
                                "interactive view: filter box, pick runs, compare.")
    p.add_argument("--filter", "-f", default=None,
                   help="e.g. \"metrics.acc > 0.9 and params.C = '0.5'\"")
    p.add_argument("--limit", "-n", type=int, default=None,
                   help="rows to show (default: %%config MlopsMagics.max_rows)")
    p.add_argument("--static", action="store_true", help="a plain table, not a widget")
    return p


def run(magics, args) -> None:  # noqa: ANN001
    limit = args.limit if args.limit is not None else magics.max_rows
    if limit < 1:
        from IPython.core.error import UsageError

        raise UsageError("%mlops runs: --limit must be at least 1")
    store = magics.tracker.store
    runs = store.runs.search(args.filter, limit=limit)  # a bad filter fails here, clearly
    if not args.static and magics.widgets_available():
        from IPython.display import display

        from .runs_browser import RunsBrowser

        display(RunsBrowser(store, limit=limit, initial_filter=args.filter or "").widget)
        return None
    magics.show(runs_text(runs), runs_html(runs))
    return None
