"""The store's values as JSON, and back: how a read crosses the team server's wire.

The store hands out frozen dataclasses, tuples, dicts keyed by tuples (aliases)
and floats that may be NaN or infinite. `encode` turns such a value into plain
JSON types, tagging what JSON can't say (`{"$type": "Run", "fields": {...}}`,
`{"$tuple": [...]}`, `{"$map": [[key, value], ...]}`); `decode` rebuilds it.
Only the classes listed in `RECORD_TYPES` can be rebuilt, by their own
constructor: a tag naming anything else is refused, so an answer can't make the
client build an object of its choosing. NaN and infinities travel as JSON's
`{"$float": "nan"}` (or `"inf"`, `"-inf"`), so the JSON stays standard.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from ..errors import InvalidInput
from .audit import AuditEntry, ChainReport
from .gates import Evaluation, GateResult
from .predictions import PredictionBatch
from .records import (
    ArtifactLink,
    DatasetVersion,
    Environment,
    MetricPoint,
    ModelVersion,
    PipelineRun,
    Run,
    RunDataset,
    StepFailure,
    StepRun,
)
from .releases import ReleaseRequest

RECORD_TYPES: dict[str, type] = {cls.__name__: cls for cls in (
    Run, MetricPoint, DatasetVersion, RunDataset, ArtifactLink, ModelVersion, Environment,
    StepFailure, StepRun, PipelineRun, ReleaseRequest, Evaluation, GateResult, AuditEntry,
    ChainReport, PredictionBatch)}
MAX_DEPTH = 32


def encode(value: Any, depth: int = 0) -> Any:
    """`value` in JSON types; raises `InvalidInput` for a type the store never returns."""
    if depth > MAX_DEPTH:
        raise InvalidInput("a value nested too deep to send")
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        name = type(value).__name__
        if RECORD_TYPES.get(name) is not type(value):
            raise InvalidInput(f"the store does not send {name} values")
        return {"$type": name, "fields": {f.name: encode(getattr(value, f.name), depth + 1)
                                          for f in dataclasses.fields(value)}}
    if isinstance(value, tuple):
        return {"$tuple": [encode(item, depth + 1) for item in value]}
    if isinstance(value, (list, set, frozenset)):
        return [encode(item, depth + 1) for item in value]
    if isinstance(value, Mapping):
        if all(isinstance(key, str) and not key.startswith("$") for key in value):
            return {key: encode(item, depth + 1) for key, item in value.items()}
        return {"$map": [[encode(key, depth + 1), encode(item, depth + 1)]
                         for key, item in value.items()]}
    raise InvalidInput(f"the store does not send {type(value).__name__} values")


def decode(value: Any, depth: int = 0) -> Any:
    """The value `encode` made; raises `InvalidInput` for a tag or type it did not make."""
    if depth > MAX_DEPTH:
        raise InvalidInput("a value nested too deep")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [decode(item, depth + 1) for item in value]
    if not isinstance(value, dict):
        raise InvalidInput(f"unexpected {type(value).__name__} in an encoded value")
    if "$type" in value:
        cls = RECORD_TYPES.get(value["$type"]) if isinstance(value["$type"], str) else None
        fields = value.get("fields")
        if cls is None or not isinstance(fields, dict) or set(value) != {"$type", "fields"}:
            raise InvalidInput(f"unknown record type {str(value['$type'])[:60]!r}")
        names = {f.name for f in dataclasses.fields(cls)}
        if not set(fields) <= names:
            raise InvalidInput(f"{cls.__name__} has no field "
                               f"{sorted(set(fields) - names)[0][:60]!r}")
        try:
            return cls(**{key: decode(item, depth + 1) for key, item in fields.items()})
        except TypeError as exc:
            raise InvalidInput(f"{cls.__name__}: {exc}") from None
    if "$float" in value:
        if set(value) != {"$float"} or value["$float"] not in ("nan", "inf", "-inf"):
            raise InvalidInput("a malformed $float")
        return float(value["$float"])
    if "$tuple" in value:
        if set(value) != {"$tuple"} or not isinstance(value["$tuple"], list):
            raise InvalidInput("a malformed $tuple")
        return tuple(decode(item, depth + 1) for item in value["$tuple"])
    if "$map" in value:
        pairs = value["$map"]
        if set(value) != {"$map"} or not isinstance(pairs, list) or not all(
                isinstance(pair, list) and len(pair) == 2 for pair in pairs):
            raise InvalidInput("a malformed $map")
        result = {}
        for key, item in pairs:
            key = decode(key, depth + 1)
            if isinstance(key, list):
                raise InvalidInput("a $map key can't be a list")
            result[key] = decode(item, depth + 1)
        return result
    if any(key.startswith("$") for key in value):
        raise InvalidInput(f"unknown tag {next(k for k in value if k.startswith('$'))[:60]!r}")
    return {key: decode(item, depth + 1) for key, item in value.items()}
