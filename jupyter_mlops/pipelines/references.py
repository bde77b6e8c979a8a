"""`${...}` references in step params: plain substitution from declared values.

Three forms exist: `${params.NAME}` (a pipeline parameter),
`${steps.STEP.outputs.NAME}` (a value step STEP glued) and
`${models.NAME@ALIAS}` or `${models.NAME:VERSION}` (a registered model, given
to the notebook as {"path", "ref", "digest"} of a verified copy of its file).
A string that is exactly one reference takes the value with its type; a
reference inside a longer string is replaced by the value's text. Nothing is
ever evaluated.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

REFERENCE = re.compile(r"\$\{([^${}]*)\}")
_PARAM = re.compile(r"params\.([A-Za-z_][A-Za-z0-9_]*)")
_OUTPUT = re.compile(r"steps\.([A-Za-z_][A-Za-z0-9_\-]*)\.outputs\.([^\s${}]+)")
_MODEL = re.compile(r"models\.([A-Za-z0-9][A-Za-z0-9_.\-]*(?:@[a-z0-9][a-z0-9_\-]*|:\d+))")


@dataclass(frozen=True)
class Reference:
    text: str  # the whole `${...}`
    kind: str  # params | outputs | models
    step: str | None
    name: str


class BadReference(ValueError):
    """A `${...}` that is neither `${params.NAME}` nor `${steps.STEP.outputs.NAME}`."""


def parse(expression: str) -> Reference:
    inner = expression[2:-1].strip()
    if match := _PARAM.fullmatch(inner):
        return Reference(expression, "params", None, match.group(1))
    if match := _OUTPUT.fullmatch(inner):
        return Reference(expression, "outputs", match.group(1), match.group(2))
    if match := _MODEL.fullmatch(inner):
        return Reference(expression, "models", None, match.group(1))
    raise BadReference(f"{expression} is not ${{params.NAME}}, ${{steps.STEP.outputs.NAME}} "
                       "or ${models.NAME@ALIAS}")


def find(value: Any) -> list[Reference]:
    """Every reference inside a (nested) param value."""
    if isinstance(value, str):
        return [parse(m.group(0)) for m in REFERENCE.finditer(value)]
    if isinstance(value, Mapping):
        return [ref for v in value.values() for ref in find(v)]
    if isinstance(value, list):
        return [ref for v in value for ref in find(v)]
    return []


def substitute(value: Any, lookup: Callable[[Reference], Any]) -> Any:
    """Replace references in `value` with `lookup(reference)`."""
    if isinstance(value, str):
        whole = REFERENCE.fullmatch(value)
        if whole:
            return lookup(parse(value))
        return REFERENCE.sub(lambda m: str(lookup(parse(m.group(0)))), value)
    if isinstance(value, Mapping):
        return {k: substitute(v, lookup) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, lookup) for v in value]
    return value
