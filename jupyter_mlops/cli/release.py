"""`mlops gates run` and `mlops release request|approve|reject|ls`."""

from __future__ import annotations

import argparse
import json

from ..registry.identity import cli_identity
from ..registry.releases import Registry
from ..views import format_time, text_table, to_jsonable
from .common import open_store


def add_parser(commands: argparse._SubParsersAction) -> None:
    gates = commands.add_parser("gates", help="validation gates of model versions",
                                description="Validation gates declared in .mlops/config.toml.")
    gsub = gates.add_subparsers(title="gates commands", metavar="COMMAND", required=True)
    grun = gsub.add_parser("run", help="evaluate the gates of a version and store the results",
                           description="Evaluate the gates that apply to a model version. "
                                       "With evaluation data (--data or evaluation_data in "
                                       "[registry]) both sides of every comparison are "
                                       "evaluated on the same file; otherwise the latest "
                                       "stored evaluations are compared. Exits 1 if any fails.")
    grun.add_argument("model", help="NAME:VERSION, NAME or NAME@ALIAS")
    grun.add_argument("--against", default=None, metavar="ALIAS",
                      help="compare with this alias's version (default: the alias each gate "
                           "names, e.g. production)")
    grun.add_argument("--data", default=None, help="CSV or Parquet file to evaluate on")
    grun.add_argument("--target", default=None, help="its label column")
    grun.add_argument("--json", action="store_true", help="print JSON")
    grun.set_defaults(func=run_gates)

    release = commands.add_parser("release", help="request, approve and reject releases",
                                  description="Four-eyes releases: moving a protected alias "
                                              "takes a request and another reviewer's approval.")
    rsub = release.add_subparsers(title="release commands", metavar="COMMAND", required=True)
    req = rsub.add_parser("request", help="ask for an alias to point at a version",
                          description="Request that ALIAS point at MODEL. The gate results "
                                      "and metrics of the candidate and the current holder are "
                                      "saved as evidence.")
    req.add_argument("model", help="NAME:VERSION")
    req.add_argument("--to", required=True, dest="alias", help="alias, e.g. production")
    req.add_argument("--reason", required=True)
    req.set_defaults(func=request)
    for verb in ("approve", "reject"):
        p = rsub.add_parser(verb, help=f"{verb} a pending request (reviewers)",
                            description=f"{verb.capitalize()} a pending release request as "
                                        "the OS user, mapped to roles in .mlops/config.toml. "
                                        "Nobody approves their own request.")
        p.add_argument("request_id", type=int, metavar="REQUEST_ID")
        p.add_argument("--reason", required=True)
        if verb == "approve":
            p.add_argument("--override", default=None, metavar="REASON",
                           help="admins: approve despite failing gates, saying why")
        p.set_defaults(func=decide, verb=verb)
    ls = rsub.add_parser("ls", help="release requests, newest first",
                         description="Release requests, newest first.")
    ls.add_argument("--status", choices=("pending", "approved", "rejected"), default=None)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=list_requests)


def run_gates(args: argparse.Namespace) -> int:
    project, store = open_store()
    with store:
        results = Registry(project, store).run_gates(args.model, cli_identity(project),
                                                     data=args.data, target=args.target,
                                                     against=args.against)
    if args.json:
        print(json.dumps(to_jsonable(results), indent=2))
    else:
        print(text_table(["gate", "result", "why"],
                         [[r.gate, "PASS" if r.passed else "FAIL", r.reason] for r in results]))
    return 0 if all(r.passed for r in results) else 1


def request(args: argparse.Namespace) -> int:
    project, store = open_store()
    with store:
        made = Registry(project, store).request_release(args.model, args.alias,
                                                        cli_identity(project), args.reason)
    gates = "gates passed" if made.evidence.get("gates_passed") else "GATES FAILED"
    print(f"release request {made.id}: {made.ref} -> {made.alias} ({gates}); waiting for a "
          "reviewer")
    return 0


def decide(args: argparse.Namespace) -> int:
    project, store = open_store()
    with store:
        registry = Registry(project, store)
        identity = cli_identity(project)
        if args.verb == "approve":
            done = registry.approve(args.request_id, identity, args.reason, args.override)
        else:
            done = registry.reject(args.request_id, identity, args.reason)
    moved = f"; {done.alias} -> {done.ref}" if done.status == "approved" else ""
    print(f"release request {done.id} {done.status} by {done.decided_by}{moved}")
    return 0


def list_requests(args: argparse.Namespace) -> int:
    _, store = open_store()
    with store:
        requests = store.releases.list(args.status)
    if args.json:
        print(json.dumps(to_jsonable(requests), indent=2))
        return 0
    print(text_table(["id", "version", "alias", "status", "requester", "requested", "decided by"],
                     [[str(r.id), r.ref, r.alias, r.status, r.requester,
                       format_time(r.created_at), r.decided_by or ""] for r in requests])
          if requests else "no release requests")
    return 0
