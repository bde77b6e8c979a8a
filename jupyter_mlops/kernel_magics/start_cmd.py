"""`%mlops start [--name NAME] [--tag KEY=VALUE ...]`: begin recording a run."""

from __future__ import annotations

from .parsing import MagicParser, split_assignments

HELP = "start recording a run (notebook, git state and environment are captured)"


def parser() -> MagicParser:
    p = MagicParser(prog="%mlops start",
                    description="Start a run. The notebook's code digest, git commit and diff, "
                                "Python and package versions, host and user are recorded now; "
                                "the notebook itself is stored at `%mlops end`.")
    p.add_argument("--name", "-n", default=None, help="a name for the run")
    p.add_argument("--tag", "-t", action="append", default=[], metavar="KEY=VALUE",
                   help="a tag (repeatable)")
    return p


def run(magics, args) -> None:  # noqa: ANN001
    tags = split_assignments(args.tag, {}) if args.tag else None
    active = magics.tracker.start_run(args.name, tags=tags)
    where = active.source.path.name if active.source.path else active.source.kind
    label = f" ({active.name})" if active.name else ""
    number = "in this pipeline step" if active.id is None else str(active.id)
    into = f" into {active.server}" if active.server else ""
    magics.show(f"run {number}{label} started, recording {where}{into}")
