"""What the runs page draws, gathered from the store without Panel: the stepped metrics
several runs share (one overlaid chart each), and the params of the filtered runs
against one metric (the parallel-coordinates view)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import InvalidInput
from ..store import Store
from ..store.records import Run

MAX_COMPARED = 8  # lines on one chart that can still be told apart
MAX_AXES = 8  # params shown as axes, the most varied first


def parse_run_ids(text: str) -> list[int]:
    """`10 12 14`, `10,12,14` or `#10 #12` -> [10, 12, 14]; raises `InvalidInput`."""
    words = text.replace(",", " ").split()
    ids = []
    for word in words:
        cleaned = word.lstrip("#")
        if not cleaned.isdigit():
            raise InvalidInput(f"{word!r} is not a run id: give run ids, e.g. 10 12 14")
        if int(cleaned) not in ids:
            ids.append(int(cleaned))
    if len(ids) < 2:
        raise InvalidInput("give two or more run ids to compare, e.g. 10 12 14")
    if len(ids) > MAX_COMPARED:
        raise InvalidInput(f"compare at most {MAX_COMPARED} runs at once, got {len(ids)}")
    return ids


@dataclass(frozen=True)
class SteppedMetric:
    key: str
    lines: tuple[tuple[str, tuple[float, ...], tuple[float, ...]], ...]  # (run, steps, values)


def run_label(run: Run) -> str:
    return f"#{run.id} {run.name}" if run.name else f"#{run.id}"


def stepped_metrics(store: Store, runs: Sequence[Run]) -> list[SteppedMetric]:
    """Every metric logged at two or more steps by at least two of `runs`, with each of
    those runs' points in step order, by metric name."""
    by_key: dict[str, list[tuple[str, tuple[float, ...], tuple[float, ...]]]] = {}
    for run in runs:
        points: dict[str, list[tuple[int, float]]] = {}
        for point in store.runs.metric_history(run.id):
            if point.step is not None:
                points.setdefault(point.key, []).append((point.step, point.value))
        for key, pairs in points.items():
            if len(pairs) >= 2:
                pairs.sort()
                by_key.setdefault(key, []).append(
                    (run_label(run), tuple(float(s) for s, _ in pairs),
                     tuple(v for _, v in pairs)))
    return [SteppedMetric(key, tuple(lines)) for key, lines in sorted(by_key.items())
            if len(lines) >= 2]


@dataclass(frozen=True)
class ParamsView:
    axes: tuple[str, ...]  # params, then the metric
    rows: tuple[tuple[str, ...], ...]
    labels: tuple[str, ...]
    metric: tuple[float | None, ...]


def params_against(runs: Sequence[Run], metric: str) -> ParamsView:
    """The params that vary across `runs` (at most `MAX_AXES`, the most varied first) and
    `metric`, one row per run that logged it."""
    having = [run for run in runs if metric in run.metrics]
    keys = {key for run in having for key in run.params}
    varied = sorted(keys, key=lambda k: (-len({run.params.get(k) for run in having}), k))
    axes = [k for k in varied if len({run.params.get(k) for run in having}) > 1][:MAX_AXES]
    rows = tuple(tuple(run.params.get(k, "") for k in axes) + (str(run.metrics[metric]),)
                 for run in having)
    return ParamsView(axes=(*axes, metric), rows=rows,
                      labels=tuple(run_label(run) for run in having),
                      metric=tuple(run.metrics[metric] for run in having))
