"""What a re-execution must give again: the original run's metrics (every point, exact
or within a tolerance), parameters, dataset digests (inputs built in memory and
outputs) and model digests, each compared with the reproduction's."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from ..datasets import describe_path
from ..errors import MlopsError
from ..inspection import RunDetail
from ..store.records import MetricPoint
from .inputs import relative_source


def tolerance(text: str) -> float:
    """A `--rtol`/`--atol` value: a finite number of at least 0 (ValueError otherwise,
    which argparse reports as an invalid tolerance)."""
    value = float(text)
    if not 0 <= value < math.inf:
        raise ValueError(f"tolerance must be a finite number of at least 0, got {text!r}")
    return value


@dataclass(frozen=True)
class Tolerance:
    rtol: float = 0.0
    atol: float = 0.0

    def close(self, a: float, b: float) -> bool:
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b or math.isclose(a, b, rel_tol=self.rtol, abs_tol=self.atol)


@dataclass(frozen=True)
class Difference:
    what: str  # metric | param | dataset | model | code
    key: str
    recorded: str | None  # None: the original has no such value
    reproduced: str | None  # None: the reproduction has none

    def describe(self) -> str:
        if self.recorded is None:
            return f"{self.what} {self.key}: not in the original, {self.reproduced} reproduced"
        if self.reproduced is None:
            return f"{self.what} {self.key}: {self.recorded} recorded, missing in the reproduction"
        return f"{self.what} {self.key}: {self.recorded} recorded, {self.reproduced} reproduced"


@dataclass(frozen=True)
class Comparison:
    compared: int  # how many values were compared
    differences: tuple[Difference, ...]


def compare_results(original: RunDetail, again: RunDetail, tolerance: Tolerance,
                    scratch: Path | None = None) -> Comparison:
    """Every recorded result of `original` against `again`. `scratch` is where the
    re-execution ran: an output the original's runner recorded (a pipeline step's
    declared outputs) and the code did not is digested there."""
    found: list[Difference] = []
    compared = 0
    for key, (a, b) in _paired(_series(original.metric_history),
                               _series(again.metric_history)).items():
        compared += 1
        if not _same_series(a, b, tolerance):
            found.append(Difference("metric", key, _series_text(a, b, 0),
                                    _series_text(a, b, 1)))
    for key, (a, b) in _paired(original.run.params, again.run.params).items():
        compared += 1
        if a != b:
            found.append(Difference("param", key, a, b))
    recorded = {(d.role, d.source): d.dataset.digest for d in original.datasets}
    reproduced = {(d.role, d.source): d.dataset.digest for d in again.datasets}
    for (role, source), digest in recorded.items():
        again_digest = reproduced.get((role, source))
        if again_digest is None and role == "input" and _is_path(original, role, source):
            continue  # placed by reproduce from the recorded bytes: checked before the run
        if again_digest is None and role == "output" and scratch is not None:
            again_digest = _digest_in(scratch, source)
        compared += 1
        if again_digest != digest:
            found.append(Difference("dataset", f"{source} ({role})", digest, again_digest))
    for (role, source), digest in reproduced.items():
        if (role, source) not in recorded:
            found.append(Difference("dataset", f"{source} ({role})", None, digest))
    models = {m.name: m.digest for m in original.models}
    remade = {a.name.removeprefix("models/"): a.digest for a in again.artifacts
              if a.kind == "model" and a.name.startswith("models/")}
    for name, (a, b) in _paired(models, remade).items():
        compared += 1
        if a != b:
            found.append(Difference("model", name, a, b))
    if original.run.code_digest and again.run.code_digest:
        compared += 1
        if original.run.code_digest != again.run.code_digest:
            found.append(Difference("code", "code cells", original.run.code_digest,
                                    again.run.code_digest))
    return Comparison(compared, tuple(found))


def _same_series(a: list | None, b: list | None, tolerance: Tolerance) -> bool:
    if a is None or b is None or len(a) != len(b):
        return False
    return all(step_a == step_b and tolerance.close(value_a, value_b)
               for (step_a, value_a), (step_b, value_b) in zip(a, b, strict=True))


def _paired(a: dict, b: dict) -> dict:
    return {key: (a.get(key), b.get(key)) for key in sorted(set(a) | set(b), key=str)}


def _series(points: list[MetricPoint]) -> dict[str, list[tuple[int | None, float]]]:
    """Each metric's points in the order logged (the store gives them by timestamp)."""
    series: dict[str, list[tuple[int | None, float]]] = defaultdict(list)
    for point in points:
        series[point.key].append((point.step, point.value))
    return dict(series)


def _series_text(a: list | None, b: list | None, side: int) -> str | None:
    """One side of a metric difference: the value (one point), or the first point that
    differs (a series)."""
    mine = (a, b)[side]
    if mine is None:
        return None
    if a is None or b is None or len(a) == len(b) == 1:
        return _points_text(mine)
    if len(a) != len(b):
        return f"{len(mine)} points"
    for index, (pa, pb) in enumerate(zip(a, b, strict=True)):
        if pa != pb:
            step, value = (pa, pb)[side]
            return f"{value!r} at step {step if step is not None else index}"
    return _points_text(mine)


def _points_text(points: list[tuple[int | None, float]]) -> str:
    return repr(points[-1][1]) if len(points) == 1 else \
        f"{points[-1][1]!r} (last of {len(points)} points)"


def _is_path(detail: RunDetail, role: str, source: str) -> bool:
    return any(d.role == role and d.source == source and d.dataset.kind in ("file", "folder")
               for d in detail.datasets)


def _digest_in(scratch: Path, source: str) -> str | None:
    relative = relative_source(source)
    if relative is None or not (scratch / relative).exists():
        return None
    try:
        return describe_path(scratch / relative).digest
    except (MlopsError, OSError):
        return None
