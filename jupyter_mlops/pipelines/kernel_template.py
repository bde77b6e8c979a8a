"""The template kernel process of warm steps (`python -m jupyter_mlops.pipelines.kernel_template`).

Most of a pipeline step's time is importing pandas, scikit-learn, pyarrow,
scrapbook and the kernel itself again in every fresh kernel (see
benchmarks/README.md, "Warm steps"). This process imports them once, then
forks one process per step, which becomes an ordinary ipykernel reading its
connection file: a fresh process for every step, forked from a template in
which no user code ever ran, before any socket or thread exists (as
`multiprocessing`'s forkserver with preloaded modules, or Android's zygote).

It talks to its runner over one Unix socket (`--control-fd`), one JSON
object a line:

- first the runner sends `{"preload": [module, ...]}`; the template imports
  them and answers `{"pid", "preloaded", "skipped", "unsafe"}`, where
  `unsafe` says why forking would be unsafe or unfaithful (an import started a
  thread, or wrote output a cold kernel would show in the notebook), and then exits;
- then each `{"argv", "env", "cwd"}` forks a kernel; the answer is `{"pid"}`.

It exits when the socket closes (its runner ended, however it ended), and
with `--pdeathsig` also by SIGKILL when its parent dies; each kernel it forks
dies with it the same way, and also notices the template is gone as ipykernel's
parent poller does.

Before the preload list arrives only the standard library and our package's
`__init__` (which imports nothing heavy) are loaded.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import ctypes
import gc
import importlib
import importlib.machinery
import importlib.util
import json
import os
import signal
import socket
import sys
import tempfile
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import IO

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"  # as ipykernel's kernelapp
# Kernel threads of libraries that fork safely: they register pthread_atfork handlers
# (jemalloc, in pyarrow) or are unnamed pool threads named after the process (OpenBLAS).
FORK_SAFE_THREAD_NAMES = frozenset({"jemalloc_bg_thd"})
# What a kernel imports while it starts (its debugger's debugpy and pdb, the history's
# sqlite3, psutil to list local addresses, IPython's inspector and completer): 0.19 s
# of a forked kernel's 0.23 s start without them.
KERNEL_MODULES = ("ipykernel.kernelapp", "ipykernel.ipkernel", "ipykernel.zmqshell",
                  "ipykernel.iostream", "ipykernel.heartbeat", "jupyter_client.session",
                  "ipykernel.debugger", "pdb", "sqlite3", "tornado.queues",
                  "tornado.platform.asyncio", "IPython.extensions",
                  "IPython.extensions.storemagic", "IPython.core.debugger",
                  "IPython.core.oinspect", "IPython.core.completerlib", "psutil")


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when the thread that started it exits."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def native_threads() -> list[str]:
    """Names of this process's threads other than the main one (from /proc)."""
    names = []
    own = str(os.getpid())
    for task in os.listdir("/proc/self/task"):
        if task == own:
            continue
        try:
            names.append(Path(f"/proc/self/task/{task}/comm").read_text().strip())
        except OSError:
            continue
    return names


def thread_problem(module: str, process_name: str) -> str | None:
    """Why forking after importing `module` would be unsafe, or None.

    A Python thread, or a named native thread of a library not known to fork
    safely, would be missing in the child with whatever lock it held.
    """
    python = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    if python:
        return (f"importing {module} started Python threads ({', '.join(python)}); "
                "forking would copy a process with threads")
    unknown = [name for name in native_threads()
               if name not in FORK_SAFE_THREAD_NAMES and name != process_name]
    if unknown:
        return (f"importing {module} started threads ({', '.join(sorted(set(unknown)))}); "
                "forking would copy a process with threads")
    return None


def preload(modules: list[str], root: str) -> dict:
    """Import each module unless it lives under the project `root` (the project's own
    code changes between runs and must be read fresh by each step). Stops at the first
    import that starts a thread (forking is then unsafe) or writes output (a cold
    kernel would show it in the notebook: a warm one would not). What the imports
    write goes to a temporary file, not to the runner's terminal."""
    process_name = Path("/proc/self/comm").read_text().strip()
    pid = os.getpid()
    preloaded: list[str] = []
    skipped: dict[str, str] = {}
    problem = None
    with tempfile.TemporaryFile() as out, output_to(out):
        for module in [*KERNEL_MODULES, *modules]:
            if module in sys.modules:
                preloaded.append(module)
                continue
            where = _origin(module)
            if where is not None and _inside(where, root) or _shadowed(module, root):
                skipped[module] = "the project's own code"
                continue
            written_before = out.tell()
            try:
                importlib.import_module(module)
                error = None
            except BaseException as exc:  # noqa: BLE001 - the step will meet it itself, cold
                error = f"{type(exc).__name__}: {exc}"[:200]
            if os.getpid() != pid:  # the import forked: its copy of the template ends here
                os._exit(0)
            _flush()
            out.seek(0, os.SEEK_END)
            problem = thread_problem(module, process_name)
            if problem is None and out.tell() > written_before and module not in KERNEL_MODULES:
                out.seek(written_before)
                first = out.read(400).decode(errors="replace").strip().splitlines()[0][:80]
                problem = (f"importing {module} wrote output ({first!r}), which a cold "
                           "kernel shows in the notebook")
            if problem:
                break
            if error is not None:
                skipped[module] = error
                continue
            preloaded.append(module)
    return {"pid": pid, "preloaded": preloaded, "skipped": skipped, "unsafe": problem}


@contextlib.contextmanager
def output_to(file: IO[bytes]) -> Iterator[None]:
    """This process's stdout and stderr (its runner's) sent to `file` meanwhile."""
    _flush()
    saved = os.dup(1), os.dup(2)
    os.dup2(file.fileno(), 1)
    os.dup2(file.fileno(), 2)
    try:
        yield
    finally:
        _flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):  # closed or replaced by an import
            pass


def outside_sources() -> dict[str, int]:
    """The files of the loaded modules that live outside this Python's installation
    (an editable install, a folder on PYTHONPATH), with their modification times: they
    change without any package version changing, and the runner restarts the template
    when one did."""
    prefixes = tuple({os.path.join(p, "") for p in (sys.prefix, sys.base_prefix,
                                                    sys.exec_prefix, sys.base_exec_prefix)})
    sources: dict[str, int] = {}
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if not isinstance(path, str) or path.startswith(prefixes):
            continue
        try:
            sources[path] = os.stat(path).st_mtime_ns
        except OSError:
            continue
    return sources


def _origin(module: str) -> str | None:
    try:
        spec = importlib.util.find_spec(module.partition(".")[0])
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    return spec.origin or next(iter(spec.submodule_search_locations or ()), None)


def _shadowed(module: str, root: str) -> bool:
    """Whether the project folder holds a module of that name: a kernel started there
    imports it (its working folder comes before site-packages on `sys.path`), not the
    installed one the template would find. A plain folder (a namespace package) does
    not count: a regular package found later on the path wins over it."""
    try:
        spec = importlib.machinery.PathFinder.find_spec(module.partition(".")[0], [root])
    except (ImportError, ValueError, OSError):
        return False
    return spec is not None and spec.loader is not None


def _inside(path: str, root: str) -> bool:
    try:
        return Path(path).resolve().is_relative_to(Path(root).resolve())
    except OSError:
        return False


def become_kernel(request: dict, control: socket.socket, template_pid: int) -> None:
    """In the forked child: become the ipykernel a cold start would have started, with
    the request's working folder, environment (and what the preloaded imports changed
    in it) and arguments. Never returns."""
    code = 1
    try:
        os.setsid()  # its own process group, as jupyter_client starts kernels
        die_with_parent()
        if os.getppid() != template_pid:  # the template died before prctl took effect
            os._exit(1)
        control.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ.update(request["imported_env"])
        for name in request["unset_env"]:
            os.environ.pop(name, None)
        sys.argv = [request["launcher"], *request["argv"]]
        fresh_randomness()
        from ipykernel.kernelapp import IPKernelApp

        IPKernelApp.launch_instance(argv=request["argv"])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - said on stderr, as a cold kernel would
        traceback.print_exc()
    finally:
        # The kernel's own exit handlers run; the interpreter's teardown of every
        # module (a second or more with pandas and scikit-learn loaded) is skipped.
        try:
            finish_control_thread()
            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def finish_control_thread(seconds: float = 2.0) -> None:
    """Let the kernel's control thread end before its exit handler closes IOPub.

    ipykernel 7's exit handler (`IPKernelApp.close`) stops the IOPub thread, then joins
    the control thread, which may still be publishing its last status through IOPub:
    that send then waits for ever, and the kernel ends only at jupyter_client's SIGTERM
    2.5 s later, its exit handlers cut short (1 shutdown in 16 here). Stopped and joined
    first, while IOPub still runs, it ends at once.
    """
    from ipykernel.kernelapp import IPKernelApp

    if not IPKernelApp.initialized():
        return
    thread = getattr(IPKernelApp.instance(), "control_thread", None)
    if thread is not None and thread.is_alive():
        thread.stop()
        thread.join(seconds)


def fresh_randomness() -> None:
    """Each step draws its own random numbers, as a fresh process would: Python's
    `random` reseeds itself after a fork; numpy's global generator does not."""
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        numpy_random.seed()


def serve(control: socket.socket, root: str) -> None:
    stream = control.makefile("rwb", buffering=0)

    def send(message: dict) -> None:
        stream.write(json.dumps(message).encode() + b"\n")

    first = stream.readline()
    if not first:
        return
    # Set by the kernel when it starts, before any cell imports a module that reads it:
    # matplotlib reads it into its rcParams when imported (plots drawn inline).
    if not os.environ.get("MPLBACKEND"):
        os.environ["MPLBACKEND"] = INLINE_BACKEND
    before = dict(os.environ)
    info = preload(list(json.loads(first)["preload"]), root)
    # What the imports set in the environment (scikit-learn sets KMP_DUPLICATE_LIB_OK and
    # KMP_INIT_AT_FORK for OpenMP): a cold kernel has it after the same imports.
    imported_env = {name: value for name, value in os.environ.items()
                    if before.get(name) != value}
    unset_env = [name for name in before if name not in os.environ]
    info["sources"] = outside_sources()
    import ipykernel_launcher  # noqa: F401 - its path is the kernel's sys.argv[0]

    launcher = ipykernel_launcher.__file__
    # What is imported now lives as long as any kernel: the collector leaves it alone
    # (IPython's exit runs a full collection, 0.18 s over pandas and scikit-learn
    # otherwise), and a kernel's collections don't write to pages it shares with us.
    gc.freeze()
    send(info)
    if info["unsafe"]:
        return
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # forked kernels are reaped by Linux
    template_pid = os.getpid()
    for line in iter(stream.readline, b""):
        request = json.loads(line)
        request.update(launcher=launcher, imported_env=imported_env, unset_env=unset_env)
        try:
            pid = os.fork()
        except OSError as exc:
            send({"error": f"fork failed: {exc}"})
            continue
        if pid == 0:
            stream.close()
            become_kernel(request, control, template_pid)
        send({"pid": pid})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kernel_template")
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--root", required=True, help="the project root: never preloaded")
    parser.add_argument("--parent", type=int, required=True, help="the runner's pid")
    parser.add_argument("--pdeathsig", action="store_true")
    args = parser.parse_args(argv)
    if args.pdeathsig:
        die_with_parent()
    if os.getppid() != args.parent:  # the runner died before prctl took effect
        return 1
    # As ipykernel_launcher: the working folder is not importable while loading (and
    # the project's own modules are never preloaded); the kernel adds it back.
    if sys.path and (sys.path[0] == "" or Path(sys.path[0]) == Path.cwd()):
        del sys.path[0]
    control = socket.socket(fileno=args.control_fd)
    try:
        serve(control, args.root)
    except (ConnectionResetError, BrokenPipeError):
        pass  # the runner closed the socket before reading every answer: it is done
    finally:
        control.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
