"""Work a page does after its first paint, on a thread: the dashboard serves every
session from one event loop, so a second of drift tests (a monitoring report of a
million predictions) run in a page function would hold up everyone else's pages.
And how what such work raised is said on the page."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import panel as pn

from ...errors import MlopsError
from ...server_paths import without_server_paths


def problem_shown(problem: BaseException, root: object) -> str:
    """What went wrong, as the page says it: the error's one line (any other exception
    named by its type), without the server's paths: core messages name files for the
    person at the terminal (a missing prediction file under `/srv/.../.mlops`), which
    a reviewer's browser has no use for."""
    said = (str(problem) if isinstance(problem, MlopsError)
            else f"{type(problem).__name__}: {problem}")
    return without_server_paths(said, str(root))


def off_the_event_loop(work: Callable[[], Any], then: Callable[[Any], None]) -> None:
    """Run `work` on a thread and `then(its result, or what it raised)` on the session's
    event loop, so that half a second of drift tests on a million rows holds up no other
    session (the dashboard serves everyone from one event loop). Outside a server
    session, at once."""

    def outcome() -> Any:
        try:
            return work()
        except Exception as exc:  # noqa: BLE001 - shown on the page, never lost on a thread
            return exc

    doc = pn.state.curdoc
    if doc is None or doc.session_context is None:
        then(outcome())
        return

    def run() -> None:
        result = outcome()
        try:
            doc.add_next_tick_callback(lambda: then(result))
        except Exception:  # noqa: BLE001 - the session closed meanwhile: nobody to show it
            pass

    threading.Thread(target=run, name="mlops-dashboard-background", daemon=True).start()
