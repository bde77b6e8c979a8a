"""`mlops dashboard` and `mlops credentials add`: the Panel web app and its logins."""

from __future__ import annotations

import argparse
import getpass
import sys

from ..errors import InvalidInput
from ..project import find_project


def add_parser(commands: argparse._SubParsersAction) -> None:
    dash = commands.add_parser(
        "dashboard", help="the web app: pending releases, models, runs, audit log",
        description="Serve the dashboard (Panel). Sign-in uses a private (mode 600) credentials "
                    "file of users and scrypt-hashed passwords; roles come from [users.NAME] in "
                    ".mlops/config.toml. Binds to 127.0.0.1 unless --address says otherwise, "
                    "answers only to the bound address, localhost and --allow-host names; "
                    "refuses to start without --auth unless --dev.")
    dash.add_argument("--port", type=int, default=5006)
    dash.add_argument("--address", default="127.0.0.1", help="interface to bind")
    dash.add_argument("--auth", default=None, metavar="CREDENTIALS_JSON",
                      help="credentials file, mode 600 (see `mlops credentials add`)")
    dash.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                      help="also answer requests for this host name (repeatable), e.g. the "
                           "name a reverse proxy or your colleagues use; a plain name or "
                           "address, no port or wildcard")
    dash.add_argument("--dev", action="store_true",
                      help="no login, localhost only, with a warning banner")
    dash.add_argument("--show", action="store_true", help="open a browser")
    dash.set_defaults(func=run_dashboard)

    creds = commands.add_parser("credentials", help="dashboard users and passwords",
                                description="Manage the dashboard's credentials file (password "
                                            "hashes and the cookie secret, mode 600). Roles "
                                            "are set in .mlops/config.toml, not here.")
    sub = creds.add_subparsers(title="credentials commands", metavar="COMMAND", required=True)
    add = sub.add_parser("add", help="add a user or change their password (scrypt-hashed)",
                         description="Add a user or change their password; a change ends the "
                                     "user's dashboard sessions. The password is read from "
                                     "the terminal, or from standard input with "
                                     "--password-stdin. Roles: [users.NAME] roles = "
                                     "[\"reviewer\"] in .mlops/config.toml.")
    add.add_argument("user")
    add.add_argument("--role", action="append", default=[], help=argparse.SUPPRESS)
    add.add_argument("--file", default="credentials.json", help="default: credentials.json")
    add.add_argument("--password-stdin", action="store_true")
    add.set_defaults(func=add_user)


def run_dashboard(args: argparse.Namespace) -> int:
    from ..dashboard.app import serve

    if not 0 < args.port < 65536:
        raise InvalidInput(f"--port {args.port} is not a port number")
    serve(find_project(), port=args.port, address=args.address, credentials_path=args.auth,
          dev=args.dev, allow_hosts=args.allow_host, show=args.show)
    return 0


def add_user(args: argparse.Namespace) -> int:
    from ..dashboard.credentials import ROLES_LIVE_IN_CONFIG
    from ..dashboard.credentials import add_user as add

    if args.role:
        raise InvalidInput(f"--role is gone: {ROLES_LIVE_IN_CONFIG.replace('alice', args.user)}"
                           f"; then run `mlops credentials add {args.user}` without --role")
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {args.user}: ")
        if getpass.getpass("again: ") != password:
            raise InvalidInput("the passwords differ")
    changed = add(args.file, args.user, password)
    print(f"{args.user} {'password changed (their dashboard sessions end)' if changed else 'added'}"
          f" in {args.file} (mode 600); roles: [users.{args.user}] in .mlops/config.toml")
    return 0
