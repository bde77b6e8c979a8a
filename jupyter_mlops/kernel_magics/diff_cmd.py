"""`%mlops diff RUN_A RUN_B`: why two runs differ (as `mlops runs diff`)."""

from __future__ import annotations

import html

from .parsing import MagicParser

HELP = "why two runs differ: data, params, code, packages, then metrics; the code diff"


def parser() -> MagicParser:
    p = MagicParser(prog="%mlops diff", description="Explain two runs: what differs in their "
                    "inputs (data, params, code, packages), then in their metrics, and the "
                    "diff of their code cells from the snapshots the runs stored.")
    p.add_argument("a", metavar="RUN_A")
    p.add_argument("b", metavar="RUN_B")
    return p


def run(magics, args) -> None:  # noqa: ANN001
    from ..reproduce.diff import blob_reader, diff_runs, diff_text

    tracker = magics.tracker
    text = diff_text(diff_runs(tracker.store, blob_reader(tracker.project, tracker.store),
                               args.a, args.b))
    magics.show(text, f"<pre>{html.escape(text)}</pre>")
