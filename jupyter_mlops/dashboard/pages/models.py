"""Models: every model with its versions and aliases, and one model's own page
(`model?name=NAME`): each version's run, metrics, gates and aliases, the release
history, and the audit entries about it."""

from __future__ import annotations

from urllib.parse import quote

import panel as pn

from ...errors import MlopsError, NotFound
from ...store import Store
from ...views import format_time, html_table
from ..context import DashboardContext
from .layout import badge, frame, html_pane, message, text

MAX_VERSIONS = 200


def model_link(name: str) -> str:
    return f'<a href="model?name={text(quote(name, safe=""))}">{text(name)}</a>'


def _aliases_by_version(store: Store, name: str) -> dict[int, list[str]]:
    by_version: dict[int, list[str]] = {}
    for (_, alias), version in store.releases.aliases(name).items():
        by_version.setdefault(version, []).append(alias)
    return by_version


def models_page(context: DashboardContext) -> pn.viewable.Viewable:
    with context.registry() as registry:
        store = registry.store
        rows = []
        for name in store.models.names():
            versions = store.models.versions(name)
            aliases = _aliases_by_version(store, name)
            held = ", ".join(f"{alias} = {version}" for version, names in sorted(aliases.items())
                             for alias in sorted(names))
            newest = versions[0] if versions else None
            rows.append(f"<tr><td>{model_link(name)}</td><td>{len(versions)}</td>"
                        f"<td>{text(held)}</td>"
                        f"<td>{text(format_time(newest.created_at) if newest else '')}</td></tr>")
    body = ("<p>No models yet.</p>" if not rows else
            '<table class="mlops-table"><thead><tr><th>model</th><th>versions</th>'
            "<th>aliases</th><th>newest version registered</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")
    return frame(context, "models", html_pane(body))


def model_detail(context: DashboardContext, name: str) -> str:
    """One model's page body; raises `NotFound` for a model that does not exist."""
    with context.registry() as registry:
        store = registry.store
        versions = store.models.versions(name)[:MAX_VERSIONS]
        if not versions:
            raise NotFound(f"no model named {name!r}")
        aliases = _aliases_by_version(store, name)
        rows = []
        for v in versions:
            run = None
            if v.run_id is not None:
                try:
                    run = store.runs.get(v.run_id)
                except NotFound:
                    run = None
            gates = store.gates.latest(name, v.version) if v.version is not None else []
            metrics = ", ".join(f"{k} {val:.4g}" for k, val in sorted(run.metrics.items())[:6]) \
                if run else ""
            held = " ".join(badge(a) for a in sorted(aliases.get(v.version or -1, [])))
            made_by = "" if run is None else f"#{run.id} {text(run.name or '')}"
            judged = " ".join(f"{badge('PASS' if g.passed else 'FAIL')} {text(g.gate)}"
                              for g in gates)
            rows.append(f"<tr><td>{text(v.ref)}</td><td>{held}</td><td>{made_by}</td>"
                        f"<td>{text(metrics)}</td><td>{judged}</td>"
                        f"<td>{text(format_time(v.created_at))}</td>"
                        f"<td><code>{text(v.digest[:23])}</code></td></tr>")
        history = [[f"#{r.id}", format_time(r.created_at), r.ref, r.alias, r.status,
                    r.requester, r.decided_by or "", r.decision_reason or ""]
                   for r in store.releases.list(name=name, limit=50)]
        audit = [[format_time(e.at), e.actor, e.action, e.subject, e.reason or ""]
                 for e in store.audit.entries(limit=50, subject=name)]
    parts = ['<div class="mlops-scroll"><table class="mlops-table"><thead><tr><th>version</th>'
             "<th>aliases</th><th>run</th><th>metrics</th><th>gates</th><th>registered</th>"
             "<th>digest</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table></div>"]
    parts.append("<h3>Release history</h3>" + (html_table(
        ["request", "when", "version", "alias", "status", "requested by", "decided by", "why"],
        history) if history else "<p>No release requested yet.</p>"))
    if audit:
        parts.append("<h3>Audit entries</h3>" + html_table(["when", "who", "what", "subject",
                                                             "why"], audit))
    return "".join(parts)


def model_page(context: DashboardContext) -> pn.viewable.Viewable:
    args = pn.state.session_args.get("name") or [b""]
    name = args[0].decode("utf-8", "replace")[:200]
    try:
        if not name.strip():
            raise MlopsError("which model? pick one on the Models page (or open "
                             "model?name=NAME)")
        body = model_detail(context, name)
    except MlopsError as exc:
        body = message(str(exc), error=True)
    return frame(context, "models", html_pane(body), title=f"Model {name}")
