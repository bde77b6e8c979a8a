"""`mlops init`: create a project."""

from __future__ import annotations

import argparse

from ..api import init as init_project_store


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "init", help="create .mlops/ (database, artifact store, config) in a folder",
        description="Create .mlops/ in FOLDER (default: the current folder). Safe to run again.")
    parser.add_argument("folder", nargs="?", default=".", help="project root (default: .)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    project = init_project_store(args.folder)
    print(f"project ready: {project.home}")
    return 0
