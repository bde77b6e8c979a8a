"""`mlops login URL` and `mlops logout [URL]`: the token a team server knows you by."""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import UTC, datetime

from ..errors import MlopsError


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "login", help="store the token of a team server (checked first)",
        description="Ask for the token an admin created with `mlops server token create`, "
                    "check it with the server (API version, whoami) and store it in "
                    "~/.config/jupyter-mlops/credentials.json (mode 0600; XDG_CONFIG_HOME "
                    "respected). MLOPS_URL and MLOPS_TOKEN override the stored ones (CI).")
    parser.add_argument("url", metavar="URL", help="the team server, e.g. "
                        "https://mlops.example.org:8765")
    parser.add_argument("--token-stdin", action="store_true",
                        help="read the token from standard input (for scripts)")
    parser.add_argument("--allow-insecure", action="store_true",
                        help="accept plain http to a host other than localhost")
    parser.set_defaults(func=run_login)
    out = commands.add_parser(
        "logout", help="forget the stored token of a team server",
        description="Remove the token stored for URL (every stored token without URL).")
    out.add_argument("url", metavar="URL", nargs="?", default=None,
                     help="the team server (default: all)")
    out.set_defaults(func=run_logout)


def run_login(args: argparse.Namespace) -> int:
    from ..remote.session import login

    if args.token_stdin:
        token = sys.stdin.readline()
    else:
        try:
            token = getpass.getpass(f"token for {args.url}: ")
        except EOFError:
            raise MlopsError("no token given (use --token-stdin to pipe one in)") from None
    url, who = login(args.url, token, allow_insecure=args.allow_insecure)
    roles = ", ".join(who.get("roles") or []) or "none"
    expires_at = who.get("expires_at")
    expires = ""
    if isinstance(expires_at, int | float) and not isinstance(expires_at, bool):
        try:
            when = datetime.fromtimestamp(expires_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
        except (OverflowError, OSError, ValueError):
            when = str(expires_at)
        expires = f", token expires {when}"
    print(f"logged in to {url} as {who['user']} (roles: {roles}{expires})")
    return 0


def run_logout(args: argparse.Namespace) -> int:
    from ..remote.session import logout

    dropped = logout(args.url)
    if not dropped:
        print(f"no token stored for {args.url}" if args.url else "no token stored")
        return 0
    for url in dropped:
        print(f"logged out of {url}")
    return 0
