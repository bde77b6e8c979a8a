"""Back-off after failed sign-ins, per user name and per client address.

A few failures are free (typos happen). After that every failure locks the
key for a delay that doubles with each further failure, up to a ceiling: an
attacker gets a handful of guesses an hour instead of thousands a minute.
During a lockout no password is checked at all, so even the right one is
refused, with the time to come back. Failures are forgotten after a quiet
period. The cost is that anyone can lock a user out for a while by failing on
purpose; the per-address limit is higher than the per-user one because
several people may share one address.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

MAX_KEYS = 10_000


@dataclass(frozen=True)
class BackoffPolicy:
    """How many failures are free, the first lockout, the ceiling, when to forget."""

    free_failures: int
    first_lockout: float  # seconds
    max_lockout: float  # seconds
    forget_after: float  # seconds without a failure

    def lockout(self, failures: int) -> float:
        """Seconds locked after `failures` consecutive failures (0 while still free)."""
        extra = failures - self.free_failures
        if extra < 0:
            return 0.0
        return min(self.first_lockout * 2.0 ** min(extra, 32), self.max_lockout)


PER_USER = BackoffPolicy(free_failures=5, first_lockout=30.0, max_lockout=900.0,
                         forget_after=3600.0)
PER_ADDRESS = BackoffPolicy(free_failures=20, first_lockout=30.0, max_lockout=900.0,
                            forget_after=3600.0)


@dataclass(frozen=True)
class _Record:
    failures: int
    last_failure: float
    locked_until: float


class Throttle:
    """Failure counts and lockouts for one kind of key (user names, or addresses)."""

    def __init__(self, policy: BackoffPolicy, clock: Callable[[], float] = time.time,
                 max_keys: int = MAX_KEYS) -> None:
        self.policy = policy
        self._clock = clock
        self._max = max_keys
        self._records: dict[str, _Record] = {}
        self._lock = threading.Lock()

    def locked_until(self, key: str) -> float | None:
        """The time (epoch seconds) `key` is locked until, or None when it may try."""
        with self._lock:
            record = self._live(key)
            if record is None or record.locked_until <= self._clock():
                return None
            return record.locked_until

    def failure(self, key: str) -> int:
        """Count a failure for `key`; returns its consecutive failures so far."""
        now = self._clock()
        with self._lock:
            record = self._live(key)
            failures = 1 if record is None else record.failures + 1
            if key not in self._records and len(self._records) >= self._max:
                self._evict(now)
            self._records[key] = _Record(failures, now, now + self.policy.lockout(failures))
        return failures

    def reset(self, key: str) -> None:
        """Forget `key`'s failures (after a successful sign-in)."""
        with self._lock:
            self._records.pop(key, None)

    def _live(self, key: str) -> _Record | None:
        record = self._records.get(key)
        if record is not None and (record.last_failure + self.policy.forget_after
                                   <= self._clock() and record.locked_until <= self._clock()):
            del self._records[key]
            return None
        return record

    def _evict(self, now: float) -> None:
        """Make room: forget quiet keys first, then the least recently failed one."""
        for key in [k for k, r in self._records.items()
                    if r.last_failure + self.policy.forget_after <= now and r.locked_until <= now]:
            del self._records[key]
        if len(self._records) >= self._max:
            oldest = min(self._records, key=lambda k: self._records[k].last_failure)
            del self._records[oldest]
