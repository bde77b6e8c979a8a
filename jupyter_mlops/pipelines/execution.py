"""Executing one step's notebook with papermill; runs in-process or on a Dask worker.

`run_step_task` is the unit of work: a plain function of a picklable
`StepTask`, returning a picklable `StepResult` with the executed notebook and
the files the step staged in its outbox, so a remote worker needs no access
to the project's database.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import blake3

from ..capture import NOTEBOOK_ENV
from ..errors import IntegrityError, InvalidInput, NotFound
from ..project import create_file_with_mode
from ..recorders import OUTBOX_ENV
from ..store.records import FAILURE_KINDS, StepFailure
from ..validation import MAX_BLOB_SIZE, check_digest, is_digest

if TYPE_CHECKING:
    from .warm import KernelStart

MAX_NOTEBOOK_BYTES = 1 << 31  # an executed notebook larger than 2 GiB is refused
MAX_FAILURE_TEXT = 20_000  # characters kept of a failing cell's source, value or traceback
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_PACKAGE = str(Path(__file__).resolve().parent.parent)  # jupyter_mlops/


@dataclass(frozen=True)
class StepTask:
    step: str
    notebook: str  # absolute path of the source notebook
    params: Mapping[str, Any]
    cwd: str  # the project root
    kernel_name: str | None = None
    outbox: str | None = None  # local: write staged files here; None: a temp dir, sent back
    output_path: str | None = None  # local: write the executed notebook here
    env_digest: str | None = None  # the environment the step's cache key was computed in


@dataclass
class StepResult:
    step: str
    notebook_json: bytes  # the executed (or partly executed) notebook
    outbox_files: dict[str, bytes] = field(default_factory=dict)  # remote only
    error: str | None = None  # one line, "cell N raised Ename: evalue": failure.message
    seconds: float = 0.0
    failure: StepFailure | None = None  # why the notebook did not run to its end
    kernel_start: str | None = None  # "warm", or "cold: why" (warm.py)


class KernelRegistry:
    """Kernel process ids started for steps, so an interrupt can stop them all.

    Once `kill_all` ran, a kernel registered later (one that was still starting: a
    warm one waiting for its template's imports) is killed at once.
    """

    def __init__(self) -> None:
        self._pids: set[int] = set()
        self._lock = threading.Lock()
        self._stopped = False

    def add(self, pid: int) -> None:
        with self._lock:
            if not self._stopped:
                self._pids.add(pid)
                return
        _kill_group(pid)

    def discard(self, pid: int) -> None:
        with self._lock:
            self._pids.discard(pid)

    def kill_all(self) -> int:
        with self._lock:
            pids = list(self._pids)
            self._pids.clear()
            self._stopped = True
        for pid in pids:
            _kill_group(pid)
        return len(pids)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(os.getpgid(pid), signal.SIGKILL)  # kernels run in their own session
    except (ProcessLookupError, PermissionError):
        pass


def _kernel_manager_class(env: Mapping[str, str], registry: KernelRegistry | None,
                          start: KernelStart | None = None):
    """An AsyncKernelManager that starts its kernel with `env` added, and registers it;
    given a `start`, its kernel is forked from the template (or started cold, the
    reason kept in `start.note`)."""
    import zmq
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import DottedObjectName, Type

    from .kernel_client import RECONNECT_MILLISECONDS, StepKernelClient

    class StepKernelManager(AsyncKernelManager):
        client_class = DottedObjectName("jupyter_mlops.pipelines.kernel_client.StepKernelClient")
        client_factory = Type(StepKernelClient, klass=StepKernelClient)

        def _context_default(self) -> Any:
            # The manager's own socket, control (the interrupt and shutdown requests),
            # connects when the kernel process exists, before the kernel has bound its
            # ports: ZeroMQ's first retry, 100 ms later, delayed a warm step's shutdown
            # request by up to 100 ms (median 70). Retried after 10 ms, as the client's.
            context = super()._context_default()
            context.setsockopt(zmq.RECONNECT_IVL, RECONNECT_MILLISECONDS)
            return context

        async def _async_pre_start_kernel(self, **kw: Any):
            kw["env"] = {**os.environ, **kw.get("env", {}), **env}
            if start is not None and self.provisioner is None:
                from .warm import ForkProvisioner

                provisioner = ForkProvisioner(kernel_id=self.kernel_id or str(uuid.uuid4()),
                                              kernel_spec=self.kernel_spec, parent=self)
                provisioner.start = start
                self.kernel_id = provisioner.kernel_id
                self.provisioner = provisioner
            return await super()._async_pre_start_kernel(**kw)

        async def _async_wait(self, pollinterval: float = 0.1) -> None:
            # A forked kernel's exit is seen on its pidfd at once; jupyter_client polls
            # every 0.1 s.
            exited = getattr(self.provisioner, "exited", None)
            if exited is not None:
                await exited()
            else:
                await super()._async_wait(pollinterval=pollinterval)

        async def _async_post_start_kernel(self, **kw: Any) -> None:
            await super()._async_post_start_kernel(**kw)
            pid = getattr(self.provisioner, "pid", None)
            if registry is not None and pid:
                registry.add(pid)
                self._registered_pid = pid

        async def _async_shutdown_kernel(self, *args: Any, **kw: Any) -> None:
            pid = getattr(self, "_registered_pid", None)
            await super()._async_shutdown_kernel(*args, **kw)
            if registry is not None and pid:
                registry.discard(pid)

    StepKernelManager.shutdown_kernel = StepKernelManager._async_shutdown_kernel  # type: ignore
    return StepKernelManager


def execute_notebook(notebook: str, output_path: str, params: Mapping[str, Any], cwd: str,
                     env: Mapping[str, str], *, kernel_name: str | None = None,
                     registry: KernelRegistry | None = None,
                     progress_bar: bool = False, start: KernelStart | None = None) -> str | None:
    """Run a notebook with papermill in a fresh kernel whose environment adds `env`.

    Returns None on success, else "cell N raised Ename: evalue" (N counts the
    cells of the user's notebook, 1-based). The executed notebook is written
    to `output_path` either way.
    """
    failure = execute_step_notebook(notebook, output_path, params, cwd, env,
                                    kernel_name=kernel_name, registry=registry,
                                    progress_bar=progress_bar, start=start)
    return None if failure is None else failure.message


def execute_step_notebook(notebook: str, output_path: str, params: Mapping[str, Any],
                          cwd: str, env: Mapping[str, str], *, kernel_name: str | None = None,
                          registry: KernelRegistry | None = None,
                          progress_bar: bool = False,
                          start: KernelStart | None = None) -> StepFailure | None:
    """`execute_notebook`, returning the whole failure: a failing cell (kind `notebook`,
    with its position, source, exception and the kernel's traceback), the kernel or
    papermill giving up (kind `kernel`), or an exception in our own code (kind `runner`)."""
    import papermill as pm

    try:
        pm.execute_notebook(
            notebook, output_path, parameters=dict(params), cwd=cwd, kernel_name=kernel_name,
            progress_bar=progress_bar, log_output=False,
            kernel_manager_class=_kernel_manager_class(env, registry, start))
    except pm.PapermillExecutionError as exc:
        cell = _source_position(output_path, exc.cell_index)
        return StepFailure(
            kind="notebook", message=f"cell {cell} raised {exc.ename}: {exc.evalue}",
            cell=cell, source=_clip(exc.source), ename=_clip(exc.ename),
            evalue=_clip(exc.evalue), traceback=_clip_lines(exc.traceback or []))
    except Exception as exc:  # a dead kernel, a timeout, a notebook papermill cannot read
        return failure_from_exception(exc, "kernel")
    return None


def failure_from_exception(exc: BaseException, kind: str) -> StepFailure:
    """An exception raised outside the notebook's cells, kept with its traceback.

    `kind` is what it is when the exception comes from other packages (papermill, the
    kernel, Dask); when it was raised in jupyter-mlops's own code it is a bug of ours,
    kind `runner`, whatever the caller guessed.
    """
    frames = traceback.extract_tb(exc.__traceback__)
    ours = bool(frames) and os.path.abspath(frames[-1].filename).startswith(_PACKAGE + os.sep)
    if ours or kind == "runner":
        kind = "runner"
        message = (f"internal error in jupyter-mlops (a bug; please report it with the "
                   f"traceback): {type(exc).__name__}: {exc}")
    elif kind == "kernel":
        message = f"the notebook could not run to its end: {type(exc).__name__}: {exc}"
    else:
        message = f"{type(exc).__name__}: {exc}"
    return StepFailure(kind=kind, message=_clip(message.splitlines()[0] if message else ""),
                       ename=type(exc).__name__, evalue=_clip(str(exc)),
                       traceback=_clip_lines(traceback.format_exception(exc)))


def check_failure(failure: object, step: str) -> StepFailure | None:
    """A failure sent back by an executor, checked and bounded before it is kept."""
    if failure is None:
        return None
    if not isinstance(failure, StepFailure) or failure.kind not in FAILURE_KINDS:
        raise InvalidInput(f"step {step!r}: the executor sent back a failure that is not one")
    texts = (failure.message, failure.source, failure.ename, failure.evalue)
    lines = failure.traceback
    if not all(t is None or isinstance(t, str) for t in texts) or not isinstance(
            lines, tuple | list) or not all(isinstance(line, str) for line in lines) or not (
            failure.cell is None or type(failure.cell) is int):
        raise InvalidInput(f"step {step!r}: the executor sent back a malformed failure")
    return StepFailure(kind=failure.kind, message=_clip(failure.message.splitlines()[0]
                                                        if failure.message else ""),
                       cell=failure.cell, source=_clip(failure.source),
                       ename=_clip(failure.ename), evalue=_clip(failure.evalue),
                       traceback=_clip_lines(failure.traceback))


def _clip(text: str | None) -> str | None:
    """Plain text (no terminal colours), at most MAX_FAILURE_TEXT characters."""
    if text is None:
        return None
    text = _ANSI.sub("", str(text))
    if len(text) > MAX_FAILURE_TEXT:
        text = text[:MAX_FAILURE_TEXT] + f"... ({len(text) - MAX_FAILURE_TEXT} more characters)"
    return text


def _clip_lines(lines: Any) -> tuple[str, ...]:
    """A traceback's lines as plain text, the last ones kept when it is too long."""
    kept: list[str] = []
    total = 0
    for line in reversed(list(lines)):
        text = _clip(line) or ""
        total += len(text)
        if total > MAX_FAILURE_TEXT and kept:
            kept.append("... (earlier lines cut)")
            break
        kept.append(text)
    return tuple(reversed(kept))


def run_step_task(task: StepTask, registry: KernelRegistry | None = None,
                  start: KernelStart | None = None) -> StepResult:
    """Execute the task's notebook in a fresh kernel process (forked from the template
    when `start` has one); never raises for a failing cell, nor for a fault of ours
    (that comes back as a `runner` failure with our traceback)."""
    started = time.monotonic()
    try:
        return _run_step_task(task, registry, started, start)
    except Exception as exc:
        failure = failure_from_exception(exc, "runner")
        return StepResult(step=task.step, notebook_json=b"", error=failure.message,
                          seconds=time.monotonic() - started, failure=failure)


def _run_step_task(task: StepTask, registry: KernelRegistry | None,
                   started: float, start: KernelStart | None) -> StepResult:
    temp = None
    outbox = task.outbox
    output_path = task.output_path
    if outbox is None or output_path is None:
        temp = tempfile.mkdtemp(prefix=f"mlops-step-{task.step}-")
        outbox = outbox or os.path.join(temp, "outbox")
        output_path = output_path or os.path.join(temp, Path(task.notebook).name)
    try:
        env = {OUTBOX_ENV: outbox, NOTEBOOK_ENV: task.notebook}
        # papermill rewrites the file in place: created first, it keeps the private mode.
        create_file_with_mode(output_path)
        failure = execute_step_notebook(task.notebook, output_path, task.params, task.cwd,
                                        env, kernel_name=task.kernel_name, registry=registry,
                                        start=start)
        try:
            notebook_json = Path(output_path).read_bytes()
        except OSError:
            notebook_json = b""
        result = StepResult(step=task.step, notebook_json=notebook_json,
                            error=None if failure is None else failure.message,
                            seconds=time.monotonic() - started, failure=failure,
                            kernel_start=None if start is None else start.note)
        if temp is not None:
            staged = Path(outbox)
            if staged.is_dir():
                result.outbox_files = {f.name: f.read_bytes() for f in staged.iterdir()}
        return result
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


def staged_name(digest: str) -> str:
    """The outbox file name of a staged digest (`blake3-<hex>`); the digest is checked."""
    return check_digest(digest, "staged digest").replace(":", "-")


def check_step_result(result: StepResult, step: str) -> StepResult:
    """Check what an executor sent back before anything of it is used.

    A result from a Dask worker crossed a process (or host) boundary: its step
    name must match, its notebook must be bounded, and every staged file must
    be named `blake3-<64 hex>` and hold bytes that hash to that name. Raises
    `InvalidInput` or `IntegrityError` naming the step and the file.
    """
    if result.step != step:
        raise InvalidInput(f"step {step!r}: the executor returned the result of step "
                           f"{str(result.step)[:80]!r}")
    if not isinstance(result.notebook_json, bytes) or \
            len(result.notebook_json) > MAX_NOTEBOOK_BYTES:
        raise InvalidInput(f"step {step!r}: the executed notebook is not bytes of at most "
                           f"{MAX_NOTEBOOK_BYTES}")
    result.failure = check_failure(result.failure, step)
    if result.kernel_start is not None:
        if not isinstance(result.kernel_start, str):
            raise InvalidInput(f"step {step!r}: the executor sent back a kernel start that is "
                               "not text")
        result.kernel_start = _clip(result.kernel_start.splitlines()[0][:500]
                                    if result.kernel_start else "")
    total = 0
    for name, data in result.outbox_files.items():
        digest = name.replace("-", ":", 1) if isinstance(name, str) else None
        if not is_digest(digest) or not isinstance(data, bytes):
            raise InvalidInput(f"step {step!r}: staged file {str(name)[:80]!r} refused: a "
                               "staged file is named blake3-<64 hex> and holds bytes")
        total += len(data)
        if total > MAX_BLOB_SIZE:
            raise InvalidInput(f"step {step!r}: staged files exceed {MAX_BLOB_SIZE} bytes")
        _check_bytes(digest, data, f"step {step!r}: staged file {name}")
    return result


def read_staged(digest: str, sent: Mapping[str, bytes], outbox: Path) -> bytes:
    """The bytes a step staged under `digest`: sent back by a remote executor, or read
    from the local outbox without following a link; they must hash to `digest`."""
    name = staged_name(digest)
    if name in sent:
        return sent[name]
    try:
        fd = os.open(outbox / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFound(f"the step staged no file for {digest}") from None
    except OSError as exc:
        raise InvalidInput(f"staged file {name} refused: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as staged:
        data = staged.read()
    _check_bytes(digest, data, f"staged file {name}")
    return data


def _check_bytes(digest: str, data: bytes, what: str) -> None:
    actual = "blake3:" + blake3.blake3(data).hexdigest()
    if actual != digest:
        raise IntegrityError(what, digest, actual)


def _source_position(output_path: str, cell_index: int) -> int:
    """1-based position of a cell in the user's notebook: papermill's injected
    parameters cell, present only in the executed copy, is not counted."""
    import json

    try:
        cells = json.loads(Path(output_path).read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError):
        return cell_index + 1
    injected = sum(1 for cell in cells[:cell_index]
                   if "injected-parameters" in cell.get("metadata", {}).get("tags", []))
    return cell_index - injected + 1
