"""`mlops push URL`: move a project from its own store to a team server."""

from __future__ import annotations

import argparse
import sys
import time

from ..errors import MlopsError

PROGRESS_EVERY_SECONDS = 1.0


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "push", help="copy this project's runs, models, releases and audit log to a team "
                     "server",
        description="Copy the project's embedded store (.mlops/mlops.db and its artifact "
                    "folder) into the team server at URL: files the server lacks first, "
                    "then runs (params, tags, metrics, datasets, artifacts), model versions "
                    "(same numbers: churn:3 stays churn:3), aliases, evaluations, gate "
                    "results, release requests, pipeline runs and the audit log (re-signed "
                    "with the server's key, each row marked as imported). What the server "
                    "already has is skipped, so pushing twice adds nothing and an "
                    "interrupted push is finished by running it again. Runs keep their "
                    "uuid, and their id when it is free on the server. Needs an admin's "
                    "token: `mlops login URL`, or MLOPS_TOKEN. Afterwards set [store] url "
                    "in .mlops/config.toml to record into the server.",
        epilog="example: mlops push https://mlops.example.org:8765 --dry-run")
    parser.add_argument("url", metavar="URL", help="the team server, e.g. "
                        "https://mlops.example.org:8765")
    parser.add_argument("--dry-run", action="store_true",
                        help="show what would be sent (and which files the server lacks); "
                             "send nothing")
    parser.add_argument("--allow-insecure", action="store_true",
                        help="accept plain http to a host other than localhost")
    parser.set_defaults(func=run_push)


def run_push(args: argparse.Namespace) -> int:
    from ..config import check_server_url
    from ..project import find_project
    from ..remote import credentials
    from ..remote.client import Client
    from ..remote.push import PushReport, push

    project = find_project()
    if project.server_url() is not None:
        raise MlopsError(f"project {project.root} already records into the team server "
                         f"{project.server_url()} ([store] url or MLOPS_URL): push copies "
                         "a project's own store, so unset it to push")
    url = check_server_url(args.url, allow_insecure=args.allow_insecure)
    client = Client(url, credentials.token_for(url))
    last = time.monotonic()

    def progress(report: PushReport) -> None:
        nonlocal last
        if time.monotonic() - last >= PROGRESS_EVERY_SECONDS:
            last = time.monotonic()
            done = report.added + report.present
            print(f"mlops push: {done['run']} runs, {done['metric']} metric points, "
                  f"{done['audit']} audit rows so far", file=sys.stderr, flush=True)

    try:
        report = push(project, client, dry_run=args.dry_run, progress=progress)
    finally:
        client.close()
    print(report.summary())
    return 0
