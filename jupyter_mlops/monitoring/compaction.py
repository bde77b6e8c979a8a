"""Compaction of the prediction log: a finished hour's small batch files (the service
writes one a second) merged into one file, so that a report reads a few dozen files
instead of tens of thousands.

Each merge keeps every row exactly once, whatever stops it:

1. the rows of the hour's files are read and written, in the log's order, as a new
   `compact-<hour>-<id>.parquet` (temp file, then rename);
2. one store transaction indexes the new file, drops the small files' batch rows
   and lists their files in `retired_prediction_files`;
3. the small files are unlinked, then struck off that list.

A reader lists the batch files in one query, so it sees the small files or the
merged one, never both (and lists again if a file it listed is gone). Killed
before 2, the merged file is in no batch row: the next compaction removes it (only
a compaction, holding `.compact.lock`, writes `compact-` files). Killed after 2,
the small files are listed as retired: the next compaction unlinks them.
Writers keep adding files meanwhile: a merge drops only the batch rows it read,
and only hours that ended `settle` seconds ago are merged (a file flushed late
into a merged hour is merged with it next time).
"""

from __future__ import annotations

import fcntl
import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..artifacts import remove_stale_files
from ..errors import IntegrityError, InvalidInput, StoreUnavailable
from ..project import modes_for
from ..store import Store
from ..store.predictions import PredictionBatch
from .predlog import in_log_order, read_files

if TYPE_CHECKING:
    from .predlog import PredictionLog

HOUR = 3600.0
MAX_ROWS = 500_000  # rows of one merged file: a busy hour makes several
SETTLE_SECONDS = 120.0  # an hour is merged once it ended this long ago
COMPACT_PREFIX = "compact-"
LOCK_FILE = ".compact.lock"


@dataclass(frozen=True)
class Compaction:
    name: str
    merged: int = 0  # small files merged
    written: int = 0  # merged files written
    rows: int = 0  # rows moved into merged files
    cleaned: int = 0  # files a killed compaction or writer left, removed
    busy: bool = False  # another compaction was running: nothing was done
    skipped: tuple[str, ...] = ()  # groups of files left as they are, and why


@contextmanager
def _compaction_lock(log: PredictionLog, name: str, wait: bool) -> Iterator[bool]:
    """Hold `name`'s compaction lock (an flock, released if the process dies);
    yields False when `wait` is off and another compaction holds it."""
    folder = log.folder(name)
    try:
        fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW
                     | getattr(os, "O_CLOEXEC", 0), modes_for(folder)[1])
    except OSError as exc:
        raise StoreUnavailable(f"cannot open {name!r}'s compaction lock "
                               f"predictions/{name}/{LOCK_FILE} ({type(exc).__name__}: "
                               f"{exc.strerror or exc}); nothing was compacted") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def compact(log: PredictionLog, store: Store, name: str, *, now: float | None = None,
            settle: float = SETTLE_SECONDS, max_rows: int = MAX_ROWS,
            wait: bool = True) -> Compaction:
    """Merge the small batch files of each hour of `name`'s log that ended `settle`
    seconds before `now` into files of at most `max_rows` rows; finish what a killed
    compaction left. Safe to run at any time, from any thread or process, while the
    service writes: one compaction runs at a time per model (`wait=False`: return at
    once, `busy`, when another one is running, as a background caller should).
    `settle=0` also merges the hour that just ended (never the current one)."""
    if not (math.isfinite(settle) and settle >= 0):
        raise InvalidInput(f"settle must be a number of seconds, 0 or more; got {settle}")
    if max_rows < 2:
        raise InvalidInput(f"max_rows must be at least 2; got {max_rows}")
    folder = log.folder(name)
    if not folder.is_dir():
        return Compaction(name)
    now = time.time() if now is None else now
    with _compaction_lock(log, name, wait) as held:
        if not held:
            return Compaction(name, busy=True)
        cleaned = _finish_retired(log, store, name) + _remove_orphans(log, store, name)
        merged = written = rows = 0
        skipped: list[str] = []
        cutoff = math.floor((now - settle) / HOUR) * HOUR
        for group in plan(store.predictions.batches(name), cutoff, max_rows):
            problem = _merge(log, store, name, group)
            if problem is not None:
                skipped.append(problem)
                continue
            merged += len(group)
            written += 1
            rows += sum(b.rows for b in group)
        return Compaction(name, merged, written, rows, cleaned, False, tuple(skipped))


def plan(batches: list[PredictionBatch], cutoff: float,
         max_rows: int = MAX_ROWS) -> list[list[PredictionBatch]]:
    """Groups of two or more batches (in the log's order) to merge: files smaller than
    `max_rows` whose first row is before `cutoff`, by the hour of their first row, cut
    so that no group holds more than `max_rows` rows."""
    hours: dict[float, list[PredictionBatch]] = {}
    for batch in batches:
        if batch.first_at < cutoff and batch.rows < max_rows:
            hours.setdefault(math.floor(batch.first_at / HOUR), []).append(batch)
    groups: list[list[PredictionBatch]] = []
    for members in hours.values():
        group: list[PredictionBatch] = []
        total = 0
        for batch in members:
            if group and total + batch.rows > max_rows:
                groups.append(group)
                group, total = [], 0
            group.append(batch)
            total += batch.rows
        groups.append(group)
    return [g for g in groups if len(g) > 1]


def _merge(log: PredictionLog, store: Store, name: str,
           group: list[PredictionBatch]) -> str | None:
    """Merge `group` into one file; returns why not when the group is left as it is."""
    import pyarrow as pa

    hour = time.strftime("%Y%m%dT%H", time.gmtime(group[0].first_at))
    what = f"{len(group)} files of {hour}"
    try:
        found, vanished = read_files(log.project.home, group)
    except IntegrityError as exc:
        return f"{what}: {exc}"
    if vanished:
        return f"{what}: a file is missing from disk"
    try:
        table = pa.concat_tables([found[b.path] for b in group], promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        return f"{what}: their columns do not merge ({str(exc)[:200]})"
    table = in_log_order(table)
    expected = sum(b.rows for b in group)
    if table.num_rows != expected:
        return f"{what}: the files hold {table.num_rows} rows, the index says {expected}"
    try:
        path = log._write_file(name, COMPACT_PREFIX, None, table, stamp=hour)
    except OSError as exc:  # disk full, folder read-only: the small files stay as they are
        return f"{what}: could not write the merged file ({type(exc).__name__}: {exc})"
    relative = log.relative(path)
    try:
        sources = sorted({b.source for b in group})
        batch_id = store.predictions.replace_batches(
            name, group, relative, expected, sum(b.errors for b in group), "+".join(sources))
    except BaseException:
        try:  # interrupted: did the transaction commit before it?
            kept = relative in store.predictions.indexed_paths(name)
        except Exception:  # noqa: BLE001 - unknown: the next compaction's clean-up decides
            kept = True
        if not kept:
            path.unlink(missing_ok=True)  # in no batch row: never read
        raise
    if batch_id is None:
        path.unlink(missing_ok=True)
        return f"{what}: the index changed while they were merged"
    _unlink_retired(log, store, [b.path for b in group])
    return None


def _unlink_retired(log: PredictionLog, store: Store, paths: list[str],
                    keep: frozenset[str] = frozenset()) -> int:
    """Unlink the retired files `paths` (but those in `keep`) and strike them off."""
    removed = 0
    for path in paths:
        if path in keep:
            continue
        try:
            (log.project.home / path).unlink()
            removed += 1
        except FileNotFoundError:
            pass
    store.predictions.forget_retired(paths)
    return removed


def _finish_retired(log: PredictionLog, store: Store, name: str) -> int:
    """Unlink the files a killed compaction had retired but not yet removed."""
    retired = store.predictions.retired_files(name)
    if not retired:
        return 0
    return _unlink_retired(log, store, retired,
                           frozenset(store.predictions.indexed_paths(name)))


def _remove_orphans(log: PredictionLog, store: Store, name: str) -> int:
    """Remove merged files no batch row names (a compaction killed before its
    transaction) and temporaries no live writer holds. Called under the lock: no other
    compaction is writing a merged file."""
    folder = log.folder(name)
    indexed = store.predictions.indexed_paths(name)
    removed = 0
    with os.scandir(folder) as entries:
        for entry in entries:
            if (entry.name.startswith(COMPACT_PREFIX) and entry.name.endswith(".parquet")
                    and entry.is_file(follow_symlinks=False)
                    and log.relative(folder / entry.name) not in indexed):
                os.unlink(entry.path)
                removed += 1
    return removed + remove_stale_files(folder, 0.0, time.time(), ".tmp")[0]


def describe(result: Compaction) -> str:
    """One line for a person."""
    if result.busy:
        return f"{result.name}: another compaction is running; nothing done"
    text = (f"{result.name}: merged {result.merged} files into {result.written} "
            f"({result.rows} rows)" if result.written else f"{result.name}: nothing to merge")
    if result.cleaned:
        text += f"; removed {result.cleaned} files an interrupted write left"
    return text + "".join(f"; left {s}" for s in result.skipped)
