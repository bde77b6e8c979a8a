"""`%mlops model VARIABLE --name NAME [--example VARIABLE]`: register a model version."""

from __future__ import annotations

from IPython.core.error import UsageError

from .parsing import MagicParser

HELP = "save a scikit-learn model safely (skops) as the next version of NAME"


def parser() -> MagicParser:
    p = MagicParser(prog="%mlops model",
                    description="Save the model held by VARIABLE with skops, as the next "
                                "version of NAME, linked to the run and its input datasets.")
    p.add_argument("variable", help="the variable holding the fitted model")
    p.add_argument("--name", required=True, help="model name, e.g. churn")
    p.add_argument("--example", default=None,
                   help="a DataFrame variable whose columns and dtypes are the model's inputs")
    return p


def run(magics, args) -> None:  # noqa: ANN001
    namespace = magics.user_ns
    if args.variable not in namespace:
        raise UsageError(f"%mlops model: no variable {args.variable!r} in this notebook")
    example = None
    if args.example is not None:
        if args.example not in namespace:
            raise UsageError(f"%mlops model: no variable {args.example!r} in this notebook")
        example = namespace[args.example]
    version = magics.tracker.require_run().log_model(namespace[args.variable], args.name,
                                                     input_example=example)
    magics.show(f"model version {version.ref} saved ({version.digest})")
