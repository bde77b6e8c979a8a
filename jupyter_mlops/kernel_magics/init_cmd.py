"""`%mlops init [FOLDER]`: create a project."""

from __future__ import annotations

from ..api import init
from .parsing import MagicParser

HELP = "create .mlops/ in a folder (default: the current folder)"


def parser() -> MagicParser:
    p = MagicParser(prog="%mlops init", description="Create .mlops/ (database, artifact store, "
                    "config) in FOLDER. Safe to run again.")
    p.add_argument("folder", nargs="?", default=".")
    return p


def run(magics, args) -> None:  # noqa: ANN001
    project = init(args.folder)
    active = magics.tracker.active_run
    if active is None or active.ended:
        magics.tracker.switch_project(project)
    magics.show(f"project ready: {project.home}")
