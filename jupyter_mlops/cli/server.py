"""`mlops server init|token|start`: the team server and its tokens."""

from __future__ import annotations

import argparse
import time

from ..team_protocol import ROLE_PERMISSIONS, ROLES

ROLES_HELP = "; ".join(f"{role}: {', '.join(sorted(perms))}"
                       for role, perms in ROLE_PERMISSIONS.items())


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "server", help="run the team server (PostgreSQL or SQLite, tokens and roles)",
        description="The team server: one process owning the team's store, which members' "
                    "notebooks, pipelines and services record into over HTTP with a bearer "
                    "token. Its home (--home, else $MLOPS_SERVER_HOME, else ~/.mlops-server, "
                    "mode 0700) holds server.toml and the audit key; whoever can read it is "
                    "the server's admin.")
    parser.add_argument("--home", metavar="DIR",
                        help="the server's home (default: $MLOPS_SERVER_HOME, else "
                             "~/.mlops-server)")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    init = sub.add_parser(
        "init", help="make the server's home and migrate its database",
        description="Make the server's home (0700): server.toml (0600) naming the database "
                    "and the artifact folder, and audit.key (0600), the audit chain's key "
                    "that only the server holds; migrate the database. Running it again "
                    "with the same --db and --artifacts migrates and changes nothing else.")
    init.add_argument("--db", required=True, metavar="URL",
                      help="postgresql://USER@HOST:PORT/DATABASE (the team database, which "
                           "must exist) or sqlite:///PATH (one machine)")
    init.add_argument("--artifacts", required=True, metavar="DIR_OR_URL",
                      help="the folder blobs are stored in (made 0700), or an fsspec URL "
                           "(s3://BUCKET/PATH, gs://..., with its fsspec backend installed)")
    _home_option(init)
    init.set_defaults(func=run_init)

    token = sub.add_parser("token", help="create, list and revoke API tokens",
                           description=f"API tokens map to a user and roles ({ROLES_HELP}).")
    token_sub = token.add_subparsers(title="commands", metavar="COMMAND", required=True)
    create = token_sub.add_parser(
        "create", help="make a token (printed once)",
        description="Make a token for USER with one or more roles and print it once; only "
                    f"its SHA-256 is kept. Roles: {ROLES_HELP}.")
    create.add_argument("user", help="the user the token acts as (lowercase letters, digits, "
                                     "'.', '_', '@', '-')")
    create.add_argument("--role", action="append", required=True, choices=ROLES,
                        metavar="ROLE", help=f"one of {', '.join(ROLES)}; repeatable")
    create.add_argument("--expires-days", type=float, metavar="N",
                        help="the token stops working N days from now (default: never)")
    _home_option(create)
    create.set_defaults(func=run_token_create)
    listing = token_sub.add_parser("list", help="list tokens (never their secrets)",
                                   description="List every token: id, user, roles, the "
                                               "first characters, created, expires, last "
                                               "used, revoked.")
    _home_option(listing)
    listing.set_defaults(func=run_token_list)
    revoke = token_sub.add_parser("revoke", help="revoke a token at once",
                                  description="Revoke token ID: the next request with it is "
                                              "refused (401).")
    revoke.add_argument("id", type=int, help="the token's id (see `token list`)")
    _home_option(revoke)
    revoke.set_defaults(func=run_token_revoke)

    start = sub.add_parser(
        "start", help="serve the team API",
        description="Serve the team API (docs/team-mode.md; GET /api/openapi.json) until "
                    "Ctrl-C or SIGTERM. Binds 127.0.0.1 unless --host says otherwise, and "
                    "refuses another address without TLS (--tls-cert/--tls-key) or "
                    "--behind-proxy. Answers only requests whose Host names it (localhost, "
                    "--host, --allow-host, allow_hosts in server.toml). Every route needs a "
                    "token with the route's permission; 20 wrong tokens from one address "
                    "lock it out (429) for 30 s, doubling. With a [hub] section in "
                    "server.toml it runs as a JupyterHub service and also takes Hub tokens, "
                    "roles from Hub groups (README, 'On a JupyterHub').")
    start.add_argument("--host", default="127.0.0.1", help="address to bind "
                                                           "(default: 127.0.0.1)")
    start.add_argument("--port", type=int, default=8765, help="port (default: 8765)")
    start.add_argument("--behind-proxy", action="store_true",
                       help="a reverse proxy in front terminates TLS: listen beyond "
                            "localhost without it, and take the client address from "
                            "the last X-Forwarded-For entry (X-Real-Ip is not trusted)")
    start.add_argument("--tls-cert", metavar="FILE", help="serve HTTPS with this certificate")
    start.add_argument("--tls-key", metavar="FILE", help="... and this private key")
    start.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                       help="also answer requests whose Host is NAME; repeatable")
    start.add_argument("--stall-timeout", type=float, default=60.0, metavar="SECONDS",
                       help="drop a connection whose request headers or body stop "
                            "arriving for this long (an upload that never ends keeps "
                            "nothing; default: 60)")
    _home_option(start)
    start.set_defaults(func=run_start)

    dashboard = sub.add_parser(
        "dashboard", help="serve the dashboard on the server's database (token or Hub sign-in)",
        description="Serve the Panel dashboard (releases, models, runs, monitoring, audit) "
                    "beside the team server: on the database and artifact store of its home, "
                    "judging releases by the home's registry.toml as the server's routes do. "
                    "People sign in with their team token; an approval is made as the "
                    "token's user with the token's roles, and a revoked or expired token "
                    "ends its sessions. Run as a JupyterHub service (JUPYTERHUB_CLIENT_ID set "
                    "by the Hub), people sign in through the Hub instead (OAuth), with the "
                    "roles [hub] in server.toml gives their groups. "
                    "Run it as the server's account (it reads the home). "
                    "Binds 127.0.0.1 unless --address says otherwise; answers only the bound "
                    "address, localhost and --allow-host names.")
    dashboard.add_argument("--port", type=int, default=5006, help="port (default: 5006)")
    dashboard.add_argument("--address", default="127.0.0.1",
                           help="interface to bind (default: 127.0.0.1)")
    dashboard.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                           help="also answer requests for this host name (repeatable)")
    dashboard.add_argument("--show", action="store_true", help="open a browser")
    _home_option(dashboard)
    dashboard.set_defaults(func=run_dashboard)


def _home_option(parser: argparse.ArgumentParser) -> None:
    """--home also after the subcommand (`mlops server start --home DIR`)."""
    parser.add_argument("--home", dest="sub_home", metavar="DIR",
                        help="the server's home (as `mlops server --home DIR ...`)")


def _home(args: argparse.Namespace):  # -> ServerHome
    from ..teamserver.home import ServerHome

    return ServerHome(args.sub_home or args.home)


def run_init(args: argparse.Namespace) -> int:
    from ..teamserver.home import ServerHome

    home = ServerHome.init(args.sub_home or args.home, args.db, args.artifacts)
    print(f"server home {home.path} ready (database migrated, audit key {home.key_path}); "
          "next: mlops server token create USER --role ROLE, then mlops server start")
    return 0


def run_token_create(args: argparse.Namespace) -> int:
    with _home(args).open_store() as store:
        token, secret = store.tokens.create(args.user, args.role,
                                            expires_days=args.expires_days)
    expires = "never expires" if token.expires_at is None else \
        f"expires {_when(token.expires_at)}"
    print(secret)
    print(f"token {token.id} for {token.user} ({', '.join(token.roles)}; {expires}). It is "
          "shown only now: give it to the user, who runs `mlops login URL` and pastes it "
          "(or sets MLOPS_TOKEN).")
    return 0


def run_token_list(args: argparse.Namespace) -> int:
    with _home(args).open_store() as store:
        tokens = store.tokens.list()
    now = time.time()
    print(f"{'id':>4}  {'user':<20} {'roles':<24} {'token':<14} {'created':<16} "
          f"{'expires':<16} {'last used':<16} state")
    for t in tokens:
        state = "revoked" if t.revoked_at else ("expired" if not t.usable(now) else "active")
        print(f"{t.id:>4}  {t.user:<20} {','.join(t.roles):<24} {t.shown + '…':<14} "
              f"{_when(t.created_at):<16} {_when(t.expires_at):<16} "
              f"{_when(t.last_used_at):<16} {state}")
    return 0


def run_token_revoke(args: argparse.Namespace) -> int:
    with _home(args).open_store() as store:
        token = store.tokens.revoke(args.id)
    print(f"token {token.id} of {token.user} revoked")
    return 0


def run_start(args: argparse.Namespace) -> int:
    import asyncio

    from ..errors import InvalidInput
    from ..teamserver.serve import run_server

    if not 0 < args.port < 65536:
        raise InvalidInput(f"--port {args.port} is not a port number")
    if not 0 < args.stall_timeout <= 86400:
        raise InvalidInput(f"--stall-timeout {args.stall_timeout} is not between 0 and "
                           "86400 seconds")
    asyncio.run(run_server(_home(args), host=args.host, port=args.port,
                           behind_proxy=args.behind_proxy, tls_cert=args.tls_cert,
                           tls_key=args.tls_key, allow_hosts=args.allow_host,
                           stall_seconds=args.stall_timeout))
    return 0


def run_dashboard(args: argparse.Namespace) -> int:
    from ..dashboard.app import serve_beside_server
    from ..errors import InvalidInput

    if not 0 < args.port < 65536:
        raise InvalidInput(f"--port {args.port} is not a port number")
    serve_beside_server(_home(args), port=args.port, address=args.address,
                        allow_hosts=args.allow_host, show=args.show)
    return 0


def _when(at: float | None) -> str:
    return "-" if at is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(at))
