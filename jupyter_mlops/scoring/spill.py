"""Prediction-log rows the service could not write yet, kept in local files until
it can: `.mlops/spill/predictions/NAME/spill-STAMP.jsonl`, one JSON row a line.

The folder is outside `.mlops/predictions/` so that a fault of the log's own
folder (replaced, removed, on a failing disk) does not also stop the spill.
Files are private (the project's file mode), opened without following links,
and appear whole: written to a locked temporary, synced, then renamed.

Each row reaches the log exactly once, even when a service stops part-way
through writing a file back:

1. claim: open the file, take its `flock` (another service working on it
   holds it: skip), check that its name still names it, and rename
   `spill-X` to `recovering-X`;
2. write its rows to the log (one transaction indexes each batch);
3. remove it.

A `recovering-X` found later means a writer stopped between 1 and 3: some of
its rows may be in the log already, so its rows are checked against the
request ids the log holds for their time span before the rest are written.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..artifacts import remove_stale_files
from ..errors import MlopsError
from ..project import Project, make_dirs, modes_for
from ..validation import check_model_name

SPILLED = "spill-"
RECOVERING = "recovering-"
SUFFIX = ".jsonl"
STALE_TEMPORARY_SECONDS = 3600.0  # a temporary older than this, held by no writer, is removed

_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class NotASpillFile(MlopsError):
    """An entry named like a spill file is a link, folder or device: it is left alone."""

    def __init__(self, path: str, what: str) -> None:
        self.path = path
        super().__init__(f"{path} is {what}, not a spill file; it is left alone (remove it)")


@dataclass(frozen=True)
class Claim:
    """A spill file this process holds (its `flock`) while writing its rows to the log."""

    key: str  # the part after the prefix: the same for spill- and recovering- names
    retry: bool  # it was found as recovering-: some of its rows may be in the log already
    data: bytes
    dir_fd: int

    def remove(self) -> None:
        """Every row is in the log: remove the file (while still holding its lock)."""
        os.unlink(RECOVERING + self.key, dir_fd=self.dir_fd)


class SpillFolder:
    def __init__(self, project: Project, name: str) -> None:
        self.project = project
        self.path = project.home / "spill" / "predictions" / check_model_name(name)

    def shown(self) -> str:
        """The folder as messages name it: relative to the project's root."""
        try:
            return str(self.path.relative_to(self.project.root))
        except ValueError:
            return str(self.path)

    def write(self, data: bytes) -> str:
        """Write `data` as a new spill file; returns its key. Raises `OSError`."""
        folder = make_dirs(self.path)
        mode = modes_for(folder)[1]
        key = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:12]}{SUFFIX}"
        temporary = f".{SPILLED}{key}.tmp"
        dir_fd = self._open_folder()
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | getattr(os, "O_CLOEXEC", 0), mode, dir_fd=dir_fd)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)  # the stale-temporary sweep leaves it alone
                os.fchmod(fd, mode)  # not the umask's
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)  # these rows are nowhere else
                os.rename(temporary, SPILLED + key, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except BaseException:
                try:
                    os.unlink(temporary, dir_fd=dir_fd)
                except OSError:
                    pass
                raise
            finally:
                os.close(fd)
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return key

    def keys(self) -> list[str]:
        """Keys of the spill files waiting, oldest first (none when there is no folder).
        Raises `OSError` when the folder can't be read."""
        try:
            dir_fd = self._open_folder()
        except FileNotFoundError:
            return []
        try:
            names = os.listdir(dir_fd)
        finally:
            os.close(dir_fd)
        return sorted({name.split("-", 1)[1] for name in names
                       if name.startswith((SPILLED, RECOVERING)) and name.endswith(SUFFIX)})

    def count_rows(self, key: str) -> int:
        """Rows (lines) in the file of `key`; 0 when it is gone or not a regular file
        (`claim` says so). Raises `OSError`."""
        dir_fd = self._open_folder()
        try:
            try:
                _, fd = self._open(dir_fd, key)
            except NotASpillFile:
                return 0
            if fd is None:
                return 0
            with os.fdopen(fd, "rb") as file:
                return sum(chunk.count(b"\n") for chunk in iter(lambda: file.read(1 << 20), b""))
        finally:
            os.close(dir_fd)

    @contextmanager
    def claim(self, key: str) -> Iterator[Claim | None]:
        """Hold the file of `key` while its rows are written (`Claim.remove` when done).

        Yields None when there is nothing to do: the file is gone (another
        service wrote it back) or another service holds it now. Raises
        `NotASpillFile` for a link, folder or device under that name, and
        `OSError` when the file can't be read.
        """
        dir_fd = self._open_folder()
        try:
            name, fd = self._open(dir_fd, key)
            if fd is None:
                yield None
                return
            try:
                yield self._take(dir_fd, fd, name, key)
            finally:
                os.close(fd)  # releases the flock, after any removal: no one reads it twice
        finally:
            os.close(dir_fd)

    def _open_folder(self) -> int:
        """A descriptor of the folder, never reached through a link at its own name."""
        try:
            return os.open(self.path, _OPEN_DIR)
        except NotADirectoryError:
            if self.path.is_symlink():
                raise NotADirectoryError(errno.ENOTDIR, "a link, not a folder: spill files are "
                                         "never written or read through one",
                                         str(self.path)) from None
            raise

    def _open(self, dir_fd: int, key: str) -> tuple[str, int | None]:
        for prefix in (RECOVERING, SPILLED):
            try:
                fd = os.open(prefix + key, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
                             | getattr(os, "O_CLOEXEC", 0), dir_fd=dir_fd)
            except FileNotFoundError:
                continue
            except OSError as exc:
                if os.path.islink(self.path / (prefix + key)):
                    raise NotASpillFile(str(self.path / (prefix + key)), "a link") from None
                raise exc
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise NotASpillFile(str(self.path / (prefix + key)), "not a regular file")
            return prefix + key, fd
        return "", None

    def _take(self, dir_fd: int, fd: int, name: str, key: str) -> Claim | None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None  # another service is writing it into the log
        try:
            named = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None  # written back and removed by the one that held it before us
        held = os.fstat(fd)
        if (named.st_dev, named.st_ino) != (held.st_dev, held.st_ino):
            return None
        retry = name.startswith(RECOVERING)
        if not retry:
            os.rename(name, RECOVERING + key, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return Claim(key=key, retry=retry, data=b"".join(chunks), dir_fd=dir_fd)

    def sweep(self, now: float | None = None) -> None:
        """Remove temporaries a killed writer left (old and held by no one)."""
        if self.path.is_dir():
            remove_stale_files(Path(self.path), STALE_TEMPORARY_SECONDS,
                               time.time() if now is None else now, ".tmp")
