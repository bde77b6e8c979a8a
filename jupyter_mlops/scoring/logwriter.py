"""The prediction log's writer: a process of its own, fed by every serving process.

Encoding rows into Parquet, indexing batches in the store, spilling and
writing spilled rows back all take the interpreter; done in a serving
process they hold requests up, and the tail latency shows it. So the
service forks one writer process before its serving processes. Each serving
process sends the rows of each request down a socket of its own as it
answers it (`LogFeed`: a few microseconds of pickling), before the reply
leaves; the writer runs the `BufferedLogger` with its supervised writing and
spilling rounds exactly as one serving process did (bounded, spilled, written
back once), and reports what `/health` should say back up every socket.

Nothing answered is lost: rows are in the writer's socket before the reply
is sent, so a serving process killed even with SIGKILL has handed over every
row it answered. The writer ignores SIGINT and SIGTERM (Ctrl-C reaches the
whole process group) and stops only when the service tells it to and every
serving process has closed its socket: what they sent is read to the end,
then the final flush runs and the closing line says what became of every row.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from ..errors import MlopsError
from ..project import Project
from .logger import Block, BufferedLogger
from .supervision import Periodic, log_reasons, log_to_stderr, relieve, report

STATUS_SECONDS = 0.25  # how often the writer tells the serving processes what /health says
_FEED, _STOP, _READY = b"feed", b"stop", b"ready"


class WriterFailed(MlopsError):
    """The log's writer process could not start (its message says why)."""


class LogFeed:
    """A serving process's end of the writer: `add`/`add_block` as `BufferedLogger`'s,
    sending the rows at once; `reasons()` is what the writer last said for /health."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._conn = Connection(os.dup(sock.fileno()))
        self._reasons: list[str] = []
        self.unsent = 0  # rows that could not be handed to the writer (it is gone)
        threading.Thread(target=self._read_reasons, name="log-feed", daemon=True).start()

    def add(self, rows: list[dict[str, Any]]) -> None:
        self._send(("rows", rows), len(rows))

    def add_block(self, block: Block) -> None:
        self._send(("block", block.ids, block.at, block.version, block.latency_ms,
                    block.outputs, block.names, block.inputs), len(block.ids))

    def reasons(self) -> list[str]:
        reasons = list(self._reasons)
        if self.unsent:
            reasons.append(f"the prediction log's writer process is gone: {self.unsent} rows "
                           "could not be handed to it (the service's log says why)")
        return reasons

    def close(self) -> None:
        """No more rows: the writer reads what was sent to the end, then sees the end."""
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _send(self, message: tuple, rows: int) -> None:
        try:
            self._conn.send(message)
        except OSError as exc:
            if not self.unsent:
                report(f"the prediction log's writer process is gone ({exc}); rows of the "
                       "requests answered from now on are not logged")
            self.unsent += rows

    def _read_reasons(self) -> None:
        try:
            while True:
                kind, reasons = self._conn.recv()
                if kind == "reasons":
                    self._reasons = reasons
        except (EOFError, OSError, ValueError):
            return


class LogWriterProcess:
    """The service's handle on its writer process (forked by `start`)."""

    def __init__(self, pid: int, control: socket.socket) -> None:
        self.pid = pid
        self._control = control
        self._status: int | None = None  # set once the process is reaped

    def forget(self) -> None:
        """In a process forked from the service: let go of the writer's control socket, so
        that the writer sees the service's end alone."""
        self._control.close()

    def ended(self, status: int) -> None:
        """The supervisor reaped the writer (`os.waitpid` gave `status`)."""
        self._status = status

    @classmethod
    def start(cls, project: Project, name: str, *, max_rows: int, flush_seconds: float,
              team_start: Callable[[], Any] | None = None,
              not_ours: tuple[socket.socket, ...] = ()) -> LogWriterProcess:
        """Fork the writer and wait until it is ready; raises `WriterFailed` when it
        could not start (e.g. the team server refused the serving run). `not_ours`
        (the listening sockets) are closed in the writer.

        `team_start` (team mode) is called in the writer: it starts the serving run
        on the team server and returns the `TeamPredictionLog` batches are shipped to.
        """
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:  # the writer: never returns
            ours.close()
            for sock in not_ours:
                sock.close()
            code = 1
            try:
                code = _writer_main(theirs, project, name, max_rows, flush_seconds, team_start)
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        theirs.close()
        reply = ours.recv(4096)
        if reply != _READY:
            os.waitpid(pid, 0)
            ours.close()
            raise WriterFailed(reply.decode("utf-8", "replace") or
                               "the prediction log's writer process ended at its start")
        return cls(pid, ours)

    def feed(self) -> socket.socket:
        """A new socket to the writer for one serving process (the writer reads its end)."""
        mine, writers = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            socket.send_fds(self._control, [_FEED], [writers.fileno()])
        finally:
            writers.close()
        return mine

    def stop(self) -> int:
        """Tell the writer no new feed comes; it ends once every feed is closed. Waits for
        it and returns its exit status."""
        try:
            self._control.send(_STOP)
        except OSError:
            pass  # gone already: waitpid says how it ended
        if self._status is None:
            _, self._status = os.waitpid(self.pid, 0)
        self._control.close()
        return os.waitstatus_to_exitcode(self._status)


def _writer_main(control: socket.socket, project: Project, name: str, max_rows: int,
                 flush_seconds: float, team_start: Callable[[], Any] | None) -> int:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)  # the service says when to stop (see the module)
    log_to_stderr()
    try:
        team = team_start() if team_start is not None else None
        logger = BufferedLogger(project, name, max_rows=max_rows,
                                ship=team.write if team is not None else None)
    except MlopsError as exc:
        control.send(str(exc).encode("utf-8", "replace")[:4000])
        return 1
    try:
        left = logger.find_spilled()
    except MlopsError as exc:
        report(str(exc))
    else:
        if left:
            report(f"{left} prediction-log rows an earlier run spilled to "
                   f"{logger.spill_folder.shown()} are written to the log as soon as it can "
                   f"take them")
    control.send(_READY)
    asyncio.run(_write_until_stopped(control, logger, team, flush_seconds, _shown(project)))
    return 0


async def _write_until_stopped(control: socket.socket, logger: BufferedLogger, team: Any,
                               flush_seconds: float, shown: Callable[[str], str]) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    feeds: set[Connection] = set()
    lock = threading.Lock()
    stopping = threading.Event()

    def write_log() -> None:
        """A round of the log's writer; in team mode, then send what it queued."""
        logger.flush()
        if team is not None:
            team.tick()

    writer = Periodic("writing the prediction log", write_log, flush_seconds, shown=shown)
    spiller = Periodic("spilling the prediction log",
                       lambda: relieve(logger, writer,
                                       lambda: loop.call_soon_threadsafe(writer.wake)),
                       flush_seconds, shown=shown)
    logger.on_full = lambda: loop.call_soon_threadsafe(spiller.wake)  # from a feed's thread

    def maybe_done() -> None:
        with lock:
            done = stopping.is_set() and not feeds
        if done:
            loop.call_soon_threadsafe(stop.set)

    def read_feed(conn: Connection) -> None:
        try:
            while True:
                message = conn.recv()
                if message[0] == "block":
                    logger.add_block(Block(*message[1:]))
                else:
                    logger.add(message[1])
        except (EOFError, OSError):
            pass
        finally:
            with lock:
                feeds.discard(conn)
            conn.close()
            maybe_done()

    def read_control() -> None:
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(control, 64, 1)
            except OSError:
                data, fds = b"", []
            if data == _FEED and fds:
                conn = Connection(fds[0])
                with lock:
                    feeds.add(conn)
                threading.Thread(target=read_feed, args=(conn,), daemon=True).start()
                continue
            for fd in fds:
                os.close(fd)
            stopping.set()  # told to stop, or the service is gone
            maybe_done()
            return

    threading.Thread(target=read_control, name="log-control", daemon=True).start()
    tasks = [asyncio.create_task(task.run(stop)) for task in (writer, spiller)]
    status = asyncio.create_task(_tell_health(stop, feeds, lock, logger, writer, spiller, team))
    await stop.wait()
    for outcome in await asyncio.gather(*tasks, status, return_exceptions=True):
        if isinstance(outcome, Exception):  # a bug: said, and the rows still flushed
            report(f"a periodic task failed: {type(outcome).__name__}: {outcome}")
    final_flush(logger)
    if team is not None:
        _end_team_run(team)


async def _tell_health(stop: asyncio.Event, feeds: set[Connection], lock: threading.Lock,
                       logger: BufferedLogger, writer: Periodic, spiller: Periodic,
                       team: Any) -> None:
    """Send the log's /health reasons to every serving process when they change (and
    to a new one at once)."""
    told: dict[Connection, list[str]] = {}  # a feed -> what it was told last
    while not stop.is_set():
        reasons = log_reasons(logger, writer, spiller, team)
        with lock:
            current = list(feeds)
        for conn in current:
            if told.get(conn) != reasons:
                try:
                    conn.send(("reasons", reasons))
                except OSError:
                    continue  # closing: its reader thread removes it
                told[conn] = reasons
        try:
            await asyncio.wait_for(stop.wait(), STATUS_SECONDS)
        except TimeoutError:
            pass


def final_flush(logger: BufferedLogger) -> None:
    """The flush at the stop (spilled rows too), and the closing line that says what
    became of every row. Rows the log can't take now are spilled for the next start."""
    try:
        logger.flush()
    except Exception as exc:
        report(f"stopping: {exc}")
        try:
            logger.spill()
        except Exception as spill_exc:
            report(f"stopping: {spill_exc}")
    closing = f"stopped; {logger.written} predictions logged"
    if logger.recovered:
        closing += f" ({logger.recovered} of them spilled earlier)"
    if logger.set_aside:
        closing += f"; {logger.set_aside} rows set aside in {logger.unwritable_path}"
    if logger.lost:
        closing += f"; {logger.lost} rows lost"
    if logger.spilled_waiting():
        closing += (f"; {logger.spilled_waiting()} rows wait in "
                    f"{logger.spill_folder.shown()}: the next start writes them to the log")
    if logger.pending():
        closing += f"; {logger.pending()} rows not written (see above)"
    print(closing, flush=True)


def _end_team_run(team: Any) -> None:
    """End the serving run on the team server; say what waits in the spool, if any."""
    try:
        left = team.close()
    except Exception as exc:  # the rows are in the spool; the stop goes on
        report(f"stopping: {exc}")
        return
    if left:
        print(f"{left} prediction-log records wait in {team.queue.spool.pending_path} for "
              f"{team.client.url}: `mlops sync` (or the next `mlops serve`) sends them",
              flush=True)


def _shown(project: Project) -> Callable[[str], str]:
    """Problems as /health shows them: paths relative to the project's root."""
    root = str(project.root).rstrip("/") + "/"

    def shown(text: str) -> str:
        return text.replace(root, "")

    return shown

