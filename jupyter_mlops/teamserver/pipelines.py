"""POST /api/v1/pipelines: what a pipeline runner writes besides its steps' records.

In team mode the runner on a laptop or a CI machine executes the steps, replays
each step's glued records into the server through the records route (one
stream per step run), and keeps the pipeline run itself (its steps' status,
cache keys, outputs: the step cache) here, through the same
`store.pipelines` calls as in embedded mode. The body names one call,
`{"call": "update_step", "args": {...}}` (arguments by name, in `store.codec`'s
tagged JSON); every argument is checked before the store is touched.

`set_run_tags` sets the runner's own tags (`mlops.pipeline`, `mlops.step`,
`mlops.pipeline_run`, `mlops.notebook_run_name`) on a step's run, which the
records route refuses from anyone (a step must not claim another pipeline
run); only the run's own user may set them. A pipeline run moves on (heartbeat,
steps, finish) only by the user who started it here (`pipeline_run_owners`).

Trust: cache keys are computed by the runner (they cover files on its machine),
so the step cache trusts tokens with the `pipeline` permission: such a token
can mark its own step run finished under any key. It can't name another
user's run as a step's own execution (only as a cached step's, reused).
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Mapping
from typing import Any

from ..errors import Conflict, InvalidInput, PermissionDenied
from ..store import Store, codec
from ..store.ids import storable
from ..store.records import FAILURE_KINDS, StepFailure
from ..team_protocol import PIPELINE_CALLS, RUNNER_TAGS
from ..validation import MAX_KEY_LENGTH, MAX_TEXT_LENGTH, check_digest

STEP_STATUSES = ("pending", "running", "finished", "cached", "failed", "skipped", "killed")
RUN_STATUSES = ("finished", "failed", "killed")
TRIGGERS = ("manual", "schedule")
MAX_STEPS = 1000


def check_pipeline_call(body: object) -> tuple[str, dict[str, Any]]:
    """(call, checked arguments) of a request. Raises `InvalidInput` naming the problem."""
    if not isinstance(body, Mapping) or not isinstance(body.get("call"), str):
        raise InvalidInput('the body must be {"call": "update_step", "args": {...}}')
    call = body["call"]
    if call not in PIPELINE_CALLS:
        raise InvalidInput(f"{call[:80]!r} is not a pipeline call; calls: "
                           f"{', '.join(sorted(PIPELINE_CALLS))}")
    args = codec.decode(body.get("args", {}))
    if not isinstance(args, dict):
        raise InvalidInput("'args' must be an object of the call's arguments by name")
    return call, CHECKS[call](args)


def run_pipeline_call(store: Store, user: str, call: str, args: dict[str, Any]) -> Any:
    """The store's answer to a checked call, encoded; `user` is the token's."""
    if call == "set_run_tags":
        run = store.runs.get(args["run_id"])
        if run.user != user:
            raise PermissionDenied(f"run {run.id} belongs to user {run.user!r}; {user!r} may "
                                   "not tag it")
        store.runs.set_tags(args["run_id"], args["tags"])
        return None
    if call == "update_step" and args.get("run_id") is not None \
            and args.get("status") != "cached":
        # A step's own execution is a run of the token's user; only a cached step names
        # a run another made (the one it reuses).
        run = store.runs.get(args["run_id"])
        if run.user != user:
            raise PermissionDenied(f"run {run.id} belongs to user {run.user!r}: a step "
                                   f"executed by {user!r} records into a run of its own")
    if call != "start":  # heartbeat, update_step, finish: the starter's run only
        owner = store.pipelines.owner(args["pipeline_run_id"])
        if owner != user:
            raise PermissionDenied(
                f"pipeline run {args['pipeline_run_id']} was not started by {user!r} through "
                "this server: only the runner that started it may move it on")
    try:
        if call == "start":
            with store.transaction():
                pipeline_run_id = store.pipelines.start(**args)
                store.pipelines.set_owner(pipeline_run_id, user)
            return codec.encode(pipeline_run_id)
        return codec.encode(getattr(store.pipelines, call)(**args))
    except sqlite3.IntegrityError as exc:  # a run id that names no run, say
        raise Conflict(f"pipelines.{call} refused by the store: {exc}") from None


def _only(args: dict[str, Any], required: tuple[str, ...], optional: tuple[str, ...] = ()
          ) -> None:
    missing = [name for name in required if name not in args]
    unknown = sorted(set(args) - set(required) - set(optional))
    if missing or unknown:
        raise InvalidInput(f"arguments: missing {missing or 'none'}, unknown "
                           f"{unknown or 'none'} (takes {', '.join(required + optional)})")


def _id(value: object, what: str, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not storable(value) \
            or value < 1:
        raise InvalidInput(f"{what} must be a positive id, got {str(value)[:40]!r}")


def _text(value: object, what: str, limit: int = MAX_TEXT_LENGTH,
          optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or len(value) > limit:
        raise InvalidInput(f"{what} must be a string of at most {limit} characters, got "
                           f"{str(value)[:40]!r}")


def _one_of(value: object, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise InvalidInput(f"{what} must be one of {', '.join(allowed)}, got "
                           f"{str(value)[:40]!r}")


def _time(value: object, what: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or abs(value) > 1e12:
        raise InvalidInput(f"{what} must be a time in seconds, got {str(value)[:40]!r}")


def _check_start(args: dict[str, Any]) -> dict[str, Any]:
    _only(args, ("name", "spec_path", "spec_digest", "trigger", "steps"))
    _text(args["name"], "name", MAX_KEY_LENGTH)
    _text(args["spec_path"], "spec_path")
    check_digest(args["spec_digest"], "spec_digest")
    _one_of(args["trigger"], TRIGGERS, "trigger")
    steps = args["steps"]
    if not isinstance(steps, list) or len(steps) > MAX_STEPS:
        raise InvalidInput(f"steps must be a list of at most {MAX_STEPS} step names")
    for step in steps:
        _text(step, "a step name", MAX_KEY_LENGTH)
    return args


def _check_heartbeat(args: dict[str, Any]) -> dict[str, Any]:
    _only(args, ("pipeline_run_id",))
    _id(args["pipeline_run_id"], "pipeline_run_id")
    return args


def _check_finish(args: dict[str, Any]) -> dict[str, Any]:
    _only(args, ("pipeline_run_id", "status"), ("error",))
    _id(args["pipeline_run_id"], "pipeline_run_id")
    _one_of(args["status"], RUN_STATUSES, "status")
    _text(args.get("error"), "error", optional=True)
    return args


def _json_map(value: object, what: str) -> None:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise InvalidInput(f"{what} must be an object")


def _check_update_step(args: dict[str, Any]) -> dict[str, Any]:
    fields = {key: value for key, value in args.items()
              if key not in ("pipeline_run_id", "step")}
    _only(args, ("pipeline_run_id", "step"), tuple(STEP_FIELDS))
    _id(args["pipeline_run_id"], "pipeline_run_id")
    _text(args["step"], "step", MAX_KEY_LENGTH)
    for key, value in fields.items():
        STEP_FIELDS[key](value, key)
    return args


def _check_failure(value: object, what: str) -> None:
    if value is None:
        return
    if not isinstance(value, StepFailure) or value.kind not in FAILURE_KINDS:
        raise InvalidInput(f"{what} must be a StepFailure of kind "
                           f"{', '.join(FAILURE_KINDS)}")
    for name in ("message", "source", "ename", "evalue"):
        _text(getattr(value, name), f"{what}.{name}", optional=name != "message")
    if not (value.cell is None or (type(value.cell) is int and storable(value.cell))):
        raise InvalidInput(f"{what}.cell must be a cell number")
    if not isinstance(value.traceback, tuple | list) or not all(
            isinstance(line, str) and len(line) <= MAX_TEXT_LENGTH for line in value.traceback):
        raise InvalidInput(f"{what}.traceback must be lines of text")


def _check_warnings(value: object, what: str) -> None:
    if not isinstance(value, tuple | list) or len(value) > MAX_STEPS:
        raise InvalidInput(f"{what} must be a list of at most {MAX_STEPS} lines")
    for line in value:
        _text(line, what)


def _check_output_files(value: object, what: str) -> None:
    _json_map(value, what)
    for digest in value.values():  # type: ignore[union-attr]
        check_digest(digest, f"{what} digest")


STEP_FIELDS = {
    "status": lambda v, w: _one_of(v, STEP_STATUSES, w),
    "run_id": lambda v, w: _id(v, w, optional=True),
    "cache_key": lambda v, w: None if v is None else check_digest(v, w),
    "cached_from": lambda v, w: _id(v, w, optional=True),
    "params": _json_map,
    "outputs": _json_map,
    "output_files": _check_output_files,
    "started_at": _time,
    "ended_at": _time,
    "error": lambda v, w: _text(v, w, optional=True),
    "notebook_path": lambda v, w: _text(v, w, optional=True),
    "failure": _check_failure,
    "warnings": _check_warnings,
}


def _check_set_run_tags(args: dict[str, Any]) -> dict[str, Any]:
    _only(args, ("run_id", "tags"))
    _id(args["run_id"], "run_id")
    tags = args["tags"]
    _json_map(tags, "tags")
    for key, value in tags.items():
        if key not in RUNNER_TAGS:
            raise InvalidInput(f"tag {key[:80]!r}: this call sets only the runner's tags "
                               f"({', '.join(RUNNER_TAGS)}); others are records")
        _text(value, f"tag {key}")
    return args


CHECKS = {"start": _check_start, "heartbeat": _check_heartbeat, "finish": _check_finish,
          "update_step": _check_update_step, "set_run_tags": _check_set_run_tags}
