"""Rendering recorded data as text, HTML or JSON-ready dicts, for every adapter.

Pure functions over the store's dataclasses: user strings are always escaped
in HTML.
"""

from __future__ import annotations

import dataclasses
import html
import math
import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .capture import UNTRACKED_SOURCE_TAG
from .inspection import Comparison, RunDetail
from .reproduce.readiness import NOT_REPRODUCIBLE_TAG
from .store.records import Run, StepFailure

MAX_METRIC_COLUMNS = 4


def to_jsonable(value: Any) -> Any:
    """Dataclasses (and what they hold) as plain JSON values. JSON has no NaN or
    infinity: they become the strings "NaN", "Infinity" and "-Infinity" (what
    JavaScript's `Number()` reads back), never null, which means "not recorded"."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        result = {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
        for name in ("duration", "differs", "ref"):
            if hasattr(type(value), name) and isinstance(getattr(type(value), name), property):
                result[name] = to_jsonable(getattr(value, name))
        return result
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Path):
        return str(value)
    return value


def format_time(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _metric_columns(runs: Sequence[Run]) -> list[str]:
    counts = Counter(key for run in runs for key in run.metrics)
    return [key for key, _ in counts.most_common(MAX_METRIC_COLUMNS)]


def runs_table(runs: Sequence[Run]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the runs list, with the most common metrics as columns."""
    metrics = _metric_columns(runs)
    header = ["id", "status", "name", "notebook", "started", "duration", *metrics]
    rows = []
    for run in runs:
        rows.append([
            str(run.id), run.status, run.name or "",
            Path(run.notebook).name if run.notebook else "",
            format_time(run.started_at), format_duration(run.duration),
            *[_fmt(run.metrics.get(key)) for key in metrics],
        ])
    return header, rows


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
              for row in rows]
    return "\n".join(lines)


# Bidirectional embedding, override and isolate controls: invisible, they reorder the
# text after them (a run named "\u202eevil" reads backwards, and so does whatever
# follows it on the line), the "Trojan Source" trick. Shown as their code points.
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")


def escape_text(value: object) -> str:
    """A user string as HTML text: escaped, never markup, with bidirectional control
    characters made visible (`<U+202E>`) instead of reordering what surrounds them."""
    shown = _BIDI_CONTROLS.sub(lambda m: f"<U+{ord(m.group()):04X}>", str(value))
    return html.escape(shown)


def html_table(header: Sequence[str], rows: Sequence[Sequence[str]],
               highlight: Sequence[bool] | None = None, *,
               fit_widths: Sequence[str] | None = None) -> str:
    """An HTML table of escaped text cells; `highlight[i]` marks row i.

    With `fit_widths` (CSS widths of the first columns, e.g. ["6em", "11em"]) the table
    takes the width of its container and long values (digests, paths) wrap in their
    cells, so a many-run compare fits the notebook instead of widening it; the other
    columns share what is left.
    """
    esc = escape_text
    cell = ""
    colgroup = ""
    table_style = ""
    if fit_widths is not None:
        cell = (' style="overflow-wrap: anywhere; white-space: normal; text-align: left; '
                'vertical-align: top"')
        widths = [*fit_widths, *[""] * (len(header) - len(fit_widths))]
        colgroup = "<colgroup>" + "".join(
            f'<col style="width: {esc(w)}">' if w else "<col>" for w in widths) + "</colgroup>"
        table_style = ' style="table-layout: fixed; width: 100%"'
    head = "".join(f"<th{cell}>{esc(h)}</th>" for h in header)
    body = []
    for index, row in enumerate(rows):
        marked = highlight is not None and highlight[index]
        style = ' style="background: rgba(255, 200, 0, 0.25)"' if marked else ""
        body.append(f"<tr{style}>" + "".join(f"<td{cell}>{esc(c)}</td>" for c in row)
                    + "</tr>")
    return (f'<table class="mlops-table"{table_style}>{colgroup}<thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>")


def runs_text(runs: Sequence[Run]) -> str:
    if not runs:
        return "no runs"
    return text_table(*runs_table(runs))


def runs_html(runs: Sequence[Run]) -> str:
    if not runs:
        return "<p>no runs</p>"
    return html_table(*runs_table(runs))


def schema_summary(schema: dict[str, str] | None, width: int = 60) -> str:
    """`a:int64, b:str` cut to `width` characters, saying how many columns there are."""
    if not schema:
        return ""
    text = ", ".join(f"{k}:{v}" for k, v in schema.items())
    if len(text) <= width:
        return text
    return f"{len(schema)} columns: {text[:width].rstrip()}..."


def _detail_sections(detail: RunDetail) -> list[tuple[str, list[list[str]]]]:
    run = detail.run
    sections: list[tuple[str, list[list[str]]]] = [
        ("run", [["id", str(run.id)], ["uuid", run.uuid], ["name", run.name or ""],
                 ["status", run.status], ["started", format_time(run.started_at)],
                 ["ended", format_time(run.ended_at)],
                 ["duration", format_duration(run.duration)], ["error", run.error or ""],
                 ["source", run.source_kind], ["notebook", run.notebook or ""],
                 ["code digest", run.code_digest or ""], ["git commit", run.git_commit or ""],
                 ["git branch", run.git_branch or ""],
                 ["git dirty", "" if run.git_dirty is None else str(run.git_dirty).lower()
                  + (" (the source is not tracked by git)"
                     if UNTRACKED_SOURCE_TAG in run.tags else "")],
                 ["python", run.python or ""], ["host", run.host or ""],
                 ["user", run.user or ""]]),
        ("params", [[k, v] for k, v in sorted(run.params.items())]),
        ("tags", [[k, v] for k, v in sorted(run.tags.items())]),
        ("metrics", [[p.key, _fmt(p.value), "" if p.step is None else str(p.step)]
                     for p in detail.metric_history]),
        ("datasets", [[d.role, d.source, d.dataset.digest, _fmt(d.dataset.rows),
                       schema_summary(d.dataset.schema)] for d in detail.datasets]),
        ("artifacts", [[a.kind, a.name, a.digest, str(a.size)] for a in detail.artifacts]),
        ("models", [[m.ref, m.digest, m.flavor] for m in detail.models]),
    ]
    if detail.environment:
        sections.append(("packages", [[k, v] for k, v in detail.environment.packages.items()]))
    return sections


_DETAIL_HEADERS = {
    "run": ["field", "value"], "params": ["param", "value"], "tags": ["tag", "value"],
    "metrics": ["metric", "value", "step"],
    "datasets": ["role", "source", "digest", "rows", "schema"],
    "artifacts": ["kind", "name", "digest", "bytes"], "models": ["version", "digest", "flavor"],
    "packages": ["package", "version"],
}


def run_detail_text(detail: RunDetail, packages: bool = False) -> str:
    parts = []
    for title, rows in _detail_sections(detail):
        if title == "packages" and not packages:
            parts.append(f"packages: {len(rows)} recorded (--packages to list)")
            continue
        if title != "run" and not rows:
            continue
        body = text_table(_DETAIL_HEADERS[title], rows)
        parts.append(f"{title}:\n" + "\n".join("  " + line for line in body.splitlines()))
        if title == "run" and NOT_REPRODUCIBLE_TAG in detail.run.tags:
            parts.append(f"reproducible: no, because {detail.run.tags[NOT_REPRODUCIBLE_TAG]}")
    for title, lines in _step_sections(detail):
        parts.append(f"{title}:\n" + "\n".join("  " + line for line in lines))
    return "\n\n".join(parts)


def run_detail_html(detail: RunDetail) -> str:
    parts = []
    for title, rows in _detail_sections(detail):
        if title == "packages" or (title != "run" and not rows):
            continue
        parts.append(f"<h4>{html.escape(title)}</h4>" + html_table(_DETAIL_HEADERS[title], rows))
    for title, lines in _step_sections(detail):
        parts.append(f"<h4>{html.escape(title)}</h4><pre>{html.escape(chr(10).join(lines))}"
                     "</pre>")
    return "".join(parts)


_FAILURE_KINDS = {
    "notebook": "a notebook cell raised",
    "kernel": "the notebook could not run to its end (kernel, papermill or executor)",
    "step": "the step broke a rule of the pipeline",
    "runner": "a bug in jupyter-mlops, not in the notebook",
}


def step_failure_summary(failure: StepFailure) -> str:
    """One line: whose fault, then what happened."""
    return f"[{failure.kind}] {failure.message}"


def step_failure_lines(failure: StepFailure) -> list[str]:
    """A step's failure in full: its kind, the failing cell and its source, the exception
    and the traceback (the kernel's for a notebook, ours for a runner bug)."""
    lines = [f"kind: {failure.kind} ({_FAILURE_KINDS.get(failure.kind, 'unknown')})",
             f"message: {failure.message}"]
    if failure.cell is not None:
        lines.append(f"cell: {failure.cell}")
    if failure.ename:
        lines.append(f"exception: {failure.ename}: {failure.evalue or ''}".rstrip())
    if failure.source:
        lines += ["source:", *("  " + line for line in failure.source.splitlines())]
    if failure.traceback:
        lines += ["traceback:", *("  " + line for entry in failure.traceback
                                  for line in entry.rstrip("\n").splitlines())]
    return lines


def _step_sections(detail: RunDetail) -> list[tuple[str, list[str]]]:
    """The failure and warnings of the pipeline step that made the run, if any."""
    step = detail.step
    if step is None:
        return []
    sections = []
    if step.failure is not None:
        sections.append((f"failure (step {step.step!r} of pipeline run {step.pipeline_run_id})",
                         step_failure_lines(step.failure)))
    if step.warnings:
        sections.append(("warnings", [f"- {warning}" for warning in step.warnings]))
    return sections


def comparison_table(comparison: Comparison) -> tuple[list[str], list[list[str]], list[bool]]:
    header = ["", "", *[f"run {run.id}" for run in comparison.runs]]
    rows, differs = [], []
    for row in comparison.rows:
        rows.append([row.section, row.key, *[v if v is not None else "-" for v in row.values]])
        differs.append(row.differs)
    return header, rows, differs


def comparison_text(comparison: Comparison) -> str:
    header, rows, differs = comparison_table(comparison)
    marked = [["*" if d else " ", *row] for row, d in zip(rows, differs, strict=True)]
    table = text_table(["", *header], marked)
    return (table + f"\n\n* differs; {comparison.identical_packages} identical packages "
            "not shown")


def comparison_html(comparison: Comparison) -> str:
    """The compare as HTML that fits the notebook's width however many runs it shows."""
    header, rows, differs = comparison_table(comparison)
    return (html_table(header, rows, differs, fit_widths=["6em", "11em"])
            + f"<p>highlighted rows differ; {comparison.identical_packages} identical "
              "packages not shown</p>")
