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
import functools
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
# Values taken as they are, by exact type, without a call per value: a search answer
# is 1,000 runs of about 25 values each. A float is encoded by `encode` (NaN, inf).
_AS_IS = frozenset({str, int, bool, type(None)})
_PLAIN = frozenset({str, int, float, bool, type(None)})


def encode(value: Any, depth: int = 0) -> Any:
    """`value` in JSON types; raises `InvalidInput` for a type the store never returns.

    The plain types are tried first, by exact type: a search answer is 1,000 runs
    of mostly strings and numbers, and this is most of what encoding it costs."""
    if depth > MAX_DEPTH:
        raise InvalidInput("a value nested too deep to send")
    kind = type(value)
    if kind is str or kind is int or value is None or kind is bool:
        return value
    if kind is float:
        if math.isfinite(value):
            return value
        return {"$float": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
    if kind is dict and all(type(key) is str and not key.startswith("$") for key in value):
        return {key: item if type(item) in _AS_IS else encode(item, depth + 1)
                for key, item in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
    if isinstance(value, (bool, int, float, str)):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        name = kind.__name__
        if RECORD_TYPES.get(name) is not kind:
            raise InvalidInput(f"the store does not send {name} values")
        fields = {field: getattr(value, field) for field in _field_names(kind)}
        return {"$type": name, "fields": {
            field: item if type(item) in _AS_IS else encode(item, depth + 1)
            for field, item in fields.items()}}
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


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    """A record type's field names, in order (read once per type: `fields()` is slow)."""
    return tuple(f.name for f in dataclasses.fields(cls))


def decode(value: Any, depth: int = 0) -> Any:
    """The value `encode` made; raises `InvalidInput` for a tag or type it did not make."""
    if depth > MAX_DEPTH:
        raise InvalidInput("a value nested too deep")
    kind = type(value)
    if kind is str or kind is float or kind is int or value is None or kind is bool:
        return value  # the plain types first, by exact type (see `encode`)
    if isinstance(value, (bool, int, float, str)):
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
        names = _field_names(cls)
        if not set(fields).issubset(names):
            raise InvalidInput(f"{cls.__name__} has no field "
                               f"{sorted(set(fields).difference(names))[0][:60]!r}")
        try:
            return cls(**{key: item if type(item) in _PLAIN else decode(item, depth + 1)
                          for key, item in fields.items()})
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
    return {key: item if type(item) in _PLAIN else decode(item, depth + 1)
            for key, item in value.items()}
