"""The audit log, newest first, with the state of its hash chain."""

from __future__ import annotations

import panel as pn

from ...views import format_time, html_table
from ..context import DashboardContext
from .layout import frame, html_pane, message


def audit_page(context: DashboardContext) -> pn.viewable.Viewable:
    with context.registry() as registry:
        report = registry.store.audit.verify()
        entries = registry.store.audit.entries(limit=500)
    status = (message(f"hash chain intact ({report.rows} rows)") if report.ok else
              message(f"hash chain BROKEN at row {report.first_broken}: {report.problem}",
                      error=True))
    rows = [[str(e.id), format_time(e.at), e.actor, e.action, e.subject, e.reason or "",
             e.hash.partition(":")[2][:12]] for e in entries]
    body = html_pane(status + html_table(["#", "when", "who", "what", "subject", "why",
                                  "hash"], rows))
    return frame(context, "audit", body)
