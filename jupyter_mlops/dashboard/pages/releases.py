"""Pending releases: candidate beside current production, and the decision."""

from __future__ import annotations

from urllib.parse import quote

import panel as pn

from ...errors import MlopsError
from ...registry.releases import DataChange, Registry
from ...store.gates import GateResult
from ...store.releases import ReleaseRequest
from ...views import html_table
from ..auth import session_user
from ..context import DashboardContext
from .layout import frame, message, text


def _side_by_side(request: ReleaseRequest) -> str:
    evidence = request.evidence
    candidate = evidence.get("candidate") or {}
    current = evidence.get("current") or {}
    metrics = sorted(set(candidate.get("metrics", {})) | set(current.get("metrics", {})))

    def fmt(value: object) -> str:
        return f"{value:.4g}" if isinstance(value, float) else ("" if value is None else
                                                                str(value))

    rows = [["version", candidate.get("ref", ""), current.get("ref", "none")],
            ["run", fmt(candidate.get("run")), fmt(current.get("run"))],
            ["evaluation data", candidate.get("dataset") or "", current.get("dataset") or ""]]
    rows += [[m, fmt(candidate.get("metrics", {}).get(m)), fmt(current.get("metrics", {}).get(m))]
             for m in metrics]
    return html_table(["", "candidate", f"current {request.alias}"], rows)


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
    return "<h4>Gates (the verdict)</h4>" + html_table(
        ["gate", "result", "why"],
        [[g["gate"], "PASS" if g["passed"] else "FAIL", g["reason"]] for g in gates])


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
    feedback = pn.pane.HTML("", sizing_mode="stretch_width")
    listing = pn.Column(sizing_mode="stretch_width")

    def card(request: ReleaseRequest) -> pn.viewable.Viewable:
        gates_ok = request.evidence.get("gates_passed", True)
        header = (f"<h3>#{request.id}: {text(request.ref)} &rarr; {text(request.alias)}</h3>"
                  f"<p>requested by <b>{text(request.requester)}</b>: {text(request.reason)}"
                  f"</p><p class=\"{'mlops-pass' if gates_ok else 'mlops-fail'}\">"
                  f"gates {'passed' if gates_ok else 'FAILED'}</p>")
        with context.registry() as registry:
            reports = _reports(registry, request)
            may_approve = identity is not None and registry.can_approve(request, identity)
            stale = registry.stale_reasons(request)
            change = registry.data_change(request)
            others = registry.other_gate_results(request)
        for problem in stale:
            header += message(f"evidence stale: {problem}; the requester must request again",
                              error=True)
        parts: list = [pn.pane.HTML(header + _data_change(change) + _evidence_data(request)
                                    + _side_by_side(request) + _gates(request)
                                    + _other_gate_runs(others) + reports,
                                    sizing_mode="stretch_width")]
        may_reject = identity is not None and identity.is_reviewer
        if not (may_approve or may_reject):
            reason = ("you requested this release: another reviewer must approve it"
                      if identity is not None and identity.user == request.requester
                      else "only reviewers decide releases")
            parts.append(pn.pane.HTML(message(reason)))
            return pn.Column(*parts, styles={"border": "1px solid #ddd", "padding": "8px"},
                             sizing_mode="stretch_width")
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
            with context.registry() as registry:
                if verb == "approve":
                    done = registry.approve(request.id, current, reason, override or None,
                                            accept_data_change=accept_data_change)
                else:
                    done = registry.reject(request.id, current, reason)
        except MlopsError as exc:
            feedback.object = message(str(exc), error=True)
            return
        moved = f"; {done.alias} now points at {done.ref}" if done.status == "approved" else ""
        feedback.object = message(f"release #{done.id} {done.status}{moved}")
        refresh()

    def refresh() -> None:
        with context.registry() as registry:
            pending = registry.store.releases.list("pending", limit=200)
        listing.objects = ([card(r) for r in pending] if pending
                           else [pn.pane.HTML("<p>No pending releases.</p>")])

    refresh()
    body = pn.Column(pn.pane.HTML("<h3>Pending releases</h3>"), feedback, listing,
                     sizing_mode="stretch_width")
    return frame(context, "releases", body)
