"""`mlops gates run` and `mlops release request|approve|reject|ls`."""

from __future__ import annotations

import argparse
import json

from ..registry.governance import governance_for
from ..registry.releases import DataChange, Registry
from ..store.gates import GateResult
from ..store.ids import MAX_INTEGER
from ..store.releases import ReleaseRequest
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
                                       "stored evaluations are compared. Exits 1 if any fails. "
                                       "The results are information for you: a release "
                                       "request computes its own evidence on the configured "
                                       "data.")
    grun.add_argument("model", help="NAME:VERSION, NAME or NAME@ALIAS")
    grun.add_argument("--against", default=None, metavar="ALIAS",
                      help="compare with this alias's version (default: the alias each gate "
                           "names, e.g. production); an error if no version holds it")
    grun.add_argument("--data", default=None, help="CSV or Parquet file to evaluate on")
    grun.add_argument("--target", default=None, help="its label column")
    grun.add_argument("--json", action="store_true", help="print JSON")
    grun.set_defaults(func=run_gates)

    release = commands.add_parser("release", help="request, approve and reject releases",
                                  description="Four-eyes releases: moving a protected alias "
                                              "takes a request and another reviewer's approval.")
    rsub = release.add_subparsers(title="release commands", metavar="COMMAND", required=True)
    req = rsub.add_parser("request", help="ask for an alias to point at a version",
                          description="Request that ALIAS point at MODEL. The request computes "
                                      "its own evidence: the gates, evaluated on the project's "
                                      "evaluation data ([registry] evaluation_data and "
                                      "evaluation_target) against the versions that hold the "
                                      "aliases they name, saved with the data's digest. "
                                      "Results of `gates run` are never the evidence.")
    req.add_argument("model", help="NAME:VERSION")
    req.add_argument("--to", required=True, dest="alias", help="alias, e.g. production")
    req.add_argument("--reason", required=True)
    req.set_defaults(func=request)
    for verb in ("approve", "reject"):
        p = rsub.add_parser(verb, help=f"{verb} a pending request (reviewers)",
                            description=f"{verb.capitalize()} a pending release request as "
                                        "the OS user, mapped to roles in .mlops/config.toml. "
                                        "Nobody approves their own request.")
        p.add_argument("request_id", type=request_id, metavar="REQUEST_ID")
        p.add_argument("--reason", required=True)
        if verb == "approve":
            p.add_argument("--override", default=None, metavar="REASON",
                           help="admins: approve despite failing gates, saying why")
            p.add_argument("--accept-data-change", action="store_true",
                           help="approve although the evaluation data differs from the last "
                                "approved release's (after checking it; recorded in the "
                                "audit log)")
        p.set_defaults(func=decide, verb=verb)
    ls = rsub.add_parser("ls", help="release requests, newest first",
                         description="Release requests, newest first, with the digest of the "
                                     "data their evidence was computed on.")
    ls.add_argument("--status", choices=("pending", "approved", "rejected"), default=None)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=list_requests)
    show = rsub.add_parser("show", help="a request's evidence, and other gate runs",
                           description="The evidence of a release request (the verdict), "
                                       "whether it is stale, and, as information only, the "
                                       "latest `gates run` results of the candidate with the "
                                       "digest of the data each was computed on.")
    show.add_argument("request_id", type=request_id, metavar="REQUEST_ID")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=show_request)


def request_id(text: str) -> int:
    """An argparse type: a release request id, a whole number SQLite can store."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a request id (a whole number, "
                                         "as `mlops release ls` shows)") from None
    if not 1 <= value <= MAX_INTEGER:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a request id: ids run from 1 "
                                         f"to {MAX_INTEGER} (`mlops release ls` lists them)")
    return value


def run_gates(args: argparse.Namespace) -> int:
    project, store = open_store()
    with store:
        results = governance_for(project, store).run_gates(
            args.model, data=args.data, target=args.target, against=args.against)
    if args.json:
        print(json.dumps(to_jsonable(results), indent=2))
    else:
        print(text_table(["gate", "result", "why"],
                         [[r.gate, "PASS" if r.passed else "FAIL", r.reason] for r in results]))
    return 0 if all(r.passed for r in results) else 1


def request(args: argparse.Namespace) -> int:
    project, store = open_store()
    with store:
        made = governance_for(project, store).request_release(args.model, args.alias,
                                                              args.reason)
    gates = "gates passed" if made.evidence.get("gates_passed") else "GATES FAILED"
    data = made.evidence.get("data")
    on = f"; evidence computed on {data['path']} ({data['digest']})" if data else ""
    print(f"release request {made.id}: {made.ref} -> {made.alias} ({gates}){on}; waiting for "
          "a reviewer")
    return 0


def decide(args: argparse.Namespace) -> int:
    project, store = open_store()
    with store:
        governance = governance_for(project, store)
        if args.verb == "approve":
            done = governance.approve(args.request_id, args.reason, args.override,
                                      accept_data_change=args.accept_data_change)
        else:
            done = governance.reject(args.request_id, args.reason)
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
    print(text_table(["id", "version", "alias", "status", "gates", "evidence data",
                      "requester", "requested", "decided by"],
                     [[str(r.id), r.ref, r.alias, r.status,
                       "pass" if r.evidence.get("gates_passed") else "FAIL",
                       _short(_evidence_digest(r)), r.requester,
                       format_time(r.created_at), r.decided_by or ""] for r in requests])
          if requests else "no release requests")
    return 0


def show_request(args: argparse.Namespace) -> int:
    project, store = open_store()
    with store:
        registry = Registry(project, store)
        made = store.releases.get(args.request_id)
        pending = made.status == "pending"
        aliases = registry.stale_aliases(made) if pending else []
        stale = registry.stale_reasons(made) if pending else []
        change = registry.data_change(made)
        others = registry.other_gate_results(made)
    if args.json:
        print(json.dumps({"request": to_jsonable(made), "stale_aliases": aliases,
                          "stale": stale,
                          "data_change": None if change is None else change.payload(),
                          "other_gate_runs": to_jsonable(others)}, indent=2))
        return 0
    for line in _request_lines(made, stale, change, others):
        print(line)
    return 0


def _request_lines(made: ReleaseRequest, stale: list[str], change: DataChange | None,
                   others: list[GateResult]) -> list[str]:
    evidence = made.evidence
    data = evidence.get("data")
    lines = [f"release request {made.id}: {made.ref} -> {made.alias} ({made.status})",
             f"  requested   by {made.requester} at {format_time(made.created_at)}: "
             f"{made.reason}",
             "  evidence    " + (f"computed on {data['path']} {data['digest']} "
                                 f"({data['rows']} rows)" if data else
                                 "no evaluation data (no gates applied, or an older request)")]
    if change is not None:
        then = ("approving it takes --accept-data-change" if made.status == "pending"
                else f"{made.status} by {made.decided_by}")
        lines.append(f"  DATA CHANGED {change.describe()}: check the new data; {then}")
    lines += [f"  STALE       {reason}: request again" for reason in stale]
    for gate in evidence.get("gates", []):
        lines.append(f"  gate        {'PASS' if gate['passed'] else 'FAIL'} {gate['gate']}: "
                     f"{gate['reason']}")
    if made.decided_by:
        lines.append(f"  decided     {made.status} by {made.decided_by}: {made.decision_reason}")
    if made.override_reason:
        lines.append(f"  OVERRIDE    failing gates overridden by {made.decided_by}: "
                     f"{made.override_reason}")
    if others:
        lines.append("  gate runs of the candidate by `mlops gates run` (information only, not "
                     "the verdict):")
        lines += [f"    {'PASS' if g.passed else 'FAIL'} {g.gate} on data "
                  f"{g.dataset_digest or 'unknown'}: {g.reason}" for g in others]
    return lines


def _evidence_digest(made: ReleaseRequest) -> str | None:
    data = made.evidence.get("data")
    return data.get("digest") if isinstance(data, dict) else None


def _short(digest: str | None) -> str:
    return "" if digest is None else digest[:19]
