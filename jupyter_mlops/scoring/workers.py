"""`mlops serve`: a supervisor, one prediction-log writer, and N serving processes
sharing one listening socket (pre-fork).

The supervisor loads the model and binds the port once, forks the log's writer
(`logwriter`), then forks the serving processes: each inherits the loaded
model and the listening socket, so N processes start as fast as one and the
kernel hands each new connection to one of them. Each follows the alias on
its own and answers /health and /metadata from its own state (the same
version, once a move has been seen by all); each sends its rows to the one
writer, so the log gets every row once, whatever process answered.

A serving process that ends without being asked (killed, crashed) is replaced
at once; one that ends again and again within seconds of its start stops the
service. SIGINT or SIGTERM stops the service: serving processes stop
accepting and finish the requests they are answering, then the writer reads
what they sent to the end, flushes and prints the closing line.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import traceback
from typing import Any

from ..errors import MlopsError
from ..hosts import cannot_listen
from ..project import Project
from . import MAX_BUFFERED_ROWS
from .guard import RequestPolicy
from .holder import ModelHolder, ModelNotLoaded
from .logwriter import LogFeed, LogWriterProcess
from .supervision import log_to_stderr, report

STOP_WAIT_SECONDS = 30.0  # at stop: how long serving processes may take before SIGKILL
QUICK_END_SECONDS = 5.0  # a serving process ending this soon after its start...
QUICK_ENDS_ALLOWED = 5  # ...this many times in a row stops the service


class ServingFailed(MlopsError):
    """The serving processes keep ending right after they start (their log says why)."""


def default_workers() -> int:
    """The number of cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def serve(project: Project, ref: str, *, port: int, address: str, workers: int = 1,
          poll_seconds: float = 1.0, flush_seconds: float = 1.0, log: bool = True,
          policy: RequestPolicy | None = None, log_buffer: int = MAX_BUFFERED_ROWS) -> None:
    """Serve `ref` on `address:port` with `workers` serving processes until SIGINT or
    SIGTERM; returns once every row answered is in the log (or spilled).

    Raises `NotFound` when `ref` resolves to no version, `InvalidInput` when the
    port can't be bound, `WriterFailed` when the log's writer can't start (team
    mode: the token may not log predictions), `ServingFailed` when serving
    processes keep ending at their start.
    """
    from tornado.netutil import bind_sockets

    log_to_stderr()
    policy = policy or RequestPolicy.build(address)
    client = _team_client(project)
    holder = ModelHolder(project, ref, client)
    try:
        holder.refresh()
    except ModelNotLoaded as exc:
        report(str(exc))
    try:
        sockets = bind_sockets(port, address=address)
    except OSError as exc:
        raise cannot_listen(exc, address, port) from None
    try:
        writer = _start_writer(project, holder, ref, client, flush_seconds,
                               log_buffer, sockets) if log else None
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    pool = _Pool(holder, sockets, policy, writer, poll_seconds)
    stopping: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: stopping.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for index in range(workers):
            pool.start(index)
        serving = holder.current.version.ref if holder.current else "no model yet"
        print(f"serving {serving} ({ref}) on http://{address}:{port}", flush=True)
        if address in ("0.0.0.0", "::", ""):
            report(f"bound to every interface, answering only Host "
                   f"{', '.join(sorted(policy.hosts))}; add --allow-host NAME for each name "
                   "or address clients use")
        pool.supervise(stopping)
    finally:
        pool.stop()
        for sock in sockets:
            sock.close()
        if writer is not None:
            writer.stop()  # the closing line comes from the writer
        else:
            print("stopped; 0 predictions logged", flush=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if pool.failed is not None:
        raise pool.failed


def _start_writer(project: Project, holder: ModelHolder, ref: str, client: Any,
                  flush_seconds: float, log_buffer: int, sockets: list) -> LogWriterProcess:
    team_start = None
    if client is not None:
        def team_start() -> Any:  # in the forked writer
            from .team import TeamPredictionLog

            client.forget_connections()
            team = TeamPredictionLog(project, client, ref)
            run_id = team.start()
            report(f"the prediction log goes to the team server {client.url} (run {run_id})")
            return team

    return LogWriterProcess.start(project, holder.name, max_rows=log_buffer,
                                  flush_seconds=flush_seconds, team_start=team_start,
                                  not_ours=tuple(sockets))


class _Pool:
    """The serving processes of one service, started, replaced and stopped."""

    def __init__(self, holder: ModelHolder, sockets: list, policy: RequestPolicy,
                 writer: LogWriterProcess | None, poll_seconds: float) -> None:
        self.holder = holder
        self.sockets = sockets
        self.policy = policy
        self.writer = writer
        self.poll_seconds = poll_seconds
        self.children: dict[int, tuple[int, float]] = {}  # pid -> (index, started)
        self.quick_ends = 0
        self.failed: MlopsError | None = None

    def start(self, index: int) -> None:
        feed = self.writer.feed() if self.writer is not None else None
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # a serving process: never returns
            code = 1
            try:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    signal.signal(sig, signal.SIG_DFL)
                if self.writer is not None:
                    self.writer.forget()  # the writer sees the supervisor's end alone
                if self.holder.client is not None:
                    self.holder.client.forget_connections()
                code = _serving_process(self.holder, self.sockets, self.policy, feed,
                                        self.poll_seconds, parent, index)
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        if feed is not None:
            feed.close()
        self.children[pid] = (index, time.monotonic())

    def supervise(self, stopping: list[int]) -> None:
        """Replace serving processes that end, until a signal arrives (or the writer or
        the serving processes fail)."""
        while not stopping:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                time.sleep(0.05)
                continue
            if self.writer is not None and pid == self.writer.pid:
                self.writer.ended(status)
                report(f"the prediction log's writer process ended "
                       f"({_how(status)}); stopping the service")
                self.failed = ServingFailed("the prediction log's writer process ended "
                                            f"({_how(status)}); the service stopped")
                return
            if pid not in self.children:
                continue
            index, started = self.children.pop(pid)
            quick = time.monotonic() - started < QUICK_END_SECONDS
            self.quick_ends = self.quick_ends + 1 if quick else 0
            if self.quick_ends >= QUICK_ENDS_ALLOWED:
                self.failed = ServingFailed(f"serving processes ended {self.quick_ends} times "
                                            f"in a row right after their start (last: "
                                            f"{_how(status)}); the service stopped")
                return
            report(f"serving process {index} (pid {pid}) ended ({_how(status)}); "
                   "starting another")
            self.start(index)

    def stop(self) -> None:
        """SIGTERM to every serving process, and wait (SIGKILL after STOP_WAIT_SECONDS)."""
        for pid in self.children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        while self.children:
            for pid in list(self.children):
                try:
                    done, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    done = pid
                if done:
                    del self.children[pid]
            if self.children and time.monotonic() > deadline:
                for pid in self.children:
                    os.kill(pid, signal.SIGKILL)
                deadline = float("inf")
            time.sleep(0.02)


def _serving_process(holder: ModelHolder, sockets: list, policy: RequestPolicy, feed: Any,
                     poll_seconds: float, parent: int, index: int) -> int:
    """The body of one serving process (forked): the alias checked once more (a process
    started to replace another serves what the alias names now), then requests."""
    from .app import NoLogger, serve_requests

    try:
        holder.refresh()
    except MlopsError as exc:  # the follower says it again, and /health shows it
        if index == 0:
            report(str(exc))
    logger = LogFeed(feed) if feed is not None else NoLogger()
    asyncio.run(serve_requests(holder, logger, sockets, policy, poll_seconds=poll_seconds,
                               parent=parent, says=index == 0))
    return 0


def _how(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"exit status {code}"


def _team_client(project: Project) -> Any:
    """The team server's client when the project records into one (else None)."""
    url = project.server_url()
    if url is None:
        return None
    from ..remote.client import Client
    from ..remote.credentials import token_for

    return Client(url, token_for(url))
