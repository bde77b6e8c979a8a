"""The shapes in which an embedded project's rows travel to a team server (`mlops push`).

The client (`remote/push.py`) reads the project's tables into *items* of these
kinds; the server (`teamserver/imports.py`) checks every value against the same
columns before it writes anything. Each kind is a row (column -> type) plus,
for some, lists of tuples (a run's params, a pipeline run's steps). Column
types: i integer, f number, s text, d digest; a trailing ? allows null.
References between rows travel by what both sides agree on, never by the
project's integer ids: a run by its uuid, a cached step by
`[pipeline name, started_at, step]` (as JSON text).
"""

from __future__ import annotations

MAX_CELL = 4 * 1024 * 1024  # one text value (evidence, a profile, an audit payload)
MAX_ROWS_PER_ITEM = 50_000  # params, metric points, steps... of one item
MAX_PROJECT_LABEL = 300

ENVIRONMENT = {"digest": "d", "python": "s?", "packages": "s?"}
DATASET_VERSION = {"digest": "d", "kind": "s", "size": "i?", "rows": "i?", "schema": "s?",
                   "created_at": "f"}
ARTIFACT = {"digest": "d", "size": "i", "created_at": "f"}
RUN = {"id": "i", "uuid": "s", "name": "s?", "status": "s", "started_at": "f",
       "ended_at": "f?", "heartbeat_at": "f?", "notebook": "s?", "source_kind": "s",
       "code_digest": "s?", "git_commit": "s?", "git_branch": "s?", "git_dirty": "i?",
       "python": "s?", "env_digest": "s?", "host": "s?", "user": "s?", "pid": "i?",
       "error": "s?"}
PARAM = ("s", "s")  # key, value
TAG = ("s", "s")
LATEST_METRIC = ("s", "f?", "i?", "f")  # key, value, step, timestamp
METRIC = LATEST_METRIC
RUN_DATASET = ("d", "s", "s?")  # digest, role, source
RUN_ARTIFACT = ("s", "d", "s")  # name, digest, kind
MODEL_VERSION = {"name": "s", "version": "i", "run": "s?", "digest": "d", "flavor": "s",
                 "signature": "s?", "input_datasets": "s?", "created_at": "f"}
MODEL_PROFILE = {"name": "s", "version": "i", "profile": "s"}
ALIAS = {"name": "s", "alias": "s", "version": "i", "updated_at": "f"}
EVALUATION = {"id": "i", "name": "s", "version": "i", "dataset_digest": "s", "metrics": "s",
              "created_at": "f"}
GATE_RESULT = {"id": "i", "name": "s", "version": "i", "gate": "s", "against": "s?",
               "against_version": "i?", "passed": "i", "value": "f?", "threshold": "f?",
               "dataset_digest": "s?", "reason": "s?", "evaluated_at": "f"}
RELEASE_REQUEST = {"id": "i", "name": "s", "version": "i", "alias": "s", "requester": "s",
                   "reason": "s", "evidence": "s?", "status": "s", "created_at": "f",
                   "decided_by": "s?", "decided_at": "f?", "decision_reason": "s?",
                   "override_reason": "s?"}
PIPELINE_RUN = {"id": "i", "name": "s", "spec_path": "s?", "spec_digest": "s?",
                "status": "s", "trigger": "s", "started_at": "f", "ended_at": "f?",
                "heartbeat_at": "f?", "error": "s?"}
STEP_RUN = {"id": "i", "step": "s", "status": "s", "run": "s?", "cache_key": "s?",
            "cached_from": "s?", "params": "s?", "outputs": "s?", "output_files": "s?",
            "started_at": "f?", "ended_at": "f?", "error": "s?", "notebook_path": "s?",
            "failure": "s?", "warnings": "s?"}
AUDIT_ROW = {"id": "i", "at": "f", "actor": "s", "action": "s", "subject": "s",
             "reason": "s?", "payload": "s", "prev_hash": "s", "hash": "s"}

# kind -> (the row's columns, {list field: its tuple's columns})
KINDS: dict[str, tuple[dict[str, str], dict[str, tuple[str, ...]]]] = {
    "environment": (ENVIRONMENT, {}),
    "dataset_version": (DATASET_VERSION, {}),
    "artifact": (ARTIFACT, {}),
    "run": (RUN, {"params": PARAM, "tags": TAG, "latest_metrics": LATEST_METRIC,
                  "datasets": RUN_DATASET, "artifacts": RUN_ARTIFACT}),
    "metrics": ({"run": "s", "offset": "i"}, {"points": METRIC}),
    "model_version": (MODEL_VERSION, {}),
    "model_profile": (MODEL_PROFILE, {}),
    "alias": (ALIAS, {}),
    "evaluation": (EVALUATION, {}),
    "gate_result": (GATE_RESULT, {}),
    "release_request": (RELEASE_REQUEST, {}),
    "pipeline_run": (PIPELINE_RUN, {"steps": tuple(STEP_RUN.values())}),
    "audit": (AUDIT_ROW, {}),
}
# The order a push sends them in: what a row refers to goes before it.
ORDER = ("environment", "dataset_version", "artifact", "run", "metrics", "model_version",
         "model_profile", "alias", "evaluation", "gate_result", "release_request",
         "pipeline_run", "audit")
assert set(ORDER) == set(KINDS)
