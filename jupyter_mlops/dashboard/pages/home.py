"""The landing page (`/`): what needs me. Releases waiting for my review, monitoring
checks failing over the last day, recent pipeline runs that failed. Each links to
the page where it is dealt with."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import panel as pn

from ...errors import MlopsError
from ...monitoring.report import Check, build_report
from ...registry.identity import Identity
from ...registry.releases import Registry
from ...store.records import PipelineRun
from ...store.releases import ReleaseRequest
from ...views import format_time
from ..auth import session_user
from ..context import DashboardContext
from .layout import badge, frame, html_pane, text

CHECK_WINDOW_S = 86_400.0  # failing checks of the last day: older traffic is history


@dataclass
class Needs:
    """What the landing page shows, gathered without Panel."""

    to_review: list[ReleaseRequest] = field(default_factory=list)  # I may decide these
    waiting: list[ReleaseRequest] = field(default_factory=list)  # pending, not mine to decide
    failing: list[tuple[str, Check]] = field(default_factory=list)  # (model, check)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (model, why)
    pipeline_failures: list[PipelineRun] = field(default_factory=list)


def gather_needs(registry: Registry, identity: Identity | None, now: float) -> Needs:
    needs = Needs()
    for request in registry.store.releases.list("pending", limit=200):
        if identity is not None and identity.is_reviewer and request.requester != identity.user:
            needs.to_review.append(request)
        else:
            needs.waiting.append(request)
    for name in registry.store.predictions.monitored_models():
        try:
            report = build_report(registry.project, registry.store, name,
                                  since=now - CHECK_WINDOW_S)
        except MlopsError as exc:
            needs.unreadable.append((name, str(exc)))
            continue
        needs.failing += [(name, check) for check in report.checks if not check.passed]
    needs.pipeline_failures = [p for p in registry.store.pipelines.recent(limit=20)
                               if p.status in ("failed", "killed")]
    return needs


def _releases(needs: Needs) -> str:
    def line(r: ReleaseRequest) -> str:
        gates = r.evidence.get("gates_passed", True)
        return (f'<li><a href="releases">#{r.id}: {text(r.ref)} &rarr; {text(r.alias)}</a> '
                f"requested by {text(r.requester)} {badge('PASS' if gates else 'FAILED')}</li>")

    mine = ("".join(line(r) for r in needs.to_review) if needs.to_review
            else "<li>nothing waits for your review</li>")
    others = ("" if not needs.waiting else
              f"<p>{len(needs.waiting)} more pending, not yours to decide: "
              + ", ".join(f"#{r.id} {text(r.ref)}" for r in needs.waiting[:10]) + "</p>")
    return f"<h3>Releases to review ({len(needs.to_review)})</h3><ul>{mine}</ul>{others}"


def _checks(needs: Needs) -> str:
    lines = [f'<li>{badge("ALERT")} <a href="monitoring">{text(check.name)}</a>: '
             f"{text(check.detail)}</li>" for _, check in needs.failing]
    lines += [f'<li>{badge("FAILED")} {text(name)}: {text(why)}</li>'
              for name, why in needs.unreadable]
    body = "".join(lines) or "<li>every monitoring check passes</li>"
    return f"<h3>Monitoring checks failing, last day ({len(needs.failing)})</h3><ul>{body}</ul>"


def _pipelines(needs: Needs) -> str:
    def line(p: PipelineRun) -> str:
        broken = [s for s in p.steps if s.status in ("failed", "killed")]
        steps = ", ".join(f"{text(s.step)}: {text(s.failure.message if s.failure else s.status)}"
                          for s in broken) or text(p.error or "")
        return (f"<li>{badge(p.status)} pipeline <b>{text(p.name)}</b> run #{p.id} "
                f"({format_time(p.started_at)}): {steps}</li>")

    body = "".join(line(p) for p in needs.pipeline_failures) or \
        "<li>no failed pipeline run among the last 20</li>"
    return f"<h3>Recent pipeline failures ({len(needs.pipeline_failures)})</h3><ul>{body}</ul>"


def home_page(context: DashboardContext) -> pn.viewable.Viewable:
    identity = context.identity(session_user())
    with context.registry() as registry:
        needs = gather_needs(registry, identity, time.time())
    body = html_pane(_releases(needs) + _checks(needs) + _pipelines(needs))
    return frame(context, "", body)
