"""Pending releases: candidate beside current holder (a table and a chart), gates as
badges, the candidate's lineage as a small graph, links to the step reports, and
the decision; a reviewer is shown why they can't approve rather than a button
that would refuse."""

from __future__ import annotations

import re
from urllib.parse import quote

import panel as pn

from ...errors import Conflict, MlopsError, NotFound
from ...registry.identity import Identity
from ...registry.releases import DataChange, Registry
from ...store.gates import GateResult
from ...store.releases import ReleaseRequest
from ...views import html_table
from ..auth import session_user
from ..context import DashboardContext
from .layout import badge, frame, html_pane, message, text, when_loaded

_FIRST_CARDS = 3  # sent with the page; the others follow once it is loaded
_CLI_HINT = re.compile(r"\s*\((?:--|`mlops )[^)]*\)")


def for_the_web(problem: str) -> str:
    """A registry refusal as the dashboard says it: without the command-line options
    (`(--override)`) it suggests to CLI users."""
    return _CLI_HINT.sub("", problem)


def approval_blocker(request: ReleaseRequest, identity: Identity | None) -> str | None:
    """Why `identity` is offered no Approve button although a reviewer: failing gates
    only an admin may override. None when nothing blocks here (the registry still
    checks everything at the click)."""
    if identity is None or identity.is_admin:
        return None
    failing = [g["gate"] for g in request.evidence.get("gates", []) if not g.get("passed")]
    if not failing:
        return None
    return (f"gates failed ({', '.join(failing)}): only an admin can approve this release, "
            "with a written reason for overriding them; you may reject it")


def _lineage(registry: Registry, request: ReleaseRequest) -> str:
    """data -> run -> version -> alias, as boxes and arrows."""
    store = registry.store
    try:
        version = store.models.get(request.name, request.version)
        run = store.runs.get(version.run_id) if version.run_id is not None else None
    except NotFound:
        return ""
    datasets = store.datasets.for_run(run.id) if run is not None else []
    held = ", ".join(sorted(alias for (_, alias), number in store.releases.aliases(
        request.name).items() if number == request.version)) or "none yet"

    def node(kind: str, label: str) -> str:
        return f'<span class="mlops-node"><b>{text(kind)}</b>{text(label)}</span>'

    data = [node(f"data ({d.role})", f"{d.source} {d.dataset.digest[:19]}")
            for d in datasets[:4]]
    if len(datasets) > 4:
        data.append(node("data", f"and {len(datasets) - 4} more"))
    boxes = ['<span class="mlops-lineage">' + "".join(data) + "</span>" if data
             else node("data", "none recorded")]
    boxes.append(node("run", "none" if run is None else f"#{run.id} {run.name or ''}"))
    boxes.append(node("version", version.ref))
    boxes.append(node("alias", f"{request.alias} (requested); holds: {held}"))
    return ('<h4>Lineage</h4><div class="mlops-lineage">'
            + " &rarr; ".join(boxes) + "</div>")


def _bar(value: object, top: float, colour: str) -> str:
    """A value with a bar scaled to `top`: the metric rows of the table are its chart."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return text("" if value is None else value)
    width = abs(value) / top * 180 if top else 0
    return (f'<span style="display:inline-block;height:11px;width:{width:.0f}px;'
            f'background:{colour};margin-right:6px;vertical-align:middle"></span>'
            f"{value:.4g}")


def _side_by_side(request: ReleaseRequest) -> str:
    """Candidate beside current holder: what they are, then their metrics as values with
    bars (each metric scaled to the larger side), a chart read like a table."""
    evidence = request.evidence
    candidate = evidence.get("candidate") or {}
    current = evidence.get("current") or {}
    ours, theirs = candidate.get("metrics", {}), current.get("metrics", {})

    def fmt(value: object) -> str:
        return f"{value:.4g}" if isinstance(value, float) else ("" if value is None else
                                                                str(value))

    rows = [["version", candidate.get("ref", ""), current.get("ref", "none")],
            ["run", fmt(candidate.get("run")), fmt(current.get("run"))],
            ["evaluation data", candidate.get("dataset") or "", current.get("dataset") or ""]]
    body = "".join(f"<tr><td>{text(a)}</td><td>{text(b)}</td><td>{text(c)}</td></tr>"
                   for a, b, c in rows)
    for metric in sorted(set(ours) | set(theirs)):
        values = [v for v in (ours.get(metric), theirs.get(metric))
                  if isinstance(v, (int, float))]
        top = max((abs(v) for v in values), default=0.0)
        body += (f"<tr><td>{text(metric)}</td><td>{_bar(ours.get(metric), top, '#1565c0')}"
                 f"</td><td>{_bar(theirs.get(metric), top, '#9e9e9e')}</td></tr>")
    return ('<table class="mlops-table mlops-metrics-chart" role="figure" aria-label="metrics: '
            f'candidate beside current {text(request.alias)}"><thead><tr><th></th>'
            f"<th>candidate</th><th>current {text(request.alias)}</th></tr></thead>"
            f"<tbody>{body}</tbody></table>")


def _evidence_data(request: ReleaseRequest) -> str:
    data = request.evidence.get("data")
    if not isinstance(data, dict):
        return "<p>Evidence: no evaluation data (no gates applied, or an older request).</p>"
    return (f"<p>Evidence computed by the request on <code>{text(data.get('path'))}</code> "
            f"({text(data.get('rows'))} rows, <code>{text(data.get('digest'))}</code>).</p>")


def _data_change(change: DataChange | None) -> str:
    """The evaluation data differs from the last approved release's: said where it shows."""
    if change is None:
        return ""
    # Styled inline: the frame's stylesheet does not reach into this pane's shadow root.
    return ('<div class="mlops-error" style="border:2px solid #b00020;color:#b00020;'
            f'padding:6px;margin:6px 0"><b>Evaluation data changed since release '
            f"#{text(change.since.id)}</b> ({text(change.since.ref)} &rarr; "
            f"{text(change.since.alias)}): <code>{text(change.before_path)}</code> "
            f"<code>{text(change.before)}</code> &rarr; <code>{text(change.after_path)}</code> "
            f"<code>{text(change.after)}</code>. Gates judged on other data than before "
            "may pass more easily: check the new data before approving.</div>")


def _gates(request: ReleaseRequest) -> str:
    gates = request.evidence.get("gates", [])
    if not gates:
        return "<p>No gates apply.</p>"
    rows = "".join(f"<tr><td>{text(g['gate'])}</td><td>{badge('PASS' if g['passed'] else 'FAIL')}"
                   f"</td><td>{text(g['reason'])}</td></tr>" for g in gates)
    return ('<h4>Gates (the verdict)</h4><table class="mlops-table"><thead><tr><th>gate</th>'
            f"<th>result</th><th>why</th></tr></thead><tbody>{rows}</tbody></table>")


def _other_gate_runs(others: list[GateResult]) -> str:
    """`gates run` results: shown for context, labelled with their data, never the verdict."""
    if not others:
        return ""
    return ("<h4>Gate runs by <code>mlops gates run</code> (information only, not the "
            "verdict)</h4>" + html_table(
                ["gate", "result", "data", "why"],
                [[g.gate, "PASS" if g.passed else "FAIL", g.dataset_digest or "unknown",
                  g.reason] for g in others]))


def _reports(registry: Registry, request: ReleaseRequest) -> str:
    """Links to HTML reports stored with the candidate's pipeline run."""
    store = registry.store
    version = store.models.get(request.name, request.version)
    if version.run_id is None:
        return ""
    run = store.runs.get(version.run_id)
    related = [run.id]
    pipeline_run = run.tags.get("mlops.pipeline_run")
    if pipeline_run and pipeline_run.isdigit():
        related = [r.id for r in store.runs.search(
            f"tags.`mlops.pipeline_run` = '{pipeline_run}'", limit=50)]
    links = [(a.name, a.digest) for rid in related for a in store.artifacts.for_run(rid)
             if a.kind == "report"]
    if not links:
        return ""
    return "<p>Reports: " + ", ".join(
        f'<a href="artifact/{text(digest)}?name={text(quote(name))}" target="_blank">'
        f'{text(name)}</a>'
        for name, digest in links) + "</p>"


def releases_page(context: DashboardContext) -> pn.viewable.Viewable:
    identity = context.identity(session_user())
    feedback = html_pane("")
    listing = pn.Column(sizing_mode="stretch_width")

    def card(registry: Registry, request: ReleaseRequest) -> pn.viewable.Viewable:
        gates_ok = request.evidence.get("gates_passed", True)
        header = (f"<h3>#{request.id}: {text(request.ref)} &rarr; {text(request.alias)}</h3>"
                  f"<p>requested by <b>{text(request.requester)}</b>: {text(request.reason)}"
                  f"</p><p>gates {badge('PASS' if gates_ok else 'FAILED')}</p>")
        may_approve = identity is not None and registry.can_approve(request, identity)
        for problem in registry.stale_reasons(request):
            header += message(f"evidence stale: {for_the_web(problem)}; the requester must "
                              "request again", error=True)
        blocker = approval_blocker(request, identity) if may_approve else None
        may_approve = may_approve and blocker is None
        may_reject = identity is not None and identity.is_reviewer
        change = registry.data_change(request)
        # One HTML pane a card: each pane is a shadow root of its own in the browser,
        # and twenty cards of several panes each were most of the page's paint.
        markup = (header + _data_change(change) + _evidence_data(request)
                  + '<div class="mlops-scroll">' + _side_by_side(request) + "</div>"
                  + _gates(request) + _other_gate_runs(registry.other_gate_results(request))
                  + _lineage(registry, request) + _reports(registry, request))
        if blocker is not None:
            markup += message(blocker)
        if not (may_approve or may_reject):
            markup += message("you requested this release: another reviewer must approve it"
                              if identity is not None and identity.user == request.requester
                              else "only reviewers decide releases")
            return pn.Column(html_pane(markup), styles={"border": "1px solid #ddd",
                                                        "padding": "8px"},
                             sizing_mode="stretch_width")
        parts: list = [html_pane(markup)]
        reason_box = pn.widgets.TextAreaInput(name="Reason (required)", max_length=2000,
                                              placeholder="why approve or reject",
                                              css_classes=[f"reason-{request.id}"])
        override_box = None
        if not gates_ok and identity is not None and identity.is_admin:
            override_box = pn.widgets.TextInput(name="Override failing gates because (admins)",
                                                max_length=2000)
            parts.append(override_box)
        parts.append(reason_box)
        accept_box = None
        if may_approve and change is not None:
            accept_box = pn.widgets.Checkbox(
                name="I accept the changed evaluation data (recorded in the audit log)",
                css_classes=[f"accept-data-{request.id}"])
            parts.append(accept_box)
        buttons = []
        if may_approve:
            approve = pn.widgets.Button(name="Approve", button_type="success",
                                        css_classes=[f"approve-{request.id}"])
            approve.on_click(lambda _e: decide(request, "approve", reason_box.value,
                                               override_box.value if override_box else None,
                                               bool(accept_box and accept_box.value)))
            buttons.append(approve)
        reject = pn.widgets.Button(name="Reject", button_type="danger",
                                   css_classes=[f"reject-{request.id}"])
        reject.on_click(lambda _e: decide(request, "reject", reason_box.value, None))
        buttons.append(reject)
        parts.append(pn.Row(*buttons))
        return pn.Column(*parts, styles={"border": "1px solid #ddd", "padding": "8px"},
                         sizing_mode="stretch_width")

    def decide(request: ReleaseRequest, verb: str, reason: str, override: str | None,
               accept_data_change: bool = False) -> None:
        # Who decides is looked up again at the click, not taken from when the page
        # rendered: a page left open after sign-out or a password change must not
        # approve over its still-open websocket.
        current = context.identity(session_user())
        try:
            if current is None:
                raise MlopsError("your session ended (signed out or password changed): "
                                 "reload the page and sign in again")
            failing = not request.evidence.get("gates_passed", True)
            if verb == "approve" and failing and not (override or "").strip():
                raise MlopsError("gates failed: write why you override them in the box "
                                 "'Override failing gates because' (recorded in the audit log)")
            with context.registry() as registry:
                if verb == "approve":
                    done = registry.approve(request.id, current, reason, override or None,
                                            accept_data_change=accept_data_change)
                else:
                    done = registry.reject(request.id, current, reason)
        except MlopsError as exc:
            feedback.object = message(for_the_web(str(exc)), error=True)
            if isinstance(exc, Conflict):  # decided meanwhile (another session), or stale:
                refresh()  # its card must not keep offering buttons that can only fail
            return
        moved = f"; {done.alias} now points at {done.ref}" if done.status == "approved" else ""
        feedback.object = message(f"release #{done.id} {done.status}{moved}")
        refresh()

    def cards(requests: list[ReleaseRequest]) -> list[pn.viewable.Viewable]:
        with context.registry() as registry:
            return [card(registry, r) for r in requests]

    def refresh() -> None:
        with context.registry() as registry:
            pending = registry.store.releases.list("pending", limit=200)
        if not pending:
            listing.objects = [html_pane("<p>No pending releases.</p>")]
            return
        # The first cards come with the page; the rest once it is in the browser, so
        # that a long queue does not hold up the first one.
        first, rest = pending[:_FIRST_CARDS], pending[_FIRST_CARDS:]
        listing.objects = cards(first)
        if rest:
            when_loaded(lambda: listing.extend(cards(rest)))

    refresh()
    body = pn.Column(feedback, listing, sizing_mode="stretch_width")
    return frame(context, "releases", body)
