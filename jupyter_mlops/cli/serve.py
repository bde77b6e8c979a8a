"""`mlops serve NAME@ALIAS`: the HTTP scoring service."""

from __future__ import annotations

import argparse

from ..errors import InvalidInput
from ..project import find_project
from ..scoring import MAX_BUFFERED_ROWS


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "serve", help="serve JSON predictions of a model over HTTP",
        description="Serve MODEL (NAME@ALIAS to follow an alias, or NAME:VERSION) on "
                    "127.0.0.1: POST /predict {\"instances\": [{feature: value, ...}]} with "
                    "Content-Type: application/json, GET /health, GET /metadata, "
                    "GET /openapi.json. When the alias moves, the new version is loaded and "
                    "swapped in without dropping requests; a version that cannot be loaded "
                    "(untrusted types, corrupted bytes) is refused with one line and the "
                    "service keeps the model it has (or answers 503). Only requests whose "
                    "Host names this server are answered (403 otherwise: DNS rebinding), "
                    "browser requests from other origins are refused unless --cors-origin "
                    "allows them, bodies over --max-body-mb get 413 and JSON nested deeper "
                    "than 32 levels 400; bodies must be UTF-8 JSON, and an input the model "
                    "cannot score is a 422. Every request is logged for monitoring (a row "
                    "no table can hold is set aside in predictions/NAME/"
                    "unwritable-rows.jsonl); any stop (Ctrl-C, SIGTERM) flushes the log. "
                    "When the log can't be written (folder gone, store locked, disk full) "
                    "rows are kept, past --log-buffer spilled to .mlops/spill/predictions/"
                    "NAME/, and written when it can (by the next start if need be); "
                    "GET /health then says \"degraded\" with the reasons (also when the "
                    "alias can't be followed or a new version failed to load). "
                    "A port in use is a one-line error. In a team-mode project ([store] "
                    "url or MLOPS_URL) the alias is followed through the team server, the "
                    "model downloaded from it (digest checked) and the log shipped to it "
                    "as a run of its own, spooled under .mlops/spool/ while it is down; "
                    "the token needs the 'predictions' permission (role runner).")
    parser.add_argument("model", help="e.g. churn@production")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--address", default="127.0.0.1", help="interface to bind")
    parser.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                        help="also answer requests whose Host header is NAME (a DNS name "
                             "or address clients use to reach this server); repeatable. "
                             "Always answered: localhost, 127.0.0.1, ::1 and --address")
    parser.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                        help="let web pages on ORIGIN (exactly scheme://host[:port], e.g. "
                             "https://app.example.com) call the service from a browser; "
                             "repeatable. Without it, browser requests from other hosts "
                             "get 403")
    parser.add_argument("--max-body-mb", type=float, default=10.0, metavar="MB",
                        help="largest request body in MiB (default: 10); larger ones "
                             "get 413 without being kept in memory")
    parser.add_argument("--poll", type=float, default=1.0,
                        help="seconds between checks of the alias (default: 1)")
    parser.add_argument("--log-buffer", type=int, default=MAX_BUFFERED_ROWS, metavar="ROWS",
                        help="prediction-log rows held in memory while the log can't be "
                             f"written (default: {MAX_BUFFERED_ROWS:,}); more are spilled to "
                             ".mlops/spill/predictions/NAME/ and written to the log later")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="serving processes sharing the port (default: the number of "
                             "cores); each follows the alias, all feed one prediction log "
                             "through one writer process, and one that dies is replaced")
    parser.add_argument("--no-log", action="store_true",
                        help="log nothing (load tests of the service itself; monitoring "
                             "then sees no traffic)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..scoring.guard import RequestPolicy
    from ..scoring.workers import default_workers, serve

    if not 0 < args.port < 65536:
        raise InvalidInput(f"--port {args.port} is not a port number")
    if args.poll <= 0:
        raise InvalidInput("--poll must be positive")
    if args.log_buffer < 1:
        raise InvalidInput(f"--log-buffer {args.log_buffer}: give a number of rows, at least 1")
    workers = default_workers() if args.workers is None else args.workers
    if not 1 <= workers <= 256:
        raise InvalidInput(f"--workers {workers}: give a number of processes from 1 to 256")
    policy = RequestPolicy.build(args.address, args.allow_host, args.cors_origin,
                                 args.max_body_mb)
    serve(find_project(), args.model, port=args.port, address=args.address, workers=workers,
          poll_seconds=args.poll, log=not args.no_log, policy=policy,
          log_buffer=args.log_buffer)
    return 0
