"""`%mlops end [--failed]`: finish the active run."""

from __future__ import annotations

from ..views import format_duration
from .parsing import MagicParser

HELP = "end the active run (stores the notebook snapshot)"


def parser() -> MagicParser:
    p = MagicParser(prog="%mlops end", description="End the active run as finished "
                    "(or failed / killed) and store the notebook as it is on disk.")
    p.add_argument("--status", choices=("finished", "failed", "killed"), default="finished")
    p.add_argument("--failed", dest="status", action="store_const", const="failed",
                   help="shorthand for --status failed")
    return p


def run(magics, args) -> None:  # noqa: ANN001
    active = magics.tracker.require_run()
    ended = active.end(args.status)
    if ended is None:  # inside a pipeline step: the runner records the run
        magics.show(f"step run {args.status}; the pipeline runner records it")
        return
    waiting = active.unacknowledged  # team mode: records the server has not taken yet
    spooled = (f"; {waiting} records wait in .mlops/spool/ for the team server "
               "(`mlops sync` sends them)") if waiting else ""
    magics.show(f"run {ended.id} {ended.status} after {format_duration(ended.duration)}"
                f"{spooled}")
