"""Warm steps: each step's kernel is forked from a template process that already
imported what the project's notebooks import (see kernel_template.py for the
template's side).

`WarmStart` belongs to an executor: it keeps one template per project and
environment, started on first use and replaced when the environment's
fingerprint (the digest the step cache keys use) changes. `ForkProvisioner`
is the jupyter_client kernel provisioner that asks the template for a kernel,
so papermill and nbclient drive a forked kernel as any other; it starts the
kernel cold, as before, whenever forking is unavailable or unsafe, and says
why in `KernelStart.note`, which the runner keeps as the step run's
`mlops.kernel` tag.
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_client.provisioning import LocalProvisioner

WARM = "warm"
ASKED_COLD = "asked for (--cold)"  # the cold reason of every command's --cold
READY_SECONDS = 300  # a template still importing after this: its steps start cold
# Variables a step's kernel may see with values other than the template's: they are
# read when the kernel or a magic runs, never when a module is imported.
STEP_VARIABLE = re.compile(r"(MLOPS_|JPY_|IPY_|PYDEVD_)")
_MAGIC_LINE = re.compile(r"^\s*[%!]")
_LOAD_EXT = re.compile(r"^\s*%load_ext\s+([\w.]+)", re.MULTILINE)
_MODEL_MAGIC = re.compile(r"^\s*%mlops\s+model\b", re.MULTILINE)


def cold(reason: str) -> str:
    return f"cold: {reason}"


def unavailable_here() -> str | None:
    """Why this machine cannot fork kernels, or None."""
    if not sys.platform.startswith("linux"):
        return f"forking kernels needs Linux (this is {sys.platform})"
    if not hasattr(os, "pidfd_open") or not hasattr(os, "fork"):
        return "forking kernels needs os.fork and os.pidfd_open (Linux 5.3, Python 3.9)"
    return None


def notebook_imports(notebook: Path) -> list[str]:
    """The modules a notebook's code cells import at top level (`import a.b` gives
    a.b; `from a.b import c` gives a.b), and the extensions it loads. Read with
    `json` and `ast`; a cell that is not Python (a magic) is skipped line by line."""
    try:
        text = notebook.read_text(encoding="utf-8")
    except (OSError, ValueError):
        return []
    return notebook_text_imports(text)


def notebook_text_imports(text: str | bytes) -> list[str]:
    """`notebook_imports` of a notebook's JSON text."""
    try:
        cells = json.loads(text).get("cells", [])
    except (ValueError, AttributeError):
        return []
    if not isinstance(cells, list):  # not a notebook: papermill will say so, cold
        return []
    found: list[str] = []
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(map(str, source)) if isinstance(source, list) else str(source)
        found += _LOAD_EXT.findall(source)
        if _MODEL_MAGIC.search(source):
            found.append("jupyter_mlops.models")
        python = "\n".join("" if _MAGIC_LINE.match(line) else line
                           for line in source.splitlines())
        try:
            tree = ast.parse(python)
        except (SyntaxError, ValueError):
            continue
        for node in tree.body:
            if isinstance(node, ast.Import):
                found += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.append(node.module)
    return list(dict.fromkeys(found))


# Modules our own code imports only when called: the magics when the extension loads
# (the package, then every command's module and IPython's %load_ext: 6 ms of a step),
# skops when a model is saved or loaded (0.5 s).
IMPORTED_LATER = {"jupyter_mlops": ("jupyter_mlops.kernel_magics",
                                    "jupyter_mlops.kernel_magics.magics",
                                    "IPython.core.magics.extension"),
                  "jupyter_mlops.models": ("skops.io",)}


def preload_modules(notebooks: Iterable[Path]) -> list[str]:
    """What the template imports for these notebooks: their imports, and what our own
    modules among them import later."""
    modules: list[str] = []
    for notebook in notebooks:
        modules += notebook_imports(notebook)
    return with_later_imports(modules)


def with_later_imports(modules: Iterable[str]) -> list[str]:
    """`modules`, and what our own modules among them import later."""
    found = list(modules)
    for module in list(found):
        found += IMPORTED_LATER.get(module, ())
    return list(dict.fromkeys(found))


def import_prefixes(modules: Iterable[str]) -> set[str]:
    """`modules` and their parent packages: importing `a.b.c` imports `a` and `a.b`."""
    found: set[str] = set()
    for module in modules:
        parts = module.split(".")
        found.update(".".join(parts[:n]) for n in range(1, len(parts) + 1))
    return found


def common_imports(per_notebook: list[list[str]]) -> list[str]:
    """What every notebook imports (a package counts as imported by a notebook that
    imports one of its modules), in the first notebook's order."""
    if not per_notebook:
        return []
    common = set.intersection(*(import_prefixes(modules) for modules in per_notebook))
    ordered = [p for m in per_notebook[0] for p in sorted(import_prefixes([m]), key=len)]
    return [m for m in dict.fromkeys(ordered) if m in common]


@dataclass
class TemplateInfo:
    pid: int
    preloaded: list[str]
    skipped: dict[str, str]
    unsafe: str | None
    sources: dict[str, int]  # preloaded files outside the installation: their mtimes


class KernelTemplate:
    """One template process and its control socket; thread-safe."""

    def __init__(self, root: Path, env_digest: str, modules: list[str]) -> None:
        self.root = root
        self.env_digest = env_digest
        self.modules = modules
        self.environ = dict(os.environ)
        # The kernel's debugger warns at import about frozen modules: in a cold kernel
        # jupyter's own environment silences it; here it would be said once, for nothing.
        launch_env = {**self.environ, "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        args = [sys.executable, "-m", "jupyter_mlops.pipelines.kernel_template",
                "--control-fd", str(theirs.fileno()), "--root", str(root),
                "--parent", str(os.getpid())]
        # PR_SET_PDEATHSIG fires when the *thread* that started it exits: only a process
        # started by the main thread (which lives as long as the runner) can use it.
        if threading.current_thread() is threading.main_thread():
            args.append("--pdeathsig")
        try:
            self.process = subprocess.Popen(
                args, cwd=root, env=launch_env, stdin=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),), start_new_session=True)
        finally:
            theirs.close()
        self._socket = ours
        self._stream = ours.makefile("rwb", buffering=0)
        self._lock = threading.Lock()
        self._info: TemplateInfo | None = None
        self._problem: str | None = None
        self._send({"preload": modules})

    def _send(self, message: dict) -> None:
        self._stream.write(json.dumps(message).encode() + b"\n")

    def _receive(self) -> dict:
        line = self._stream.readline()
        if not line:
            code = self.process.poll()
            raise OSError(f"the template kernel process exited (status {code})")
        return json.loads(line)

    def info(self) -> TemplateInfo | None:
        """What the template preloaded, once it has (waits for it, at most
        READY_SECONDS); None when it could not start, with the reason in `problem`."""
        with self._lock:
            if self._info is None and self._problem is None:
                try:
                    self._socket.settimeout(READY_SECONDS)
                    try:
                        got = self._receive()
                    finally:
                        self._socket.settimeout(None)
                    self._info = TemplateInfo(pid=int(got["pid"]), preloaded=got["preloaded"],
                                              skipped=got["skipped"], unsafe=got["unsafe"],
                                              sources=got.get("sources", {}))
                except TimeoutError:
                    self._problem = (f"the template kernel process did not finish its "
                                     f"imports in {READY_SECONDS} s")
                except (OSError, ValueError, KeyError) as exc:
                    self._problem = str(exc)
            return self._info

    @property
    def problem(self) -> str | None:
        """Why no kernel can be forked from this template, or None."""
        info = self.info()
        if info is None:
            return self._problem
        if info.unsafe:
            return info.unsafe
        if self.process.poll() is not None:
            return f"the template kernel process exited (status {self.process.returncode})"
        return None

    def fork(self, argv: list[str], env: Mapping[str, str], cwd: str) -> int:
        """A new kernel process running `ipykernel_launcher argv`; its pid."""
        with self._lock:
            self._send({"argv": argv, "env": dict(env), "cwd": cwd})
            got = self._receive()
        if "error" in got:
            raise OSError(got["error"])
        return int(got["pid"])

    def alive(self) -> bool:
        return self.process.poll() is None

    def killed(self) -> bool:
        """Whether it ended without a reason to: killed by someone, or crashed (one that
        found forking unsafe ends by itself, and would again if restarted)."""
        info = self._info  # not info(): that waits for the imports
        return not (info is not None and info.unsafe) and not self.alive()

    def changed_source(self) -> str | None:
        """A preloaded file outside the installation (an editable install, a folder on
        PYTHONPATH) that changed since the template imported it, or None."""
        info = self._info  # not info(): that waits for the imports
        for path, mtime in (info.sources if info is not None else {}).items():
            try:
                if os.stat(path).st_mtime_ns != mtime:
                    return path
            except OSError:
                return path
        return None

    def close(self) -> None:
        """End the template, at once: it holds nothing to save, and it may be in the
        middle of its imports (an interrupted first run), deaf to its socket until they
        end. Kernels forked from it die with it (PR_SET_PDEATHSIG)."""
        try:
            self._stream.close()
            self._socket.close()
        finally:
            self.process.kill()
            self.process.wait()


@dataclass
class KernelStart:
    """How one step's kernel was started: `warm`, or `cold: why`."""

    template: KernelTemplate | None
    note: str = WARM


class WarmStart:
    """The template of one executor: per project and environment, started on first use,
    reused across pipeline runs, replaced when the environment changed."""

    def __init__(self, cold: str | None = None) -> None:
        self.cold_reason = cold  # e.g. ASKED_COLD: every step starts cold
        self._template: KernelTemplate | None = None
        self._extra: list[str] = []
        self._lock = threading.Lock()

    def prepare(self, root: Path, env_digest: str, notebooks: Iterable[Path],
                extra: Iterable[str] = ()) -> None:
        """Start a template for this project and environment (it imports in the
        background) unless the running one preloads the same modules, was not killed
        (by someone, or the out-of-memory killer) and none of its files outside the
        installation changed (an editable install's); another one is closed first.

        The template imports only what *every* one of these notebooks imports (and the
        `extra` modules, the spec's `preload`): an import can change the process (a
        warnings filter, a logging handler, an exit handler, the umask, a patched
        library), and a step's kernel must not carry the imports of another step's
        notebook. A module only some steps import is imported by those steps' kernels.
        """
        if self.cold_reason or unavailable_here():
            return
        modules = [*common_imports([preload_modules([nb]) for nb in notebooks]), *extra]
        modules = list(dict.fromkeys(modules))
        with self._lock:
            current = self._template
            if current is not None and current.root == root and not current.killed() and \
                    current.env_digest == env_digest and \
                    set(modules) == set(current.modules) and not current.changed_source():
                return
            if current is not None:
                current.close()
            self._template = KernelTemplate(root, env_digest, modules)
            self._extra = list(extra)

    def start(self, env_digest: str | None = None,
              notebook: Path | None = None) -> KernelStart:
        """How the next step's kernel starts: from the template when there is a usable
        one for `env_digest` (and that preloaded nothing `notebook` does not import),
        else cold with the reason."""
        if self.cold_reason:
            return KernelStart(None, cold(self.cold_reason))
        here = unavailable_here()
        if here:
            return KernelStart(None, cold(here))
        with self._lock:
            template = self._template
        if template is None:
            return KernelStart(None, cold("no template kernel process was prepared"))
        if env_digest is not None and template.env_digest != env_digest:
            return KernelStart(None, cold("the environment changed since the template "
                                          "kernel process started"))
        changed = template.changed_source()
        if changed:
            return KernelStart(None, cold(f"{changed} changed since the template kernel "
                                          "process imported it"))
        if notebook is not None:
            own = import_prefixes([*preload_modules([notebook]), *self._extra])
            foreign = [m for m in template.modules if m not in own]
            if foreign:
                return KernelStart(None, cold(
                    "the template kernel process imported modules this notebook does not "
                    f"({', '.join(foreign[:5])})"))
        return KernelStart(template)

    def close(self) -> None:
        with self._lock:
            template, self._template = self._template, None
        if template is not None:
            template.close()


class ForkedKernel:
    """A kernel forked by the template, seen as the `Popen` LocalProvisioner expects.

    It is the template's child, not ours: a pidfd follows it without the risk of a
    reused pid; its exit status is not known here (the template's kernel reaps it)."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        try:
            self.pidfd: int | None = os.pidfd_open(pid)
        except ProcessLookupError:
            self.pidfd = None
            self.returncode = 0

    def poll(self) -> int | None:
        if self.returncode is None and self.pidfd is not None:
            ready, _, _ = select.select([self.pidfd], [], [], 0)
            if ready:
                self._exited()
        return self.returncode

    def _exited(self) -> None:
        self.returncode = 0
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None and self.pidfd is not None:
            ready, _, _ = select.select([self.pidfd], [], [], timeout)
            if not ready:
                raise subprocess.TimeoutExpired(str(self.pid), timeout or 0)
            self._exited()
        return self.returncode or 0

    def send_signal(self, signum: int) -> None:
        if self.poll() is None and self.pidfd is not None:
            signal.pidfd_send_signal(self.pidfd, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class ForkProvisioner(LocalProvisioner):
    """Launches the kernel by asking the template to fork it, or as LocalProvisioner does
    when it can't; `start.note` says which and why."""

    start: KernelStart | None = None

    async def launch_kernel(self, cmd: list[str], **kwargs: Any):  # noqa: ANN201
        start = self.start
        if start is None:
            return await super().launch_kernel(cmd, **kwargs)
        reason = self._refusal(cmd, kwargs)
        if reason is None:
            assert start.template is not None
            try:
                pid = await self._fork(start.template, cmd, kwargs)
            except OSError as exc:  # the template died after it said it could fork
                reason = f"the template kernel process could not fork: {exc}"
            else:
                self.process = ForkedKernel(pid)
                self.pid = self.pgid = pid
                self.cwd = str(kwargs.get("cwd") or os.getcwd())
                return self.connection_info
        start.note = cold(reason)
        return await super().launch_kernel(cmd, **kwargs)

    async def _fork(self, template: KernelTemplate, cmd: list[str],
                    kwargs: Mapping[str, Any]) -> int:
        """The pid of a kernel forked to run `cmd`'s ipykernel with the launch's
        environment and working folder; its parent is the template."""
        info = template.info()
        assert info is not None
        argv = [*cmd[3:], f"--IPKernelApp.parent_handle={info.pid}"]
        env = {**kwargs.get("env", os.environ), "JPY_PARENT_PID": str(info.pid)}
        cwd = str(kwargs.get("cwd") or os.getcwd())
        return await asyncio.get_running_loop().run_in_executor(
            None, template.fork, argv, env, cwd)

    def _refusal(self, cmd: list[str], kwargs: Mapping[str, Any]) -> str | None:
        """Why this kernel must start cold, or None."""
        start = self.start
        assert start is not None
        if start.template is None:
            return start.note.removeprefix("cold: ")
        kernel = getattr(self.parent, "kernel_name", None) or "python3"
        if kernel != "python3":
            return f"the notebook's kernel is {kernel!r}, not python3"
        if len(cmd) < 3 or cmd[1:3] != ["-m", "ipykernel_launcher"] or \
                os.path.realpath(cmd[0]) != os.path.realpath(sys.executable):
            return (f"the python3 kernel runs {' '.join(cmd[:3])!r}, not this Python's "
                    "ipykernel")
        problem = start.template.problem
        if problem:
            return problem
        env = kwargs.get("env") or {}
        differs = sorted(name for name in set(env) | set(start.template.environ)
                         if env.get(name) != start.template.environ.get(name)
                         and not STEP_VARIABLE.match(name))
        if differs:
            return ("the step's environment variables differ from the template's "
                    f"({', '.join(differs[:5])})")
        return None

    async def exited(self) -> None:
        """Return when the kernel process has exited: at once, seen on its pidfd."""
        process = self.process
        if not isinstance(process, ForkedKernel):
            while await self.poll() is None:
                await asyncio.sleep(0.1)
            return
        if process.pidfd is not None and process.returncode is None:
            loop = asyncio.get_running_loop()
            exited = loop.create_future()
            fd = process.pidfd
            loop.add_reader(fd, lambda: exited.done() or exited.set_result(None))
            try:
                await exited
            finally:
                loop.remove_reader(fd)
        process.wait()

    async def wait(self) -> int | None:
        """Wait for the exit on the pidfd, not by polling every 0.1 s."""
        process = self.process
        if not isinstance(process, ForkedKernel):
            return await super().wait()
        await self.exited()
        self.process = None
        return process.returncode
