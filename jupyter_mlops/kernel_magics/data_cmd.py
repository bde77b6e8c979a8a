"""`%mlops data PATH|DATAFRAME [--output] [--name NAME] [--keep]`: record a dataset version."""

from __future__ import annotations

from ..datasets import is_table
from .parsing import MagicParser

HELP = "record a dataset (file, folder or table variable) by content digest"


def parser() -> MagicParser:
    p = MagicParser(prog="%mlops data",
                    description="Record a dataset read (default) or written (--output) by the "
                                "active run: its BLAKE3 digest, size, rows and schema.")
    p.add_argument("source", help="a file or folder path, or the name of a table variable "
                                  "(pandas, numpy, pyarrow or polars)")
    p.add_argument("--output", action="store_true", help="the run wrote this data")
    p.add_argument("--name", default=None, help="how to label it (default: path or variable)")
    p.add_argument("--keep", action="store_true",
                   help="also store the file's (or folder's) bytes, so `mlops reproduce` can "
                        "restore them after the file changed (stored once per content)")
    return p


def run(magics, args) -> None:  # noqa: ANN001
    candidate = magics.user_ns.get(args.source) if args.source.isidentifier() else None
    if candidate is not None and is_table(candidate):
        data, name = candidate, args.name or args.source
    else:
        data, name = args.source, args.name
    role = "output" if args.output else "input"
    version = magics.tracker.require_run().log_dataset(data, role=role, name=name,
                                                          keep=args.keep)
    rows = "" if version.rows is None else f", {version.rows} rows"
    kept = ", kept" if args.keep else ""
    magics.show(f"{role} {name or args.source}: {version.digest}{rows}{kept}")
