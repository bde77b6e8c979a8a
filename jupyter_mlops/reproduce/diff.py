"""Why do two runs differ? `mlops runs diff A B`: what changed in their inputs first (data,
parameters, code, packages), then what changed in their results, and the unified diff of
their code cells from the snapshots the runs stored (not today's files). A dataset whose
digest changed is explained by what the store knows of its shape: row counts and columns
added, removed or retyped, which says more than two digests."""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..inspection import ComparisonRow, compare_runs
from ..store import Store
from ..store.records import DatasetVersion, Run, RunDataset
from .cells import cell_text, code_cells

# Causes before effects: a changed input explains a changed metric, not the reverse.
SECTION_ORDER = ("data", "params", "code", "environment", "metrics", "run")
MAX_SNAPSHOT_BYTES = 64 * 1024 * 1024
# Of a run's code, diffed line by line: difflib's time grows with the product of the two
# sides when lines repeat, so a crafted snapshot could hold the lab server's thread for
# minutes; 20,000 lines a side diff in about a second.
MAX_CODE_LINES = 20_000


@dataclass(frozen=True)
class TypeChange:
    column: str
    a: str
    b: str


@dataclass(frozen=True)
class DataChange:
    """One dataset (same role, same source) whose digest differs between the two runs, or
    that only one run used; `None` where a run did not use it or its shape is unknown."""

    role: str  # input | output
    source: str
    digests: tuple[str | None, str | None]
    rows: tuple[int | None, int | None]
    columns_added: tuple[str, ...]  # in run b's schema, not in run a's
    columns_removed: tuple[str, ...]
    types_changed: tuple[TypeChange, ...]
    summary: str  # the facts above as one line: `rows 426 -> 430; columns added: x`


@dataclass(frozen=True)
class RunDiff:
    a: Run
    b: Run
    data_changes: tuple[DataChange, ...]  # the data rows of `rows`, explained
    rows: tuple[ComparisonRow, ...]  # only what differs, most telling first
    code_diff: tuple[str, ...]  # unified diff of the code cells; empty when the code is equal
    code_note: str | None  # why there is no code diff to show (a snapshot missing), or None


def diff_runs(store: Store, read_blob: Callable[[str], bytes], a: str | int, b: str | int
              ) -> RunDiff:
    """`read_blob(digest)` gives a stored file's bytes (the project's artifact store, or the
    team server's)."""
    comparison = compare_runs(store, [a, b])
    first, second = comparison.runs
    rows = sorted(comparison.differences,
                  key=lambda row: SECTION_ORDER.index(row.section)
                  if row.section in SECTION_ORDER else len(SECTION_ORDER))
    changes = data_changes(store.datasets.for_run(first.id), store.datasets.for_run(second.id),
                           (first.id, second.id))
    sources = [_code_of(store, read_blob, run) for run in (first, second)]
    missing = [f"run {run.id}" for run, source in zip((first, second), sources, strict=True)
               if source is None]
    if missing:
        return RunDiff(first, second, changes, tuple(rows), (),
                       f"no stored source snapshot for {' and '.join(missing)}")
    huge = [f"run {run.id}" for run, source in zip((first, second), sources, strict=True)
            if source is not None and len(source[1]) > MAX_CODE_LINES]
    if huge:
        return RunDiff(first, second, changes, tuple(rows), (),
                       f"the code of {' and '.join(huge)} has more than {MAX_CODE_LINES} "
                       "lines: not diffed (compare the snapshots with a diff tool)")
    (name_a, lines_a), (name_b, lines_b) = sources  # type: ignore[misc]
    diff = tuple(line.rstrip("\n") for line in difflib.unified_diff(
        lines_a, lines_b, fromfile=f"run {first.id}: {name_a}",
        tofile=f"run {second.id}: {name_b}"))
    return RunDiff(first, second, changes, tuple(rows), diff, None)


def data_changes(used_a: list[RunDataset], used_b: list[RunDataset], run_ids: tuple[int, int]
                 ) -> tuple[DataChange, ...]:
    """The datasets (matched by role and source, as `compare_runs` matches them) whose
    digests differ, each with its row counts and schema changes, inputs first."""
    by_key_a = _first_by_key(used_a)
    by_key_b = _first_by_key(used_b)
    keys = sorted(by_key_a.keys() | by_key_b.keys(),
                  key=lambda key: (key[0] != "input", key[0], key[1]))
    changes = []
    for role, source in keys:
        a, b = by_key_a.get((role, source)), by_key_b.get((role, source))
        if a is not None and b is not None and a.dataset.digest == b.dataset.digest:
            continue
        changes.append(_data_change(role, source, a and a.dataset, b and b.dataset, run_ids))
    return tuple(changes)


def _first_by_key(used: list[RunDataset]) -> dict[tuple[str, str], RunDataset]:
    found: dict[tuple[str, str], RunDataset] = {}
    for item in used:
        found.setdefault((item.role, item.source), item)
    return found


def _data_change(role: str, source: str, a: DatasetVersion | None, b: DatasetVersion | None,
                 run_ids: tuple[int, int]) -> DataChange:
    digests = (a and a.digest, b and b.digest)
    rows = (a and a.rows, b and b.rows)
    if a is None or b is None:
        only, count = (run_ids[0], rows[0]) if b is None else (run_ids[1], rows[1])
        summary = f"only in run {only}" + ("" if count is None else f" ({count} rows)")
        return DataChange(role, source, digests, rows, (), (), (), summary)
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    retyped: tuple[TypeChange, ...] = ()
    same_rows = a.rows is not None and a.rows == b.rows
    if a.schema is None or b.schema is None:
        shape = ["schema not recorded"]
    else:
        added = tuple(c for c in b.schema if c not in a.schema)
        removed = tuple(c for c in a.schema if c not in b.schema)
        retyped = tuple(TypeChange(c, a.schema[c], b.schema[c]) for c in a.schema
                        if c in b.schema and a.schema[c] != b.schema[c])
        shape = _schema_changes(added, removed, retyped)
        if not shape and same_rows:
            return DataChange(role, source, digests, rows, (), (), (),
                              f"values changed; same rows ({a.rows}) and columns")
        shape = shape or ["same columns"]
    if a.rows is None or b.rows is None:
        counted = "rows not recorded" + (f"; size {a.size} -> {b.size} bytes"
                                         if a.size is not None and b.size is not None else "")
    else:
        counted = f"rows {a.rows} (same)" if same_rows else f"rows {a.rows} -> {b.rows}"
    return DataChange(role, source, digests, rows, added, removed, retyped,
                      "; ".join([counted, *shape]))


def _schema_changes(added: tuple[str, ...], removed: tuple[str, ...],
                    retyped: tuple[TypeChange, ...]) -> list[str]:
    parts = []
    if added:
        parts.append("columns added: " + ", ".join(added))
    if removed:
        parts.append("columns removed: " + ", ".join(removed))
    if retyped:
        parts.append("type changed: " + ", ".join(f"{t.column} {t.a} -> {t.b}"
                                                   for t in retyped))
    return parts


def _code_of(store: Store, read_blob: Callable[[str], bytes], run: Run
             ) -> tuple[str, list[str]] | None:
    """(file name, lines of its code) from the run's source snapshot: a notebook's code
    cells, each under a `# cell N` line; a script as it is."""
    snapshots = [a for a in store.artifacts.for_run(run.id)
                 if a.name.startswith("source/") and a.kind in ("notebook", "source")]
    if not snapshots or snapshots[0].size > MAX_SNAPSHOT_BYTES:
        return None
    snapshot = snapshots[0]
    name = snapshot.name.removeprefix("source/")
    text = read_blob(snapshot.digest).decode("utf-8", errors="replace")
    if not name.endswith(".ipynb"):
        return name, text.splitlines(keepends=True)
    code = code_cells(text)
    if not code and not _looks_like_notebook(text):
        return name, text.splitlines(keepends=True)
    lines: list[str] = []
    for number, cell in enumerate(code, start=1):
        lines.append(f"# cell {number}\n")
        lines.extend(line if line.endswith("\n") else line + "\n"
                     for line in cell_text(cell).splitlines())
    return name, lines


def _looks_like_notebook(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except (ValueError, RecursionError):
        return False


def diff_text(found: RunDiff) -> str:
    """The diff as `mlops runs diff` and `%mlops diff` print it."""
    from ..views import text_table

    a, b = found.a, found.b
    if not found.rows and not found.code_diff:
        return (f"runs {a.id} and {b.id} differ in nothing recorded"
                + (f" ({found.code_note})" if found.code_note else ""))
    parts = []
    if found.data_changes:
        parts.append(text_table(["data", "", "what changed"],
                                [[change.role, change.source, change.summary]
                                 for change in found.data_changes]))
    if found.rows:
        parts.append(text_table(["", "", f"run {a.id}", f"run {b.id}"],
                                [[row.section, row.key,
                                  *("" if v is None else v for v in row.values)]
                                 for row in found.rows]))
    if found.code_diff:
        parts.append("\n".join(found.code_diff))
    elif found.code_note:
        parts.append(f"code: {found.code_note}")
    return "\n\n".join(parts)


def blob_reader(project: Any, store: Any) -> Callable[[str], bytes]:
    """A stored file's bytes by digest: the team server's (downloaded, verified) when
    `store` is a `RemoteStore`, else the project's artifact store's."""
    if getattr(store, "remote", False):
        import io

        def read_remote(digest: str) -> bytes:
            out = io.BytesIO()
            store.client.get_blob(digest, out)
            return out.getvalue()

        return read_remote
    from ..artifacts import ArtifactStore

    return ArtifactStore(project.artifacts_dir).read_bytes
