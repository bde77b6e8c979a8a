"""`%mlops param NAME=VALUE ... | VARIABLE ...`: record parameters."""

from __future__ import annotations

from .parsing import MagicParser, split_assignments

HELP = "record parameters: C=0.5 max_iter=200, or variable names"


def parser() -> MagicParser:
    p = MagicParser(prog="%mlops param",
                    description="Record parameters of the active run. NAME=VALUE reads VALUE "
                                "as a Python literal (else a variable, else text); a bare NAME "
                                "takes the variable's value.")
    p.add_argument("items", nargs="+", metavar="NAME[=VALUE]")
    return p


def run(magics, args) -> None:  # noqa: ANN001
    values = split_assignments(args.items, magics.user_ns)
    magics.tracker.require_run().log_params(values)
