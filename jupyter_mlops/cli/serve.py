"""`mlops serve NAME@ALIAS`: the HTTP scoring service."""

from __future__ import annotations

import argparse

from ..errors import InvalidInput
from ..project import find_project


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "serve", help="serve JSON predictions of a model over HTTP",
        description="Serve MODEL (NAME@ALIAS to follow an alias, or NAME:VERSION) on "
                    "127.0.0.1: POST /predict {\"instances\": [{feature: value, ...}]}, "
                    "GET /health, GET /metadata, GET /openapi.json. When the alias moves, "
                    "the new version is loaded and swapped in without dropping requests. "
                    "Every request is logged for monitoring; a clean stop (Ctrl-C, SIGTERM) "
                    "flushes the log.")
    parser.add_argument("model", help="e.g. churn@production")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--address", default="127.0.0.1", help="interface to bind")
    parser.add_argument("--poll", type=float, default=1.0,
                        help="seconds between checks of the alias (default: 1)")
    parser.add_argument("--no-log", action="store_true",
                        help="log nothing (load tests of the service itself; monitoring "
                             "then sees no traffic)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from ..serving.app import run_service

    if not 0 < args.port < 65536:
        raise InvalidInput(f"--port {args.port} is not a port number")
    if args.poll <= 0:
        raise InvalidInput("--poll must be positive")
    asyncio.run(run_service(find_project(), args.model, port=args.port, address=args.address,
                            poll_seconds=args.poll, log=not args.no_log))
    return 0
