"""`%mlops reproduce RUN`: re-execute a recorded run from its record (as `mlops reproduce`)."""

from __future__ import annotations

import html
from pathlib import Path

from ..reproduce.compare import tolerance
from .parsing import MagicParser

HELP = "re-execute a run from its record in a fresh kernel and say what differs"


def parser() -> MagicParser:
    p = MagicParser(prog="%mlops reproduce", description="Re-execute RUN from its record "
                    "alone (its stored snapshot, its recorded inputs checked by digest, its "
                    "parameters) in a scratch folder and a fresh kernel, then compare "
                    "metrics, parameters, dataset and model digests.")
    p.add_argument("run", help="run id, uuid prefix, or NAME:VERSION / NAME@ALIAS")
    p.add_argument("--rtol", type=tolerance, default=0.0, help="relative metric tolerance")
    p.add_argument("--atol", type=tolerance, default=0.0, help="absolute metric tolerance")
    p.add_argument("--in", dest="folder", type=Path, default=None, metavar="DIR",
                   help="the scratch folder, new or empty")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder")
    p.add_argument("--strict-env", action="store_true",
                   help="refuse to run on any package difference")
    return p


def run(magics, args) -> None:  # noqa: ANN001
    from ..reproduce.compare import Tolerance
    from ..reproduce.diff import blob_reader
    from ..reproduce.run import Options, reproduce, reproduction_text

    tracker = magics.tracker
    found = reproduce(tracker.project, tracker.store,
                      blob_reader(tracker.project, tracker.store), args.run,
                      Options(Tolerance(args.rtol, args.atol), args.folder, args.keep,
                              args.strict_env))
    text = reproduction_text(found)
    magics.show(text, f"<pre>{html.escape(text)}</pre>")
