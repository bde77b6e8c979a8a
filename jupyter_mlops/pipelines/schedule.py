"""Cron schedules for pipelines (croniter parses the expressions).

A pipeline is due when a cron slot has passed since its last scheduled run
(or since the scheduler started, for a pipeline never scheduled before).
After downtime that covers several slots it runs once, not once per slot.

Each pipeline's failure is its own: it is logged and recorded as a failed
scheduled run with its reason (so it runs again at its next slot, not at every
poll), and the scheduler goes on with the others.
"""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from ..errors import MlopsError
from ..hashing import digest_file
from ..store import Store
from .spec import PipelineSpec


def last_slot(expression: str, now: float) -> float:
    """The latest cron slot at or before `now` (epoch seconds, local time)."""
    from croniter import croniter

    # get_prev is strictly before its base: start a second later to include `now`.
    base = datetime.fromtimestamp(now + 1).astimezone()
    return croniter(expression, base).get_prev(datetime).timestamp()


def is_due(expression: str, last_run: float | None, since: float, now: float) -> bool:
    """Due when a slot lies in (last scheduled run or scheduler start, now]."""
    reference = last_run if last_run is not None else since
    return last_slot(expression, now) > reference


def last_scheduled_run(store: Store, name: str) -> float | None:
    runs = [r for r in store.pipelines.recent(name, limit=50) if r.trigger == "schedule"]
    return runs[0].started_at if runs else None


def crontab_lines(specs: Sequence[PipelineSpec], mlops_command: str | None = None) -> list[str]:
    """One crontab line per scheduled pipeline, running it from the project root."""
    command = mlops_command or shlex.quote(str(Path(sys.executable).with_name("mlops")))
    lines = []
    for spec in specs:
        if not spec.schedule:
            continue
        relative = spec.path.relative_to(spec.root) if spec.path.is_relative_to(spec.root) \
            else spec.path
        log = f".mlops/logs/{spec.name}.log"
        lines.append(f"{spec.schedule} cd {shlex.quote(str(spec.root))} && mkdir -p .mlops/logs "
                     f"&& {command} pipeline run {shlex.quote(str(relative))} "
                     f"--trigger schedule >> {shlex.quote(log)} 2>&1")
    return lines


def run_scheduler(load_specs: Callable[[], list[PipelineSpec]], store: Store,
                  run_pipeline: Callable[[PipelineSpec], None], *, once: bool = False,
                  poll_seconds: float = 30.0, log: Callable[[str], None] = print,
                  clock: Callable[[], float] = time.time,
                  sleep: Callable[[float], None] = time.sleep) -> int:
    """Run each scheduled pipeline when due; specs are re-read every pass.

    Returns the number of pipeline runs started. With `once`, checks one time.
    """
    started_at = clock()
    count = 0
    while True:
        now = clock()
        for spec in load_specs():
            try:
                if not spec.schedule:
                    continue
                if not is_due(spec.schedule, last_scheduled_run(store, spec.name),
                              started_at, now):
                    continue
                if store.pipelines.is_running(spec.name):
                    log(f"{spec.name}: due, but a run is still going; waiting for it")
                    continue
                log(f"{spec.name}: due ({spec.schedule}), starting")
                count += 1
                _run_isolated(spec, store, run_pipeline, log)
            except Exception as exc:  # noqa: BLE001 - e.g. the store locked for a while
                log(f"{spec.name}: not checked this time: {_reason(exc)}")
        if once:
            return count
        sleep(poll_seconds)


def _run_isolated(spec: PipelineSpec, store: Store,
                  run_pipeline: Callable[[PipelineSpec], None],
                  log: Callable[[str], None]) -> None:
    """Run one pipeline; a failure is logged and recorded, never raised."""
    before = _latest_run_id(store, spec.name)
    try:
        run_pipeline(spec)
    except Exception as exc:  # noqa: BLE001 - one pipeline must not stop the others
        reason = _reason(exc)
        log(f"{spec.name}: failed: {reason}; it runs again at its next slot")
        if _latest_run_id(store, spec.name) == before:  # failed before recording a run
            record_failed_run(store, spec, reason)


def record_failed_run(store: Store, spec: PipelineSpec, reason: str) -> int:
    """A scheduled run of `spec` that failed before any step ran, with its reason."""
    try:
        digest = digest_file(spec.path)
    except (OSError, MlopsError):
        digest = ""
    run_id = store.pipelines.start(spec.name, str(spec.path), digest, "schedule",
                                   list(spec.order))
    store.pipelines.finish(run_id, "failed", reason[:2000])
    return run_id


def _latest_run_id(store: Store, name: str) -> int | None:
    runs = store.pipelines.recent(name, limit=1)
    return runs[0].id if runs else None


def _reason(exc: Exception) -> str:
    """An error's message; a bug's (not an MlopsError) keeps its type name."""
    return str(exc) if isinstance(exc, MlopsError) else f"{type(exc).__name__}: {exc}"
