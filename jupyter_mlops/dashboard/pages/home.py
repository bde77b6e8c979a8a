"""The landing page (`/`): what needs me. Releases waiting for my review, monitoring
checks failing over the last day, recent pipeline runs that failed. Each links to
the page where it is dealt with.

The monitoring checks are a report of each monitored model (drift tests over a
day of predictions: about a second on a million rows), so they are measured on a
thread after the first paint: the releases and pipeline failures show at once, and
no other session waits for them."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import panel as pn

from ...errors import MlopsError
from ...monitoring.report import Check, build_report
from ...registry.identity import Identity
from ...registry.releases import Registry
from ...server_paths import without_server_paths
from ...store.records import PipelineRun
from ...store.releases import ReleaseRequest
from ...views import format_time
from ..auth import session_user
from ..context import DashboardContext
from .background import off_the_event_loop, problem_shown
from .layout import badge, frame, html_pane, message, text, when_loaded

CHECK_WINDOW_S = 86_400.0  # failing checks of the last day: older traffic is history


@dataclass
class Needs:
    """What the landing page shows, gathered without Panel."""

    to_review: list[ReleaseRequest] = field(default_factory=list)  # I may decide these
    waiting: list[ReleaseRequest] = field(default_factory=list)  # pending, not mine to decide
    failing: list[tuple[str, Check]] = field(default_factory=list)  # (model, check)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (model, why)
    monitored: int = 0  # models with logged predictions
    pipeline_failures: list[PipelineRun] = field(default_factory=list)


def gather_needs(registry: Registry, identity: Identity | None, now: float,
                 monitoring: bool = True) -> Needs:
    """Everything the page shows; `monitoring=False` leaves the checks out (the slow
    part, `failing_checks`)."""
    needs = Needs()
    for request in registry.store.releases.list("pending", limit=200):
        if identity is not None and identity.is_reviewer and request.requester != identity.user:
            needs.to_review.append(request)
        else:
            needs.waiting.append(request)
    if monitoring:
        needs.failing, needs.unreadable, needs.monitored = failing_checks(registry, now)
    needs.pipeline_failures = [p for p in registry.store.pipelines.recent(limit=20)
                               if p.status in ("failed", "killed")]
    return needs


Checked = tuple[list[tuple[str, Check]], list[tuple[str, str]], int]


def failing_checks(registry: Registry, now: float) -> Checked:
    """(model, check) of every check failing over the last day, (model, why) of the
    models whose log could not be read, and how many models are monitored."""
    failing: list[tuple[str, Check]] = []
    unreadable: list[tuple[str, str]] = []
    models = registry.store.predictions.monitored_models()
    for name in models:
        try:
            report = build_report(registry.project, registry.store, name,
                                  since=now - CHECK_WINDOW_S)
        except MlopsError as exc:
            unreadable.append((name, without_server_paths(str(exc),
                                                          str(registry.project.root))))
            continue
        failing += [(name, check) for check in report.checks if not check.passed]
    return failing, unreadable, len(models)


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


CHECKS_PENDING = ("<h3>Monitoring checks failing, last day</h3>"
                  "<p>checking the monitored models...</p>")


def _checks(needs: Needs) -> str:
    lines = [f'<li>{badge("ALERT")} <a href="monitoring">{text(check.name)}</a>: '
             f"{text(check.detail)}</li>" for _, check in needs.failing]
    lines += [f'<li>{badge("FAILED")} {text(name)}: {text(why)}</li>'
              for name, why in needs.unreadable]
    body = "".join(lines) or ("<li>every monitoring check passes</li>" if needs.monitored
                              else "<li>no model is monitored yet: `mlops serve` or a "
                              "scoring pipeline logs predictions</li>")
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
        needs = gather_needs(registry, identity, time.time(), monitoring=False)
    checks = html_pane(CHECKS_PENDING)

    def measure() -> Checked:
        with context.registry() as registry:
            return failing_checks(registry, time.time())

    def show(found: Checked | Exception) -> None:
        if isinstance(found, Exception):
            checks.object = ("<h3>Monitoring checks failing, last day</h3>" + message(
                f"could not check: {problem_shown(found, context.root)}", error=True))
            return
        needs.failing, needs.unreadable, needs.monitored = found
        checks.object = _checks(needs)

    when_loaded(lambda: off_the_event_loop(measure, show))
    body = pn.Column(html_pane(_releases(needs)), checks, html_pane(_pipelines(needs)),
                     sizing_mode="stretch_width")
    return frame(context, "", body)
