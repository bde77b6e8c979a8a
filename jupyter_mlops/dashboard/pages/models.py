"""Models: names, versions, aliases and each version's history."""

from __future__ import annotations

import panel as pn

from ...views import format_time, html_table
from ..context import DashboardContext
from .layout import frame, text


def models_page(context: DashboardContext) -> pn.viewable.Viewable:
    with context.registry() as registry:
        store = registry.store
        sections = []
        for name in store.models.names():
            aliases = store.releases.aliases(name)
            by_version: dict[int, list[str]] = {}
            for (_, alias), version in aliases.items():
                by_version.setdefault(version, []).append(alias)
            rows = [[v.ref, ", ".join(sorted(by_version.get(v.version, []))),
                     "" if v.run_id is None else str(v.run_id), format_time(v.created_at),
                     v.digest[:23]] for v in store.models.versions(name)[:200]]
            history = [[f"#{r.id}", format_time(r.created_at), r.ref, r.alias, r.status,
                        r.requester, r.decided_by or "", r.decision_reason or ""]
                       for r in store.releases.list(name=name, limit=50)]
            sections.append(
                f"<h3>{text(name)}</h3>"
                + html_table(["version", "aliases", "run", "registered", "digest"], rows)
                + ("<h4>Release history</h4>" + html_table(
                    ["request", "when", "version", "alias", "status", "requested by",
                     "decided by", "why"],
                    history) if history else ""))
    body = pn.pane.HTML("".join(sections) or "<p>No models yet.</p>",
                        sizing_mode="stretch_width")
    return frame(context, "models", body)
