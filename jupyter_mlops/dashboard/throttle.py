"""Back-off after failed sign-ins, per user name and per client address.

A few failures are free (typos happen). After that every failure locks the
key for a delay that doubles with each further failure, up to a ceiling: an
attacker gets a handful of guesses an hour instead of thousands a minute.
During a lockout no password is checked at all, so even the right one is
refused, with the time to come back. Failures are forgotten after a quiet
period. The cost is that anyone can lock a user out for a while by failing on
purpose; the per-address limit is higher than the per-user one because
several people may share one address.

Memory stays bounded without ever forgetting a lockout early, so flooding
the dashboard with new names or addresses unlocks nobody:

- Only configured users can sign in, so each has a record of their own; any
  other name counts in one of `UNKNOWN_BUCKETS` shared records, picked by a
  keyed hash (`NameBuckets`). Unknown names still lock like known ones (a
  lockout does not tell them apart), and there are at most that many records.
- Past `max_keys` records (addresses), quiet records are dropped, then the
  least recently failed record that is not locked. When every record is
  locked, new keys count together in one overflow record, and a key without
  a record of its own answers to it: under such a flood sign-in from new
  addresses waits (fails closed) rather than going unthrottled.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

MAX_KEYS = 10_000
UNKNOWN_BUCKETS = 4096


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
        self._overflow: _Record | None = None  # new keys while every record is locked
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._records)

    def locked_until(self, key: str) -> float | None:
        """The time (epoch seconds) `key` is locked until, or None when it may try."""
        with self._lock:
            now = self._clock()
            record = self._live(key, now)
            if record is None:
                record = self._live_overflow(now)
            if record is None or record.locked_until <= now:
                return None
            return record.locked_until

    def failure(self, key: str) -> int:
        """Count a failure for `key`; returns its consecutive failures so far."""
        now = self._clock()
        with self._lock:
            record = self._live(key, now)
            if record is None and len(self._records) >= self._max:
                self._evict(now)
                if len(self._records) >= self._max:  # every record is locked
                    self._overflow = self._next(self._live_overflow(now), now)
                    return self._overflow.failures
            self._records[key] = self._next(record, now)
            return self._records[key].failures

    def reset(self, key: str) -> None:
        """Forget `key`'s failures (after a successful sign-in)."""
        with self._lock:
            self._records.pop(key, None)

    def _next(self, record: _Record | None, now: float) -> _Record:
        failures = 1 if record is None else record.failures + 1
        return _Record(failures, now, now + self.policy.lockout(failures))

    def _forgotten(self, record: _Record, now: float) -> bool:
        quiet = record.last_failure + self.policy.forget_after <= now
        return quiet and record.locked_until <= now

    def _live(self, key: str, now: float) -> _Record | None:
        record = self._records.get(key)
        if record is not None and self._forgotten(record, now):
            del self._records[key]
            return None
        return record

    def _live_overflow(self, now: float) -> _Record | None:
        if self._overflow is not None and self._forgotten(self._overflow, now):
            self._overflow = None
        return self._overflow

    def _evict(self, now: float) -> None:
        """Make room: forget quiet keys, else the least recently failed unlocked one.

        A locked record is never dropped: that would end its lockout early.
        """
        for key in [k for k, r in self._records.items() if self._forgotten(r, now)]:
            del self._records[key]
        if len(self._records) < self._max:
            return
        unlocked = [k for k, r in self._records.items() if r.locked_until <= now]
        if unlocked:
            del self._records[min(unlocked, key=lambda k: self._records[k].last_failure)]


class NameBuckets:
    """The throttle key of a user name: the name itself if configured, else a shared bucket.

    Unknown names are spread over `buckets` records by a keyed hash whose key
    is fresh for each process, so nobody can pick names that land in a given
    bucket: the per-user records stay at most the configured users plus
    `buckets`, and a name that was never tried is rarely seen locked.
    """

    def __init__(self, buckets: int = UNKNOWN_BUCKETS, key: bytes | None = None) -> None:
        self.buckets = buckets
        self._key = key if key is not None else secrets.token_bytes(32)

    def __repr__(self) -> str:  # never the key
        return f"NameBuckets({self.buckets})"

    def key(self, user: str, known: bool) -> str:
        """`user:NAME` for a configured user, `unknown:N` (N < buckets) for any other name."""
        digest = hmac.new(self._key, user.encode("utf-8", "surrogatepass"),
                          hashlib.sha256).digest()  # computed for both: the same work
        bucket = int.from_bytes(digest[:8], "big") % self.buckets
        return f"user:{user}" if known else f"unknown:{bucket}"
