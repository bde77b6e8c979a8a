"""The team server's OpenAPI 3.1 document, generated from the route table (`ROUTES`),
so it names every route the server answers and no other."""

from __future__ import annotations

import re
from typing import Any

from ..team_protocol import API_VERSION, ERROR_KINDS
from .routes import ROUTES

ERROR_SCHEMA = {
    "type": "object", "required": ["error"],
    "properties": {"error": {
        "type": "object", "required": ["kind", "message"],
        "properties": {"kind": {"enum": [*ERROR_KINDS, "server"]},
                       "message": {"type": "string"},
                       "applied_seq": {"type": "integer"}}}},
}


def _content(shape: dict[str, Any] | str | None) -> dict[str, Any]:
    if shape is None:
        shape = {"type": "object"}
    if shape == "binary":
        return {"application/octet-stream": {"schema": {"type": "string",
                                                        "contentMediaType":
                                                            "application/octet-stream"}}}
    return {"application/json": {"schema": shape}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def document(server_version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route in `ROUTES`."""
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        operation: dict[str, Any] = {
            "operationId": re.sub(r"[^a-z0-9]+", "_",
                                  f"{route.method} {route.path}".lower()).strip("_"),
            "summary": route.summary,
            "description": f"Needs the `{route.permission}` permission.",
            "responses": {
                "200": {"description": "done", "content": _content(route.response)},
                "401": _error("no token, or a wrong, revoked or expired one"),
                "403": _error(f"the token's roles lack `{route.permission}`, or the Host "
                              "is not allowed"),
                "413": _error("the body is over the limit"),
                "422": _error("the request is malformed"),
                "426": _error("X-Mlops-Api names an API version this server does not speak"),
                "429": _error("too many wrong tokens from this address (see Retry-After)"),
            },
        }
        if "{digest}" in route.path:
            operation["parameters"] = [{"name": "digest", "in": "path", "required": True,
                                        "schema": {"type": "string",
                                                   "pattern": "^blake3:[0-9a-f]{64}$"}}]
            operation["responses"]["404"] = _error("no such blob")
        if "{id}" in route.path:
            operation["parameters"] = [{"name": "id", "in": "path", "required": True,
                                        "schema": {"type": "integer", "minimum": 1}}]
            operation["responses"]["404"] = _error("no such release request")
            operation["responses"]["409"] = _error("already decided, or stale evidence")
        if route.handler == "RecordsHandler":
            operation["responses"]["409"] = _error(
                "a gap in the stream (the error holds applied_seq), a blob the server "
                "lacks, or a stream that is not this user's")
        if route.request is not None:
            operation["requestBody"] = {"required": True, "content": _content(route.request)}
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "jupyter-mlops team server", "version": server_version,
                 "description": f"API version {API_VERSION}; see docs/team-mode.md. Send "
                                "`Authorization: Bearer TOKEN` on every request, and "
                                f"`X-Mlops-Api: {API_VERSION}`."},
        "components": {
            "schemas": {"Error": ERROR_SCHEMA},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }
