"""The scoring service's input contract: what a /predict body must look like for
the model being served, checked field by field (a wrong field is a 422 naming
it), and the same contract as an OpenAPI document."""

from __future__ import annotations

import json
import math
from typing import Any

from .holder import Loaded

MAX_ROWS = 1000


class Invalid(Exception):
    """One field of a request body failed the contract (answered 422 with the field)."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


def _kind(dtype: str | None) -> str:
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
            kind = _kind(dtype)
            if kind == "number" and (isinstance(value, bool) or not isinstance(value, int | float)
                                     or not math.isfinite(value)):
                raise Invalid(f"{where}.{name}", f"expected a finite number, got "
                                                 f"{json.dumps(value)[:40]}")
            if kind == "boolean" and not isinstance(value, bool):
                raise Invalid(f"{where}.{name}", "expected true or false")
            if kind == "string" and not isinstance(value, str):
                raise Invalid(f"{where}.{name}", "expected a string")
            if kind == "any" and not isinstance(value, int | float | str | bool):
                raise Invalid(f"{where}.{name}", "expected a number or a string")
    return instances


def openapi(loaded: Loaded, serving: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of /predict, /health and /metadata for `loaded`."""
    types = {"number": {"type": "number"}, "boolean": {"type": "boolean"},
             "string": {"type": "string"}, "any": {"type": ["number", "string", "boolean"]}}
    instance = {"type": "object", "additionalProperties": False,
                "required": [name for name, _ in loaded.columns],
                "properties": {name: types[_kind(dtype)] for name, dtype in loaded.columns}}
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
                    "400": {"description": "JSON nested too deep", "content": refused},
                    "403": {"description": "Host or Origin not allowed", "content": refused},
                    "413": {"description": "body over the size limit", "content": refused},
                    "415": {"description": "Content-Type is not application/json",
                            "content": refused},
                    "422": {"description": "an input failed validation",
                            "content": {"application/json": {"schema": error}}},
                    "503": {"description": "no model is loaded", "content": refused}}}},
            "/health": {"get": {"responses": {
                "200": {"description": "serving"},
                "503": {"description": "no model is loaded", "content": refused}}}},
            "/metadata": {"get": {"responses": {"200": {"description": "model version"}}}},
        },
        "components": {"schemas": {"Instance": instance}},
    }
