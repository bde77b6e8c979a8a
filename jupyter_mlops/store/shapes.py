"""Whether a value decoded from the team server's wire has the type the store's code
annotates: what a read's arguments must be on the server, and what its answer must
be on the client.

`store.codec` rebuilds values of the right *kinds* (only known record types, plain
JSON inside), but not of the right *types*: `{"$type": "Run", "fields": {"id": "x"}}`
or a list of numbers where runs belong decode fine and fail later, deep in a query
(a 500 on the server) or a view (a traceback on the client). Checking the decoded
value against the method's annotations turns both into one line naming what is wrong.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from .ids import storable


def fits(value: Any, hint: Any) -> bool:
    """Whether `value` is of the annotation `hint` (the subset the store uses: plain
    types, unions, Optional, tuple, list, Mapping, Literal, record dataclasses)."""
    return checker(hint)(value)


Check = typing.Callable[[Any], bool]


@functools.cache
def checker(hint: Any) -> Check:
    """A function telling whether a value is of `hint`, built once per annotation: an
    answer of 1,000 runs is checked in a few milliseconds."""
    if hint is Any or hint is object:
        return lambda value: True
    if hint is None or hint is type(None):
        return lambda value: value is None
    origin = typing.get_origin(hint)
    arguments = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        options = tuple(checker(option) for option in arguments)
        if len(options) == 2 and type(None) in arguments:  # Optional: the common case
            inner = options[0] if arguments[1] is type(None) else options[1]
            return lambda value: value is None or inner(value)
        return lambda value: any(check(value) for check in options)
    if origin is typing.Literal:
        return lambda value: value in arguments
    if origin is tuple:
        if len(arguments) == 2 and arguments[1] is Ellipsis:
            each = checker(arguments[0])
            return lambda value: isinstance(value, tuple | list) and all(map(each, value))
        items = tuple(checker(kind) for kind in arguments)
        return lambda value: isinstance(value, tuple | list) and len(value) == len(items) \
            and all(check(item) for check, item in zip(items, value, strict=True))
    if origin in (list, Sequence):
        each = checker(arguments[0]) if arguments else checker(Any)
        return lambda value: isinstance(value, list | tuple) and all(map(each, value))
    if origin in (dict, Mapping):
        keys, items = (checker(kind) for kind in (arguments or (Any, Any)))
        return lambda value: isinstance(value, Mapping) and all(map(keys, value)) and \
            all(map(items, value.values()))
    if hint is int:
        return lambda value: type(value) is int and storable(value)
    if hint is float:
        return lambda value: type(value) is float or (type(value) is int and storable(value))
    if hint is str or hint is bool:
        return lambda value: type(value) is hint
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _record_checker(hint)
    if isinstance(hint, type):
        return lambda value: isinstance(value, hint)
    return lambda value: True


def _record_checker(cls: type) -> Check:
    fields = [(name, checker(kind)) for name, kind in typing.get_type_hints(cls).items()]

    def check(value: Any) -> bool:
        if type(value) is not cls:
            return False
        for name, field_check in fields:
            if not field_check(getattr(value, name)):
                return False
        return True

    return check


def spoken(hint: Any) -> str:
    """An annotation as an error message says it: `int | None`, `list[Run]`."""
    if isinstance(hint, type) and not typing.get_args(hint):
        return hint.__name__
    return (str(hint).replace("NoneType", "None").replace("typing.", "")
            .replace("collections.abc.", "").replace("jupyter_mlops.store.records.", "")
            .replace("jupyter_mlops.store.releases.", "")
            .replace("jupyter_mlops.store.gates.", "").replace("jupyter_mlops.store.audit.", ""))


def described(value: Any) -> str:
    """What a value is, shortly, for an error message."""
    if isinstance(value, list | tuple):
        kinds = sorted({type(item).__name__ for item in value})
        return f"a {type(value).__name__} of {', '.join(kinds) or 'nothing'}"
    return f"{type(value).__name__} {str(value)[:60]!r}"


@functools.cache
def read_hints(repository: str, method: str) -> dict[str, Any]:
    """The annotations of a read method of the store (`team_protocol.READ_CALLS`), its
    arguments' and its answer's ("return")."""
    return typing.get_type_hints(getattr(_repository_classes()[repository], method))


def _repository_classes() -> dict[str, type]:
    from . import (
        artifacts,
        audit,
        datasets,
        environments,
        gates,
        models,
        pipelines,
        predictions,
        releases,
        runs,
    )

    return {"runs": runs.RunRepository, "datasets": datasets.DatasetRepository,
            "artifacts": artifacts.ArtifactRepository, "models": models.ModelRepository,
            "environments": environments.EnvironmentRepository,
            "pipelines": pipelines.PipelineRepository,
            "releases": releases.ReleaseRepository, "gates": gates.GateRepository,
            "audit": audit.AuditRepository, "predictions": predictions.PredictionRepository}
