"""The scoring service (Tornado): POST /predict, GET /health, GET /metadata,
GET /openapi.json. Inputs are checked against the model's signature: a wrong
field is a 422 naming it, never a 500."""

from __future__ import annotations

import asyncio
import json
import math
import signal
import time
import uuid
from typing import Any

import tornado.web

from ..errors import MlopsError
from ..monitoring.predlog import INPUT_PREFIX
from ..monitoring.profile import model_outputs
from ..project import Project
from .holder import ModelHolder
from .logger import BufferedLogger

MAX_ROWS = 1000
MAX_BODY = 1 << 20


class Invalid(Exception):
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


def openapi(holder: ModelHolder) -> dict[str, Any]:
    loaded = holder.current
    assert loaded is not None
    types = {"number": {"type": "number"}, "boolean": {"type": "boolean"},
             "string": {"type": "string"}, "any": {"type": ["number", "string", "boolean"]}}
    instance = {"type": "object", "additionalProperties": False,
                "required": [name for name, _ in loaded.columns],
                "properties": {name: types[_kind(dtype)] for name, dtype in loaded.columns}}
    error = {"type": "object", "properties": {"message": {"type": "string"},
                                              "field": {"type": "string"}}}
    request = {"type": "object", "required": ["instances"], "additionalProperties": False,
               "properties": {"instances": {
                   "type": "array", "minItems": 1, "maxItems": MAX_ROWS,
                   "items": {"$ref": "#/components/schemas/Instance"}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": f"jupyter-mlops scoring service: {holder.ref}", "version": "1"},
        "paths": {
            "/predict": {"post": {
                "requestBody": {"required": True,
                                "content": {"application/json": {"schema": request}}},
                "responses": {
                    "200": {"description": "one prediction per instance"},
                    "422": {"description": "an input failed validation",
                            "content": {"application/json": {"schema": error}}}}}},
            "/health": {"get": {"responses": {"200": {"description": "serving"}}}},
            "/metadata": {"get": {"responses": {"200": {"description": "model version"}}}},
        },
        "components": {"schemas": {"Instance": instance}},
    }


class Base(tornado.web.RequestHandler):
    def initialize(self, holder: ModelHolder, logger: BufferedLogger) -> None:
        self.holder = holder
        self.logger = logger

    def reply(self, status: int, payload: Any) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(payload))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.reply(status_code, {"message": self._reason})


class PredictHandler(Base):
    def post(self) -> None:
        started = time.perf_counter()
        loaded = self.holder.current
        assert loaded is not None
        version = loaded.version.version
        try:
            body = json.loads(self.request.body or b"null")
            instances = check_instances(body, loaded.columns)
        except (ValueError, UnicodeDecodeError) as exc:
            self._log_failure(started, version, "invalid", f"body: not JSON ({exc})")
            self.reply(422, {"message": "body: not valid JSON", "field": "body"})
            return
        except Invalid as exc:
            self._log_failure(started, version, "invalid", str(exc))
            self.reply(422, {"message": str(exc), "field": exc.field})
            return
        try:
            import pandas as pd

            frame = pd.DataFrame(instances, columns=[name for name, _ in loaded.columns])
            outputs = [float(v) for v in model_outputs(loaded.model, frame)]
        except Exception as exc:  # the model itself failed: log it, answer 500 as JSON
            self._log_failure(started, version, "error", f"{type(exc).__name__}: {exc}")
            self.reply(500, {"message": "the model failed on this input"})
            return
        latency = (time.perf_counter() - started) * 1000
        now = time.time()
        ids = [uuid.uuid4().hex for _ in instances]
        self.logger.add([{"request_id": rid, "at": now, "version": version,
                          "latency_ms": latency, "status": "ok", "error": "", "output": out,
                          **{INPUT_PREFIX + k: v for k, v in instance.items()}}
                         for rid, out, instance in zip(ids, outputs, instances, strict=True)])
        self.reply(200, {"predictions": outputs, "model": loaded.version.ref,
                         "request_ids": ids})

    def _log_failure(self, started: float, version: int | None, status: str,
                     error: str) -> None:
        self.logger.add([{"request_id": uuid.uuid4().hex, "at": time.time(),
                          "version": version, "status": status, "error": error[:500],
                          "latency_ms": (time.perf_counter() - started) * 1000,
                          "output": float("nan")}])


class HealthHandler(Base):
    def get(self) -> None:
        loaded = self.holder.current
        self.reply(200, {"status": "ok", "model": loaded.version.ref if loaded else None})


class MetadataHandler(Base):
    def get(self) -> None:
        loaded = self.holder.current
        assert loaded is not None
        v = loaded.version
        self.reply(200, {"model": v.name, "version": v.version, "ref": v.ref,
                         "serving": self.holder.ref, "run_id": v.run_id, "digest": v.digest,
                         "input_datasets": list(v.input_datasets),
                         "signature": v.signature, "switches": self.holder.switches})


class OpenAPIHandler(Base):
    def get(self) -> None:
        self.reply(200, openapi(self.holder))


def make_app(holder: ModelHolder, logger: BufferedLogger) -> tornado.web.Application:
    args = {"holder": holder, "logger": logger}
    return tornado.web.Application([
        (r"/predict", PredictHandler, args), (r"/health", HealthHandler, args),
        (r"/metadata", MetadataHandler, args), (r"/openapi.json", OpenAPIHandler, args),
    ])


class NoLogger(BufferedLogger):
    """For load tests of the service itself: nothing is logged."""

    def add(self, rows: list[dict[str, Any]]) -> None:
        return None


async def run_service(project: Project, ref: str, *, port: int, address: str,
                      poll_seconds: float = 1.0, flush_seconds: float = 1.0,
                      log: bool = True, ready: Any = None) -> None:
    """Serve until SIGINT/SIGTERM; then stop accepting, flush the log, return."""
    holder = ModelHolder(project, ref)
    holder.refresh()
    logger = (BufferedLogger if log else NoLogger)(project, holder.name)
    server = make_app(holder, logger).listen(port, address=address, max_body_size=MAX_BODY)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async def every(seconds: float, work: Any) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=seconds)
            except TimeoutError:
                pass
            if not stop.is_set():
                try:
                    await loop.run_in_executor(None, work)
                except MlopsError as exc:  # e.g. the alias was removed: keep serving
                    print(f"mlops serve: {exc}", flush=True)

    tasks = [asyncio.create_task(every(poll_seconds, holder.refresh)),
             asyncio.create_task(every(flush_seconds, logger.flush))]
    print(f"serving {holder.current.version.ref} ({ref}) on http://{address}:{port}",
          flush=True)
    if ready is not None:
        ready()
    await stop.wait()
    server.stop()
    await asyncio.gather(*tasks)
    await asyncio.sleep(0.05)  # let requests being answered finish
    logger.flush()
    print(f"stopped; {logger.written} predictions logged", flush=True)
