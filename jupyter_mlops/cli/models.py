"""`mlops models ls|show|alias`: the model registry."""

from __future__ import annotations

import argparse
import json

from ..registry.governance import governance_for
from ..registry.releases import Registry
from ..views import format_time, schema_summary, text_table, to_jsonable
from .common import open_store


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("models", help="model versions, aliases and lineage",
                                 description="The model registry: versions, aliases, lineage.")
    sub = parser.add_subparsers(title="models commands", metavar="COMMAND", required=True)
    ls = sub.add_parser("ls", help="model names, versions and aliases",
                        description="Every model with its versions and aliases.")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(func=list_models)
    show = sub.add_parser("show", help="a version's lineage: run, data, gates, approvals",
                          description="Lineage of a model version: the run that made it, "
                                      "code digest, git commit, input data digests, params, "
                                      "metrics, gate runs (each with the digest of its "
                                      "data; information, not a release's verdict), release "
                                      "requests with their verdict, audit rows.")
    show.add_argument("model", help="NAME (latest), NAME:VERSION or NAME@ALIAS")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(func=show_model)
    alias = sub.add_parser("alias", help="point an unprotected alias at a version",
                           description="Point ALIAS at a version. Protected aliases "
                                       "(production by default) move only through "
                                       "`mlops release`.")
    alias.add_argument("model", help="NAME:VERSION")
    alias.add_argument("alias")
    alias.add_argument("--reason", required=True, help="why (recorded in the audit log)")
    alias.set_defaults(func=set_alias)


def list_models(args: argparse.Namespace) -> int:
    _, store = open_store()
    with store:
        rows = []
        for name in store.models.names():
            versions = store.models.versions(name)
            aliases = store.releases.aliases(name)
            rows.append({"name": name, "versions": len(versions),
                         "latest": versions[0].version,
                         "aliases": {a: v for (_, a), v in sorted(aliases.items())}})
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print("no models yet: log one with `%mlops model` or mlops.log_model()")
    else:
        print(text_table(["model", "versions", "latest", "aliases"],
                         [[r["name"], str(r["versions"]), str(r["latest"]),
                           ", ".join(f"{a}={v}" for a, v in r["aliases"].items())]
                          for r in rows]))
    return 0


def show_model(args: argparse.Namespace) -> int:
    project, store = open_store()
    with store:
        lineage = Registry(project, store).lineage(args.model)
    if args.json:
        print(json.dumps(to_jsonable(lineage), indent=2))
        return 0
    v, run = lineage.version, lineage.run
    print(f"{v.ref}  ({', '.join(lineage.aliases) or 'no aliases'})")
    print(f"  digest      {v.digest}\n  registered  {format_time(v.created_at)}")
    if run is not None:
        print(f"  run         {run.id} {run.name or ''} ({run.status})")
        print(f"  notebook    {run.notebook or ''}\n  code        {run.code_digest or ''}")
        print(f"  git         {run.git_commit or ''}{' (dirty)' if run.git_dirty else ''}")
        print("  params      " + ", ".join(f"{k}={val}" for k, val in run.params.items()))
        print("  metrics     " + ", ".join(f"{k}={val:.4g}" for k, val in run.metrics.items()))
    for d in lineage.datasets:
        print(f"  data        {d.role} {d.source} {d.dataset.digest} "
              f"{schema_summary(d.dataset.schema, 40)}")
    for g in lineage.gates:  # `gates run` results: the requester's, labelled with their data
        print(f"  gate run    {'PASS' if g.passed else 'FAIL'} {g.gate} on data "
              f"{g.dataset_digest or 'unknown'}: {g.reason}")
    for r in lineage.requests:
        verdict = "gates passed" if r.evidence.get("gates_passed") else "GATES FAILED"
        print(f"  release     #{r.id} -> {r.alias} {r.status}, {verdict} (requested by "
              f"{r.requester}"
              + (f", {r.status} by {r.decided_by}: {r.decision_reason}" if r.decided_by else "")
              + ")")
    return 0


def set_alias(args: argparse.Namespace) -> int:
    project, store = open_store()
    with store:
        version = governance_for(project, store).set_alias(args.model, args.alias,
                                                           args.reason)
    print(f"{args.alias} -> {version.ref}")
    return 0
