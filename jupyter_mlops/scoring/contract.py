"""The scoring service's input contract: what a /predict body must look like for
the model being served, checked field by field (a wrong field is a 422 naming
it), and the same contract as an OpenAPI document."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # holder builds the fast path from this module's contract
    from .holder import Loaded

MAX_ROWS = 1000
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class Invalid(Exception):
    """One field of a request body failed the contract (answered 422 with the field)."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


def kind_of(dtype: str | None) -> str:
    """What JSON values a column of `dtype` takes: number, boolean, string, or any (no dtype)."""
    if dtype is None:
        return "any"
    if dtype.startswith(("float", "int", "uint", "Int", "UInt", "Float")):
        return "number"
    if dtype in ("bool", "boolean"):
        return "boolean"
    return "string"


def check_instances(body: Any, columns: tuple[tuple[str, str | None], ...]) -> list[dict]:
    """The instances of a parsed body, each checked against `columns`; raises `Invalid`."""
    if not isinstance(body, dict):
        raise Invalid("body", "expected a JSON object with `instances` (a list of objects)")
    unknown_keys = set(body) - {"instances"}
    if unknown_keys:
        raise Invalid(sorted(unknown_keys)[0], "unknown key (send {\"instances\": [...]})")
    instances = body.get("instances")
    if not isinstance(instances, list) or not instances:
        raise Invalid("instances", "must be a non-empty list of objects")
    if len(instances) > MAX_ROWS:
        raise Invalid("instances", f"at most {MAX_ROWS} per request, got {len(instances)}")
    names = {name for name, _ in columns}
    for index, instance in enumerate(instances):
        where = f"instances[{index}]"
        if not isinstance(instance, dict):
            raise Invalid(where, "must be an object of feature values")
        for key in instance:
            if key not in names:
                raise Invalid(f"{where}.{str(key)[:80]}", "unknown feature")
        for name, dtype in columns:
            if name not in instance:
                raise Invalid(f"{where}.{name}", "missing")
            value = instance[name]
            kind = kind_of(dtype)
            if kind == "number" and (type(value) is not float or not math.isfinite(value)):
                instance[name] = _number(value, dtype, f"{where}.{name}")  # not a finite float
            if kind == "boolean" and not isinstance(value, bool):
                raise Invalid(f"{where}.{name}", "expected true or false")
            if kind == "string" and not isinstance(value, str):
                raise Invalid(f"{where}.{name}", "expected a string")
            if kind == "any" and (isinstance(value, bool) or not isinstance(value, int | float)):
                # Without a recorded dtype a feature takes numbers only: a column that is
                # text in one request and numbers in the next can't be logged as one.
                raise Invalid(f"{where}.{name}", "expected a number (this model version "
                              "records no dtypes: log it with input_example=... to take "
                              "text or true/false features)")
            if kind == "any":
                instance[name] = _number(value, "float64", f"{where}.{name}")  # one dtype
    return instances


def _number(value: Any, dtype: str | None, field: str) -> int | float:
    """`value` checked as a number the model and the prediction log can hold.

    For a float column an integer becomes a float (so every batch of the log
    stores the column as float64), and one past float64's range is refused;
    for any other column an integer must fit in 64 bits. Infinity and NaN
    are refused. Raises `Invalid`.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid(field, f"expected a finite number, got {_shown(value)}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Invalid(field, f"expected a finite number, got {_shown(value)}")
        return value
    if dtype is not None and dtype.lower().startswith("float"):
        try:
            return float(value)
        except OverflowError:
            raise Invalid(field, f"the integer {_shown(value)} is too large for a float64 "
                                 "(about 1.8e308 at most)") from None
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise Invalid(field, f"the integer {_shown(value)} does not fit in 64 bits "
                             "(-2**63 to 2**63-1)")
    return value


def _shown(value: Any) -> str:
    """`value` as JSON for a message, cut to 40 characters (a huge integer shows its size)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**40:
        return f"of {len(str(abs(value)))} digits"
    return json.dumps(value)[:40]


def openapi(loaded: Loaded, serving: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of /predict, /health and /metadata for `loaded`."""
    types = {"number": {"type": "number"}, "boolean": {"type": "boolean"},
             "string": {"type": "string"}, "any": {"type": "number"}}
    instance = {"type": "object", "additionalProperties": False,
                "required": [name for name, _ in loaded.columns],
                "properties": {name: types[kind_of(dtype)] for name, dtype in loaded.columns}}
    error = {"type": "object", "properties": {"message": {"type": "string"},
                                              "field": {"type": "string"}}}
    refused = {"application/json": {"schema": {"type": "object", "properties": {
        "message": {"type": "string"}}}}}
    request = {"type": "object", "required": ["instances"], "additionalProperties": False,
               "properties": {"instances": {
                   "type": "array", "minItems": 1, "maxItems": MAX_ROWS,
                   "items": {"$ref": "#/components/schemas/Instance"}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": f"jupyter-mlops scoring service: {serving}", "version": "1"},
        "paths": {
            "/predict": {"post": {
                "requestBody": {"required": True,
                                "content": {"application/json": {"schema": request}}},
                "responses": {
                    "200": {"description": "one prediction per instance"},
                    "400": {"description": "JSON nested too deep, bytes that are not "
                                           "UTF-8, or an unpaired UTF-16 surrogate",
                            "content": refused},
                    "403": {"description": "Host or Origin not allowed", "content": refused},
                    "413": {"description": "body over the size limit", "content": refused},
                    "415": {"description": "Content-Type is not application/json, or the "
                                           "body is UTF-16/UTF-32", "content": refused},
                    "417": {"description": "an Expect other than 100-continue",
                            "content": refused},
                    "422": {"description": "an input failed validation, or the model could "
                                           "not score it",
                            "content": {"application/json": {"schema": error}}},
                    "503": {"description": "no model is loaded", "content": refused}}}},
            "/health": {"get": {"responses": {
                "200": {"description": "serving"},
                "503": {"description": "no model is loaded", "content": refused}}}},
            "/metadata": {"get": {"responses": {"200": {"description": "model version"}}}},
        },
        "components": {"schemas": {"Instance": instance}},
    }
