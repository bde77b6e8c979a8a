"""Why do two runs differ? `mlops runs diff A B`: what changed in their inputs first (data,
parameters, code, packages), then what changed in their results, and the unified diff of
their code cells from the snapshots the runs stored (not today's files)."""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..inspection import ComparisonRow, compare_runs
from ..store import Store
from ..store.records import Run

# Causes before effects: a changed input explains a changed metric, not the reverse.
SECTION_ORDER = ("data", "params", "code", "environment", "metrics", "run")
MAX_SNAPSHOT_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class RunDiff:
    a: Run
    b: Run
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
    sources = [_code_of(store, read_blob, run) for run in (first, second)]
    missing = [f"run {run.id}" for run, source in zip((first, second), sources, strict=True)
               if source is None]
    if missing:
        return RunDiff(first, second, tuple(rows), (),
                       f"no stored source snapshot for {' and '.join(missing)}")
    (name_a, lines_a), (name_b, lines_b) = sources  # type: ignore[misc]
    diff = tuple(line.rstrip("\n") for line in difflib.unified_diff(
        lines_a, lines_b, fromfile=f"run {first.id}: {name_a}",
        tofile=f"run {second.id}: {name_b}"))
    return RunDiff(first, second, tuple(rows), diff, None)


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
    try:
        cells = json.loads(text).get("cells", [])
    except (ValueError, AttributeError):
        return name, text.splitlines(keepends=True)
    lines: list[str] = []
    code_cells = [c for c in cells if isinstance(c, dict) and c.get("cell_type") == "code"]
    for number, cell in enumerate(code_cells, start=1):
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        lines.append(f"# cell {number}\n")
        lines.extend(line if line.endswith("\n") else line + "\n"
                     for line in source.splitlines())
    return name, lines


def diff_text(found: RunDiff) -> str:
    """The diff as `mlops runs diff` and `%mlops diff` print it."""
    from ..views import text_table

    a, b = found.a, found.b
    if not found.rows and not found.code_diff:
        return (f"runs {a.id} and {b.id} differ in nothing recorded"
                + (f" ({found.code_note})" if found.code_note else ""))
    parts = []
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
