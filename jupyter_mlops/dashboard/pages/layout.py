"""The frame around every page: navigation, who is signed in, the --dev banner."""

from __future__ import annotations

import html

import panel as pn

from ..auth import session_user
from ..context import DashboardContext

PAGES = (("releases", "Pending releases"), ("models", "Models"), ("runs", "Runs"),
         ("monitoring", "Monitoring"), ("audit", "Audit log"))
CSS = """
.mlops-table{border-collapse:collapse;font-size:13px}
.mlops-table td,.mlops-table th{border:1px solid #ccc;padding:3px 8px;text-align:left}
.mlops-fail{color:#b00020;font-weight:bold}.mlops-pass{color:#1b5e20;font-weight:bold}
.mlops-banner{background:#b00020;color:#fff;padding:8px;font-weight:bold}
.mlops-message{padding:6px;border-left:4px solid #1565c0}
.mlops-error{padding:6px;border-left:4px solid #b00020;color:#b00020}
"""


def text(value: object) -> str:
    """User strings are always escaped: shown as text, never as HTML."""
    return html.escape(str(value))


def frame(context: DashboardContext, current: str, body: pn.viewable.Viewable
          ) -> pn.viewable.Viewable:
    identity = context.identity(session_user())
    links = " | ".join(
        f"<b>{label}</b>" if name == current else f'<a href="{name}">{label}</a>'
        for name, label in PAGES)
    who = ("not signed in" if identity is None else
           f"{text(identity.user)} ({text(', '.join(sorted(identity.roles)) or 'no role')})")
    logout = "" if context.auth is None else ' &middot; <a href="logout">sign out</a>'
    parts: list = []
    if context.dev:
        parts.append(pn.pane.HTML('<div class="mlops-banner">DEVELOPMENT MODE: no login, '
                                  'localhost only. Do not use for real approvals.</div>',
                                  sizing_mode="stretch_width"))
    parts.append(pn.pane.HTML(f"<h2>jupyter-mlops</h2><nav>{links}</nav>"
                              f"<p>{who}{logout}</p>", sizing_mode="stretch_width"))
    parts.append(body)
    return pn.Column(*parts, stylesheets=[CSS], sizing_mode="stretch_width")


def message(value: str, error: bool = False) -> str:
    return f'<div class="{"mlops-error" if error else "mlops-message"}">{text(value)}</div>'
