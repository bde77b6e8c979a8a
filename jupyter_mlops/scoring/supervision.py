"""The service's periodic work (following the alias, writing the log, spilling it)
run under supervision, and what `/health` makes of it.

Each task runs in a worker thread every `period` seconds. No exception ends
it: a failure is reported once (a different failure again; "working again"
when a round goes well) and the task is retried after `FIRST_RETRY_SECONDS`,
then twice as long each time up to `MAX_RETRY_SECONDS`, until it works.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..console_log import send_to_stderr
from ..errors import MlopsError
from .holder import ModelHolder
from .logger import BufferedLogger, PredictionLogUnavailable, SpillFailed

service_log = logging.getLogger("jupyter_mlops.scoring")

FIRST_RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 30.0
STUCK_SECONDS = 60.0  # a round running longer than this is reported by /health


class Periodic:
    """`work` every `period` seconds in a worker thread, until `run`'s stop; supervised.

    `problem` is the last round's failure as the log says it (None when it
    went well), `cause` the same in short for /health, `since` when the current
    run of failures began. `wake` (from the
    event loop's thread) starts a round now.
    """

    def __init__(self, what: str, work: Callable[[], object], period: float, *,
                 shown: Callable[[str], str] = str, says: bool = True) -> None:
        self.what = what
        self.says = says  # False: failures are kept for /health, not said in the log
        self.work = work
        self.period = period
        self.shown = shown  # how a problem is shown to /health (e.g. without the root path)
        self.problem: str | None = None
        self.cause: str | None = None
        self.since: float | None = None
        self.failures = 0
        self.started: float | None = None  # when the running round began (monotonic)
        self._wake = asyncio.Event()
        self._reported: str | None = None

    def wake(self) -> None:
        self._wake.set()

    def retry_delay(self) -> float:
        """Seconds before the next try after `failures` failed rounds in a row."""
        backoff = FIRST_RETRY_SECONDS * 2 ** min(self.failures - 1, 16)
        return max(self.period, min(backoff, MAX_RETRY_SECONDS))

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        delay = self.period
        while not stop.is_set():
            await _first(stop, self._wake, delay)
            if stop.is_set():
                return
            self._wake.clear()
            self.started = time.monotonic()
            try:
                await loop.run_in_executor(None, self.work)
            except Exception as exc:  # e.g. the alias was removed, the disk is full
                self._failed(exc)
                delay = self.retry_delay()
            else:
                self._worked()
                delay = self.period
            finally:
                self.started = None

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        if self.since is None:
            self.since = time.time()
        self.problem = _problem(exc, self.what)
        self.cause = _cause(exc)
        key = _problem_key(exc)
        if key != self._reported and self.says:
            service_log.warning("%s", printable(
                f"{self.problem}; retrying in {FIRST_RETRY_SECONDS:g} s, then less often "
                f"(at least every {MAX_RETRY_SECONDS:g} s)"))
        self._reported = key

    def _worked(self) -> None:
        if self._reported is not None and self.says:
            service_log.info("%s: working again", self.what)
        self._reported = self.problem = self.cause = self.since = None
        self.failures = 0


async def _first(stop: asyncio.Event, wake: asyncio.Event, timeout: float) -> None:
    """Wait until `stop` or `wake` is set, or `timeout` seconds pass."""
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def relieve(logger: BufferedLogger, writer: Periodic,
            write_now: Callable[[], None]) -> None:
    """The buffer is at its bound: flush now if the log is being written well,
    else spill the rows to a file (raises `SpillFailed`: they stay in memory)."""
    if logger.pending() < logger.max_rows:
        return
    if writer.problem is None and writer.started is None:
        write_now()
        return
    count = logger.spill()
    if count and logger.spilled_waiting() == count:  # the first since all were written
        service_log.info("%s", printable(
            f"prediction-log rows are spilled to {logger.spill_folder.shown()} while the log "
            f"can't take them ({count} so far; /health counts them); they are written to "
            f"the log when it can"))


@dataclass(frozen=True)
class Watch:
    """What `/health` looks at.

    In the service's writer process `logger`, `writer` and `spiller` are its
    own; in a serving process `logger` is the `logwriter.LogFeed` to it and
    `writer`/`spiller` are None: the log's reasons are then the ones the writer
    process last reported (`logger.reasons()`).
    """

    holder: ModelHolder
    logger: Any  # BufferedLogger, or a LogFeed
    follower: Periodic  # following the alias
    writer: Periodic | None = None  # writing the prediction log
    spiller: Periodic | None = None  # spilling what the log can't take
    team: Any = None  # team mode: the `team.TeamPredictionLog` the log is shipped through

    def reasons(self) -> list[str]:
        """Why the service is degraded, one line each; empty when all is well."""
        reasons = []
        current = self.holder.current
        serving = f"; still serving {current.version.ref}" if current else ""
        if self.follower.problem is not None:
            reasons.append(f"following {self.holder.ref} fails since "
                           f"{_when(self.follower.since)}: "
                           f"{self.follower.shown(self.follower.cause or '')}{serving}")
        refused = self.holder.refused
        if refused is not None and current is not None:
            reasons.append(f"still serving {current.version.ref}: {refused.version.ref}, which "
                           f"{self.holder.ref} points at, could not be loaded: "
                           f"{self.follower.shown(str(refused.reason))}")
        if self.writer is not None and self.spiller is not None:
            reasons += log_reasons(self.logger, self.writer, self.spiller, self.team)
        else:
            reasons += self.logger.reasons()
        reasons += stuck_reasons([self.follower])
        return [printable(reason) for reason in reasons]


def log_reasons(logger: BufferedLogger, writer: Periodic, spiller: Periodic,
                team: Any = None) -> list[str]:
    """Why the prediction log needs a look, one line each (what the writer process
    reports to the serving processes' /health)."""
    pending, spilled = logger.pending(), logger.spilled_waiting()
    folder = logger.spill_folder.shown()
    reasons = []
    if writer.problem is not None:
        reasons.append(f"the prediction log can't be written since {_when(writer.since)} "
                       f"({writer.shown(writer.cause or '')}); {pending} rows wait in memory "
                       f"and {spilled} in {folder}, nothing is lost; retrying at least "
                       f"every {MAX_RETRY_SECONDS:g} s")
    elif spilled:
        reasons.append(f"{spilled} prediction-log rows spilled to {folder} are not yet in "
                       "the log; they are written when it can take them")
    elif pending > logger.max_rows // 2:
        reasons.append(f"{pending} prediction-log rows wait to be written (rows are "
                       f"spilled to a file past {logger.max_rows})")
    if logger.recovery_problem is not None:
        reasons.append(writer.shown(logger.recovery_problem))
    if spiller.problem is not None:
        reasons.append(f"rows can't be spilled either since {_when(spiller.since)} "
                       f"({spiller.shown(spiller.cause or '')}): {pending} held in "
                       f"memory, past the bound of {logger.max_rows}")
    if team is not None and team.behind and team.unacknowledged():
        reasons.append(f"{team.unacknowledged()} prediction-log records wait for "
                       f"the team server {team.client.url}, which does not take "
                       f"them now; they are kept in .mlops/spool/ and sent when it does")
    return [printable(reason) for reason in reasons + stuck_reasons([writer, spiller])]


def stuck_reasons(tasks: list[Periodic]) -> list[str]:
    """A line for each task whose current round has run longer than `STUCK_SECONDS`."""
    reasons = []
    for task in tasks:
        started = task.started
        if started is not None and time.monotonic() - started > STUCK_SECONDS:
            reasons.append(f"{task.what}: one round has run for "
                           f"{time.monotonic() - started:.0f} s")
    return reasons


def _when(epoch: float | None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch or 0))


def _problem(exc: Exception, what: str) -> str:
    """One line for an exception of a periodic task: ours say it all; others get context."""
    if isinstance(exc, MlopsError):
        return str(exc)
    return f"{what} failed: {type(exc).__name__}: {exc}"


def _cause(exc: Exception) -> str:
    """The failure itself, without the task's context: what /health shows."""
    reason = exc.reason if isinstance(exc, PredictionLogUnavailable | SpillFailed) else exc
    if isinstance(reason, MlopsError):
        return str(reason)
    return f"{type(reason).__name__}: {reason}"


def _problem_key(exc: Exception) -> str:
    """What makes two failures of a periodic task the same problem, reported once.

    Not the message: the rows kept change each round, and so does the temporary
    file an `OSError` names.
    """
    reason = exc.reason if isinstance(exc, PredictionLogUnavailable | SpillFailed) else exc
    if isinstance(reason, OSError):
        return f"{type(exc).__name__} {type(reason).__name__} {reason.errno} {reason.strerror}"
    return f"{type(exc).__name__} {type(reason).__name__} {reason}"


def report(text: str) -> None:
    """One line in the service's log (stderr), control characters escaped."""
    service_log.warning("%s", printable(text))


def log_to_stderr() -> None:
    """Send the service's log lines to stderr as `mlops serve: ...` (once per process)."""
    send_to_stderr(service_log, "mlops serve: %(message)s")


def printable(text: str, limit: int = 500) -> str:
    """`text` on one line: control characters escaped, cut at `limit`."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:limit])
