"""Server-side sign-in sessions, kept in the dashboard process's memory.

The browser's cookie carries only a random session id (signed by tornado on
top). The session itself (user, password fingerprint, expiry) stays here, so
signing out deletes it and the old cookie stops working at once, and a
password change (a new fingerprint) ends it on the next request. Restarting
the dashboard ends every session: everyone signs in again. That is the
documented trade-off for keeping no session secrets on disk.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

SESSION_LIFETIME = 12 * 3600.0  # seconds; a working day, then sign in again
MAX_SESSIONS = 10_000


@dataclass(frozen=True)
class Session:
    """One signed-in browser: who, which password it was opened with, until when."""

    user: str
    fingerprint: str
    expires_at: float


class SessionStore:
    """Random session ids to `Session`s; expired ones are dropped as they are met."""

    def __init__(self, lifetime: float = SESSION_LIFETIME,
                 clock: Callable[[], float] = time.time,
                 max_sessions: int = MAX_SESSIONS) -> None:
        self.lifetime = lifetime
        self._clock = clock
        self._max = max_sessions
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never the ids: they are bearer tokens
        return f"SessionStore({len(self._sessions)} sessions)"

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self, user: str, fingerprint: str) -> str:
        """Open a session for `user` and return its id (256 random bits)."""
        session_id = secrets.token_urlsafe(32)
        with self._lock:
            self._prune()
            self._sessions[session_id] = Session(user, fingerprint,
                                                 self._clock() + self.lifetime)
        return session_id

    def get(self, session_id: str | None) -> Session | None:
        """The live session named `session_id`, or None (unknown, ended or expired)."""
        if not session_id:
            return None
        with self._lock:
            session = self._sessions.get(session_id)
            if session is not None and session.expires_at <= self._clock():
                del self._sessions[session_id]
                return None
            return session

    def delete(self, session_id: str | None) -> None:
        """End one session (sign-out); unknown ids are ignored."""
        if session_id:
            with self._lock:
                self._sessions.pop(session_id, None)

    def revoke_user(self, user: str) -> int:
        """End every session of `user`; returns how many there were."""
        with self._lock:
            doomed = [sid for sid, s in self._sessions.items() if s.user == user]
            for sid in doomed:
                del self._sessions[sid]
        return len(doomed)

    def _prune(self) -> None:
        """Drop expired sessions; past the cap, drop the ones closest to expiry."""
        now = self._clock()
        for sid in [sid for sid, s in self._sessions.items() if s.expires_at <= now]:
            del self._sessions[sid]
        if len(self._sessions) >= self._max:
            oldest = sorted(self._sessions, key=lambda sid: self._sessions[sid].expires_at)
            for sid in oldest[: len(self._sessions) - self._max + 1]:
                del self._sessions[sid]
