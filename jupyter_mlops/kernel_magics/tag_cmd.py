"""`%mlops tag KEY=VALUE ...`: set tags on the active run."""

from __future__ import annotations

from .parsing import MagicParser, split_assignments

HELP = "set tags: team=churn stage=baseline"


def parser() -> MagicParser:
    p = MagicParser(prog="%mlops tag", description="Set tags on the active run (a tag can be "
                    "changed later, unlike a param).")
    p.add_argument("items", nargs="+", metavar="KEY=VALUE")
    return p


def run(magics, args) -> None:  # noqa: ANN001
    magics.tracker.require_run().set_tags(split_assignments(args.items, magics.user_ns))
