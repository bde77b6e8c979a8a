"""The frame around every page: a Panel template with the navigation in its sidebar,
who is signed in (and their roles) in its header, light and dark themes, the --dev
banner; and the small HTML pieces every page shares (text, messages, badges).

Every HTML pane gets `CSS` itself: Panel renders each pane in its own shadow root,
where a stylesheet given to the frame would not reach. A user string without a space
(a 2,000-character release reason, a pipeline error) wraps instead of running off
the page (`overflow-wrap` on the pane).
"""

from __future__ import annotations

from collections.abc import Callable

import panel as pn

from ...views import escape_text
from ..auth import session_user
from ..context import DashboardContext

PAGES = (("", "What needs me"), ("releases", "Pending releases"), ("models", "Models"),
         ("runs", "Runs"), ("monitoring", "Monitoring"), ("audit", "Audit log"))
ACCENT = "#1565c0"
CSS = """
:host{color:var(--panel-on-background-color, inherit);overflow-wrap:break-word}
a{color:var(--mlops-link, #1565c0)}
:host-context([data-theme=dark]) a{color:#90caf9}
.mlops-table{border-collapse:collapse;font-size:13px;max-width:100%}
.mlops-table td,.mlops-table th{border:1px solid rgba(128,128,128,.45);padding:3px 8px;
 text-align:left;overflow-wrap:anywhere;min-width:4.5em}
.mlops-scroll{overflow-x:auto;max-width:100%}
.mlops-compare .mlops-table{table-layout:fixed;width:100%}
.mlops-fail{color:#b00020;font-weight:bold}.mlops-pass{color:#1b5e20;font-weight:bold}
.mlops-badge{display:inline-block;white-space:nowrap;padding:1px 8px;border-radius:10px;
 font-size:12px;font-weight:bold;color:#fff;letter-spacing:.03em}
.mlops-badge-fail{background:#c62828}.mlops-badge-pass{background:#2e7d32}
.mlops-badge-warn{background:#ef6c00}.mlops-badge-info{background:#546e7a}
.mlops-banner{background:#b00020;color:#fff;padding:8px;font-weight:bold}
.mlops-message{padding:6px;border-left:4px solid #1565c0}
.mlops-error{padding:6px;border-left:4px solid #b00020;color:#e53935}
.mlops-cards{display:flex;flex-wrap:wrap;gap:10px}
.mlops-card{border:1px solid rgba(128,128,128,.45);border-top-width:6px;border-radius:6px;
 padding:8px 14px;min-width:150px}
.mlops-card-pass{border-top-color:#2e7d32}.mlops-card-fail{border-top-color:#c62828}
.mlops-card-info{border-top-color:#546e7a}
.mlops-card .mlops-value{font-size:24px;font-weight:bold}
.mlops-card .mlops-label{font-size:12px;opacity:.8}
.mlops-lineage{display:flex;flex-wrap:wrap;align-items:center;gap:6px}
.mlops-node{border:1px solid rgba(128,128,128,.6);border-radius:6px;padding:4px 8px;
 font-size:12px;max-width:260px;overflow-wrap:anywhere}
.mlops-node b{display:block;font-size:11px;opacity:.7}
"""

# Verdict words -> badge colour: what fails is red, what passes green.
_VERDICTS = {"FAILED": "fail", "FAIL": "fail", "ALERT": "fail", "DRIFT": "fail",
             "BROKEN": "fail", "failed": "fail", "killed": "fail", "rejected": "fail",
             "PASS": "pass", "passed": "pass", "ok": "pass", "finished": "pass",
             "approved": "pass", "cached": "pass", "running": "info", "pending": "warn"}


def text(value: object) -> str:
    """User strings are always escaped: shown as text, never as HTML (and with their
    bidirectional controls made visible, `views.escape_text`)."""
    return escape_text(value)


def badge(verdict: str) -> str:
    """A coloured badge for a verdict word (FAILED, ALERT, DRIFT, ok, ...)."""
    kind = _VERDICTS.get(verdict, "info")
    return f'<span class="mlops-badge mlops-badge-{kind}">{text(verdict)}</span>'


def card(label: str, value: str, passed: bool | None) -> str:
    """A number card: green when `passed`, red when not, grey when there is no threshold."""
    kind = "info" if passed is None else ("pass" if passed else "fail")
    return (f'<div class="mlops-card mlops-card-{kind}" data-verdict="{kind}">'
            f'<div class="mlops-label">{text(label)}</div>'
            f'<div class="mlops-value">{text(value)}</div></div>')


def html_pane(markup: str, **options: object) -> pn.pane.HTML:
    """An HTML pane with the dashboard's stylesheet (`markup` must escape user strings)."""
    return pn.pane.HTML(markup, stylesheets=[CSS], sizing_mode="stretch_width", **options)


def navigation(current: str) -> str:
    return "".join(
        f'<p><b>{label}</b></p>' if name == current else
        f'<p><a href="{name or "./"}">{label}</a></p>' for name, label in PAGES)


def frame(context: DashboardContext, current: str, body: pn.viewable.Viewable,
          title: str = "") -> pn.viewable.Viewable:
    """The page `current` (its slug) as a template: `body` in the main area."""
    identity = context.identity(session_user())
    who = ("not signed in" if identity is None else
           f"{text(identity.user)} ({text(', '.join(sorted(identity.roles)) or 'no role')})")
    logout = ("" if context.auth is None else
              ' &middot; <a href="logout" style="color:#fff">sign out</a>')
    header = pn.pane.HTML(f'<div class="mlops-who" style="color:#fff;font-size:14px">'
                          f"{who}{logout}</div>", align="center")
    main: list = []
    if context.dev:
        main.append(html_pane('<div class="mlops-banner">DEVELOPMENT MODE: no login, '
                              'localhost only. Do not use for real approvals.</div>'))
    label = dict(PAGES).get(current, current)
    main.append(pn.Column(html_pane(f"<h2>{text(title or label)}</h2>"), body,
                          sizing_mode="stretch_width"))
    template = pn.template.FastListTemplate(
        title="jupyter-mlops", sidebar=[html_pane(f"<nav>{navigation(current)}</nav>")],
        header=[header], main=main, accent_base_color=ACCENT, header_background=ACCENT,
        sidebar_width=220, theme_toggle=True, main_max_width="1400px", design=_offline_fast())
    _give_location(template)
    return template


def known_theme_only() -> None:
    """Drop a `?theme=` the templates don't know, before a page builds anything. Panel's
    template looks it up in its themes and fails on any other value (its config fails
    on one that isn't UTF-8, at the first widget), and Panel then showed that failure's
    message as HTML: `?theme=<img src=x onerror=...>` ran the link's script in the
    reviewer's session (a reflected XSS). The default theme applies instead."""
    from panel.theme import THEMES

    args = pn.state.session_args
    given = args.get("theme") if isinstance(args, dict) else None
    if given and given[0].decode("utf-8", "replace").strip("'\"") not in THEMES:
        del args["theme"]


def _offline_fast() -> type:
    """Panel's Fast design without its Google Fonts link: the dashboard makes no request
    outside its own server (the browser's sans-serif is used instead)."""
    from panel.theme.fast import Fast

    resources = {key: value for key, value in Fast._resources.items() if key != "font"}
    # Named as Panel's own: Panel finds a design's bundled files by its class name.
    return type("Fast", (Fast,), {"_resources": resources, "__module__": Fast.__module__})


def _give_location(template: pn.template.BaseTemplate) -> None:
    """Templates embed a `location` root, which Panel adds only when served with
    `location=True`; the dashboard serves with False (Panel's parser of the request's
    Host fails on an IPv6 literal), so the page gets a blank one that parses nothing."""
    from panel.io.location import Location

    doc = pn.state.curdoc
    if doc is not None and doc.session_context is not None:
        template._add_location(doc, Location())


def message(value: str, error: bool = False) -> str:
    return f'<div class="{"mlops-error" if error else "mlops-message"}">{text(value)}</div>'


def when_loaded(callback: Callable[[], object]) -> None:
    """Run `callback` once the page is in the browser (at once outside a server session,
    or when the page is already loaded, as after a change of model or window)."""
    if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None \
            and not pn.state.loaded:
        pn.state.onload(callback)
    else:
        callback()
