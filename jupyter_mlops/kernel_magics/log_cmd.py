"""`%mlops log NAME[=VALUE] ... [--step N]`: record metrics."""

from __future__ import annotations

from .parsing import MagicParser, split_assignments

HELP = "record metrics: acc (from the variable) or loss=0.31 --step 3"


def parser() -> MagicParser:
    p = MagicParser(prog="%mlops log",
                    description="Record metrics of the active run, committed at once. A bare "
                                "NAME takes the value of the variable NAME.")
    p.add_argument("items", nargs="+", metavar="NAME[=VALUE]")
    p.add_argument("--step", type=int, default=None, help="training step or epoch")
    return p


def run(magics, args) -> None:  # noqa: ANN001
    values = split_assignments(args.items, magics.user_ns)
    magics.tracker.require_run().log_metrics(values, step=args.step)
