"""`%mlops artifact PATH [--name NAME]`: store a file or folder with the run."""

from __future__ import annotations

from .parsing import MagicParser

HELP = "store a file or folder with the active run (content-addressed)"


def parser() -> MagicParser:
    p = MagicParser(prog="%mlops artifact",
                    description="Store a file (or each file of a folder) in the project's "
                                "artifact store, linked to the active run.")
    p.add_argument("path")
    p.add_argument("--name", default=None,
                   help="name to store it under (default: its path relative to here)")
    return p


def run(magics, args) -> None:  # noqa: ANN001
    links = magics.tracker.require_run().log_artifact(args.path, args.name)
    total = sum(link.size for link in links)
    magics.show(f"stored {len(links)} file(s), {total} bytes, as "
                + ", ".join(link.name for link in links[:5]) + (" ..." if len(links) > 5 else ""))
