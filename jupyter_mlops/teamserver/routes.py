"""The team server's route table: one row per method and path, with the permission
it needs and the shapes it takes and gives.

The Tornado application (`app.make_app`), the OpenAPI document
(`openapi.document`) and the test that every route refuses a request without a
token or without its permission are all built from `ROUTES`, so a route can't
be added to one and forgotten in the others.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..team_protocol import API_PREFIX

DIGEST_SCHEMA = {"type": "string", "pattern": "^blake3:[0-9a-f]{64}$"}


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # OpenAPI style: /api/v1/blobs/{digest}
    permission: str  # team_protocol.ROLE_PERMISSIONS
    handler: str  # the name of its handler class in app.py
    summary: str
    request: dict[str, Any] | str | None = None  # a JSON schema, "binary", or None
    response: dict[str, Any] | str | None = None  # a JSON schema, "binary" (None: an object)

    @property
    def pattern(self) -> str:
        """The Tornado URL pattern: each {name} becomes one path segment."""
        return re.sub(r"\{[a-z_]+\}", "([^/]+)", self.path)


RECORD_SCHEMA = {
    "type": "object", "required": ["seq", "version", "op"],
    "properties": {"seq": {"type": "integer", "minimum": 1}, "version": {"const": 1},
                   "op": {"enum": ["start", "params", "tags", "metrics", "dataset",
                                   "artifact", "model", "predictions", "heartbeat",
                                   "source", "end"]}},
}

RELEASE_SCHEMA = {"type": "object", "required": ["request"],
                  "properties": {"request": {"type": "object",
                                             "description": "a ReleaseRequest in store.codec's "
                                                            "tagged JSON"}}}

ROUTES: tuple[Route, ...] = (
    Route("GET", f"{API_PREFIX}/version", "read", "VersionHandler",
          "The server's version and the API versions it speaks",
          response={"type": "object", "required": ["server", "api", "min_client_api"],
                    "properties": {"server": {"type": "string"}, "api": {"type": "integer"},
                                   "min_client_api": {"type": "integer"}}}),
    Route("GET", f"{API_PREFIX}/whoami", "read", "WhoamiHandler",
          "The user and roles the token maps to",
          response={"type": "object", "required": ["user", "roles", "expires_at"],
                    "properties": {"user": {"type": "string"},
                                   "roles": {"type": "array", "items": {"type": "string"}},
                                   "permissions": {"type": "array",
                                                   "items": {"type": "string"}},
                                   "expires_at": {"type": ["number", "null"]}}}),
    Route("POST", f"{API_PREFIX}/records", "record", "RecordsHandler",
          "Apply a batch of a run's records, exactly once (records at or below the "
          "stream's applied mark are skipped; a gap is a 409 carrying applied_seq)",
          request={"type": "object", "required": ["stream", "records"],
                   "properties": {"stream": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
                                  "records": {"type": "array", "items": RECORD_SCHEMA,
                                              "minItems": 1, "maxItems": 10000}}},
          response={"type": "object", "required": ["run_id", "applied_seq", "models"],
                    "properties": {
                        "run_id": {"type": "integer"}, "applied_seq": {"type": "integer"},
                        "warnings": {"type": "array", "items": {"type": "string"}},
                        "models": {"type": "array", "items": {
                            "type": "object", "properties": {
                                "seq": {"type": "integer"}, "name": {"type": "string"},
                                "version": {"type": "integer"}}}}}}),
    Route("POST", f"{API_PREFIX}/blobs/missing", "record", "MissingBlobsHandler",
          "Which of these digests the server does not have",
          request={"type": "object", "required": ["digests"],
                   "properties": {"digests": {"type": "array", "items": DIGEST_SCHEMA,
                                              "maxItems": 10000}}},
          response={"type": "object", "required": ["missing"],
                    "properties": {"missing": {"type": "array", "items": DIGEST_SCHEMA}}}),
    Route("PUT", f"{API_PREFIX}/blobs/{{digest}}", "record", "BlobHandler",
          "Upload a blob, streamed; kept only when its bytes hash to the digest",
          request="binary",
          response={"type": "object", "required": ["digest", "size", "stored"],
                    "properties": {"digest": DIGEST_SCHEMA, "size": {"type": "integer"},
                                   "stored": {"type": "boolean"}}}),
    Route("GET", f"{API_PREFIX}/blobs/{{digest}}", "read", "BlobHandler",
          "Download a blob, streamed (the X-Mlops-Digest header names it; verify it)",
          response="binary"),
    Route("POST", f"{API_PREFIX}/read", "read", "ReadHandler",
          "One of the store's read queries (runs.search, models.resolve, audit.verify, "
          "...), answered by the same repository method as in embedded mode; values "
          "are tagged JSON (store.codec)",
          request={"type": "object", "required": ["call"],
                   "properties": {"call": {"type": "string",
                                           "pattern": "^[a-z_]+[.][a-z_]+$"},
                                  "args": {"type": "array", "maxItems": 16},
                                  "kwargs": {"type": "object", "maxProperties": 16}}},
          response={"type": "object", "required": ["result"]}),
    Route("POST", f"{API_PREFIX}/pipelines", "pipeline", "PipelinesHandler",
          "A pipeline runner's write: start a pipeline run, update one of its steps "
          "(status, cache key, outputs: the step cache), heartbeat, finish, or set the "
          "runner's own tags (mlops.pipeline, mlops.step, ...) on a step's run; "
          "arguments by name in store.codec's tagged JSON",
          request={"type": "object", "required": ["call"],
                   "properties": {"call": {"enum": ["start", "heartbeat", "update_step",
                                                    "finish", "set_run_tags"]},
                                  "args": {"type": "object"}}},
          response={"type": "object", "required": ["result"]}),
    Route("POST", f"{API_PREFIX}/releases", "request", "ReleasesHandler",
          "Request that an alias point at a model version; the server computes the "
          "evidence (gates on its evaluation data) and records the token's user as the "
          "requester",
          request={"type": "object", "required": ["model", "alias", "reason"],
                   "properties": {"model": {"type": "string"}, "alias": {"type": "string"},
                                  "reason": {"type": "string"}}},
          response=RELEASE_SCHEMA),
    Route("POST", f"{API_PREFIX}/releases/{{id}}/approve", "review", "DecisionHandler",
          "Approve a pending release request and move its alias (never the requester's "
          "own; failing gates only with an admin's override_reason)",
          request={"type": "object", "required": ["reason"],
                   "properties": {"reason": {"type": "string"},
                                  "override_reason": {"type": ["string", "null"]},
                                  "accept_data_change": {"type": "boolean"}}},
          response=RELEASE_SCHEMA),
    Route("POST", f"{API_PREFIX}/releases/{{id}}/reject", "review", "DecisionHandler",
          "Reject a pending release request",
          request={"type": "object", "required": ["reason"],
                   "properties": {"reason": {"type": "string"}}},
          response=RELEASE_SCHEMA),
    Route("POST", f"{API_PREFIX}/aliases", "request", "AliasesHandler",
          "Point an unprotected alias at a model version (a protected one moves only "
          "through an approved release: 403)",
          request={"type": "object", "required": ["model", "alias", "reason"],
                   "properties": {"model": {"type": "string"}, "alias": {"type": "string"},
                                  "reason": {"type": "string"}}},
          response={"type": "object", "required": ["version"],
                    "properties": {"version": {"type": "object",
                                               "description": "a ModelVersion in "
                                                              "store.codec's tagged JSON"}}}),
    Route("POST", f"{API_PREFIX}/gates/run", "request", "GatesHandler",
          "Evaluate the gates that apply to a model version on the server's evaluation "
          "data (registry.toml) and store the results, as information: a release request "
          "computes its own evidence",
          request={"type": "object", "required": ["model"],
                   "properties": {"model": {"type": "string"},
                                  "against": {"type": ["string", "null"]}}},
          response={"type": "object", "required": ["results"],
                    "properties": {"results": {"type": "array", "items": {
                        "type": "object", "description": "a GateResult in store.codec's "
                                                         "tagged JSON"}}}}),
    Route("POST", f"{API_PREFIX}/import", "admin", "ImportHandler",
          "Copy a batch of an embedded project's rows into this server (`mlops push`), "
          "skipping what it already has; one transaction per batch; a model version or "
          "alias that differs from the server's is a 409 and nothing is written",
          request={"type": "object", "required": ["project", "items"],
                   "properties": {"project": {"type": "string", "maxLength": 300},
                                  "items": {"type": "array", "minItems": 1,
                                            "maxItems": 10000, "items": {
                                                "type": "object", "required": ["kind", "row"],
                                                "properties": {"kind": {"enum": [
                                                    "environment", "dataset_version",
                                                    "artifact", "run", "metrics",
                                                    "model_version", "model_profile", "alias",
                                                    "evaluation", "gate_result",
                                                    "release_request", "pipeline_run",
                                                    "audit"]},
                                                    "row": {"type": "object"}}}}}},
          response={"type": "object", "required": ["added", "present", "ids"],
                    "properties": {"added": {"type": "object"},
                                   "present": {"type": "object"},
                                   "ids": {"type": "object"}}}),
    Route("POST", f"{API_PREFIX}/monitor/labels", "predictions", "MonitoringHandler",
          "Add (or correct) late-arriving labels of a model's predictions, each checked "
          "against the version that made the prediction; one bad row and nothing is "
          "stored",
          request={"type": "object", "required": ["model", "request_ids", "labels"],
                   "properties": {"model": {"type": "string"},
                                  "request_ids": {"type": "array"},
                                  "labels": {"type": "array"},
                                  "file_kind": {"enum": ["csv", "parquet"]}}},
          response={"type": "object", "required": ["added", "corrected", "unknown"],
                    "properties": {"added": {"type": "integer"},
                                   "corrected": {"type": "integer"},
                                   "unknown": {"type": "integer"},
                                   "unknown_examples": {"type": "array"},
                                   "checked_against": {"type": "array"}}}),
    Route("POST", f"{API_PREFIX}/monitor/report", "read", "MonitoringHandler",
          "A model's monitoring report (requests, errors, latency, drift, quality, "
          "calibration per version) from the server's prediction log, with the thresholds "
          "of [monitoring] in registry.toml",
          request={"type": "object", "required": ["model"],
                   "properties": {"model": {"type": "string"},
                                  "since": {"type": ["number", "null"]},
                                  "last": {"type": ["integer", "null"], "minimum": 1}}},
          response={"type": "object", "required": ["report", "lines"],
                    "properties": {"report": {"type": "object"},
                                   "lines": {"type": "array",
                                             "items": {"type": "string"}}}}),
    Route("GET", "/api/openapi.json", "read", "OpenAPIHandler",
          "This API as an OpenAPI 3.1 document"),
)
