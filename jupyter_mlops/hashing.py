"""Content digests of files and folders, written `blake3:<hex>`.

- A file's digest is BLAKE3 of its bytes (mmap, all cores).
- A folder's digest is a Merkle digest: BLAKE3 over the sorted relative POSIX
  paths of its files, each with its file digest.
- In-memory tables (DataFrames, arrays, Arrow and polars tables) are digested
  by `table_digests`.

`StatCache` remembers (path, size, mtime_ns, inode) -> digest so that an
unchanged file is not read again.

Only regular files are read (`open_regular`): a FIFO, socket or device is
refused, and opening never blocks. A folder is walked through file
descriptors (each subfolder opened relative to its parent, never through a
link), and each file found carries the (device, inode) it had when listed
(`FolderFile`): whoever opens it later checks that it opened that file, so a
folder swapped for a link between the listing and the read is an error, never
a read of the link's target.
"""

from __future__ import annotations

import errno
import mmap
import os
import sqlite3
import stat
import time
from pathlib import Path, PosixPath

import blake3

from .errors import InvalidInput, NotFound
from .project import create_file_with_mode, make_dirs
from .validation import check_relative_path, split_digest

__all__ = ["ALGORITHM", "FolderChanged", "FolderFile", "NotRegularFile", "StatCache",
           "SymlinkRefused", "digest_bytes", "digest_file", "digest_folder", "digest_listed_files",
           "digest_path", "format_digest", "list_folder_files", "open_regular", "split_digest"]

ALGORITHM = "blake3"
_FOLDER_HEADER = b"jupyter-mlops folder v1\n"
# git's racy-clean rule: a digest is cached only for a file whose mtime is older than
# the moment hashing started by more than the filesystem's timestamp granularity, since
# a write within one timestamp tick can leave size and mtime unchanged. Linux stamps
# files at kernel-tick resolution (<= 10 ms); filesystems whose stamps are whole
# seconds (FAT: 2 s, HFS+, ext3, some network filesystems) get 2 s.
_FINE_GRANULARITY_NS = 20_000_000
_COARSE_GRANULARITY_NS = 2_000_000_000
# Files from this size on are hashed through mmap on all cores; smaller ones are read.
_MMAP_FROM = 1 << 20


def format_digest(hexdigest: str) -> str:
    return f"{ALGORITHM}:{hexdigest}"


def digest_bytes(data: bytes | memoryview) -> str:
    return format_digest(blake3.blake3(data).hexdigest())


def _hash_fd(fd: int, size: int) -> str:
    """Digest of the file open on `fd` (`size` from its fstat picks mmap or reads)."""
    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
    if size >= _MMAP_FROM:
        try:
            with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as mapped:
                hasher.update(mapped)
            return format_digest(hasher.hexdigest())
        except ValueError:  # emptied since the fstat: nothing to map
            hasher = blake3.blake3()
    while chunk := os.read(fd, _MMAP_FROM):
        hasher.update(chunk)
    return format_digest(hasher.hexdigest())


class NotRegularFile(InvalidInput):
    """A FIFO, socket, device or folder was named where a file's bytes are read."""

    def __init__(self, path: object, kind: str, folder: object = None) -> None:
        self.path = path
        self.kind = kind
        where = f"{str(path)!r}" if folder is None else f"{str(path)!r} in folder {str(folder)!r}"
        super().__init__(
            f"{where} is {kind}, not a regular file: only regular files are recorded or "
            "stored (a pipe may never end, a device has no fixed content). "
            + ("Move it out of the folder." if folder is not None else
               "Copy what it holds to a file and log that."))


class FolderChanged(InvalidInput):
    """A logged folder changed between being listed and being read."""

    def __init__(self, folder: object, relative: str, problem: str) -> None:
        self.folder = folder
        self.relative = relative
        super().__init__(
            f"{str(folder)!r} changed while it was being read: {relative!r} {problem}. It "
            "was not recorded; log it again once nothing is changing it")


class FolderFile(PosixPath):
    """The path of a file found by `list_folder_files`, remembering what was listed.

    `identity` is the file's (st_dev, st_ino) and `size` its size when the walk
    saw it, through file descriptors, inside the folder. `open_regular` opens
    such a path without following a link and checks that it opened that same
    file: a folder or subfolder swapped for a link since the listing is a
    `FolderChanged` error, never a read of the link's target. Paths derived
    from it (`.parent`, `/`) are plain paths.
    """

    folder: Path | None = None
    relative: str = ""
    identity: tuple[int, int] | None = None
    size: int = 0

    @classmethod
    def listed(cls, folder: Path, relative: str, st: os.stat_result) -> FolderFile:
        path = cls(folder, relative)
        path.folder, path.relative = folder, relative
        path.identity, path.size = (st.st_dev, st.st_ino), st.st_size
        return path


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    return "not a regular file"


def open_regular(path: str | os.PathLike[str], follow: bool = True
                 ) -> tuple[int, os.stat_result]:
    """Open a regular file for reading; return (fd, its fstat). The caller closes fd.

    A FIFO, socket, device or folder is refused (`NotRegularFile`): its type is
    checked before opening (opening a device can act on it) and again on the
    opened fd, and the open is non-blocking, so a FIFO swapped in meanwhile
    cannot hang us. With `follow=False` a symbolic link is refused
    (`InvalidInput`). A `FolderFile` is opened without following a link and
    must be the very file that was listed (`FolderChanged`). Raises `NotFound`.
    """
    listed = path.identity if isinstance(path, FolderFile) else None
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
    if listed is not None or not follow:
        flags |= os.O_NOFOLLOW
    if listed is None:
        try:
            before = os.stat(path, follow_symlinks=follow)
        except FileNotFoundError:
            raise NotFound(f"no file {os.fspath(path)}") from None
        if stat.S_ISLNK(before.st_mode):
            raise _link_refused(path)
        if not stat.S_ISREG(before.st_mode):
            raise NotRegularFile(os.fspath(path), _kind(before.st_mode))
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if listed is not None:
            assert isinstance(path, FolderFile)
            raise FolderChanged(path.folder, path.relative, _gone(exc)) from None
        if isinstance(exc, FileNotFoundError):
            raise NotFound(f"no file {os.fspath(path)}") from None
        if os.path.islink(path):
            raise _link_refused(path) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            if listed is not None:
                assert isinstance(path, FolderFile)
                raise FolderChanged(path.folder, path.relative,
                                    f"was a file when listed and is now {_kind(st.st_mode)}")
            raise NotRegularFile(os.fspath(path), _kind(st.st_mode))
        if listed is not None and (st.st_dev, st.st_ino) != listed:
            assert isinstance(path, FolderFile)
            raise FolderChanged(path.folder, path.relative,
                                "is not the file that was listed (it, or a folder above it, "
                                "was replaced)")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def _gone(exc: OSError) -> str:
    if exc.errno in (errno.ELOOP, errno.EMLINK):
        return "was replaced by a symbolic link"
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return "is gone (it, or a folder above it, was removed or replaced)"
    return f"cannot be opened ({exc.strerror})"


def _link_refused(path: str | os.PathLike[str]) -> InvalidInput:
    return InvalidInput(f"{os.fspath(path)} is a symbolic link (to {_link_target(path)}); "
                        "links are not followed when storing files: store its target")


class StatCache:
    """A small SQLite table of (path, size, mtime_ns, ctime_ns, inode) -> digest.

    Kept in its own file so that hashing never waits on the metadata store's
    write lock. A stale or unreadable cache only costs a re-hash. As in git, the
    change time is compared too: a replacement that puts the old mtime back
    (`tar x`, `rsync -t`, `cp -p`) can't set ctime, so it is seen; and only
    digests of files older than the timestamp granularity are kept
    (`digest_file`), so a same-size edit within one tick is seen too.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            make_dirs(self.path.parent)
            create_file_with_mode(self.path)  # -wal and -shm take its mode
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("DROP TABLE IF EXISTS stat_cache")  # v1: no ctime, 50 ms rule
            conn.execute(
                "CREATE TABLE IF NOT EXISTS stat_cache_v2 (path TEXT PRIMARY KEY, size INTEGER,"
                " mtime_ns INTEGER, ctime_ns INTEGER, inode INTEGER, digest TEXT)"
            )
            self._conn = conn
        return self._conn

    def get(self, path: str, st: os.stat_result) -> str | None:
        row = self._connect().execute(
            "SELECT digest FROM stat_cache_v2 WHERE path = ? AND size = ? AND mtime_ns = ?"
            " AND ctime_ns = ? AND inode = ?",
            (path, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino),
        ).fetchone()
        return row[0] if row else None

    def put(self, path: str, st: os.stat_result, digest: str) -> None:
        self._connect().execute(
            "INSERT OR REPLACE INTO stat_cache_v2 VALUES (?, ?, ?, ?, ?, ?)",
            (path, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, digest),
        )

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def digest_file(path: str | os.PathLike[str], cache: StatCache | None = None) -> str:
    """BLAKE3 digest of a regular file's bytes, using `cache` to skip unchanged files.

    Opened with `open_regular`: raises `NotFound`, `NotRegularFile` (a FIFO, a
    device...) or, for a `FolderFile`, `FolderChanged`.
    """
    file_path = path if isinstance(path, Path) else Path(path)
    started_ns = time.time_ns()
    fd, st = open_regular(file_path)
    try:
        key = str(file_path.resolve())
        if cache is not None:
            cached = cache.get(key, st)
            if cached is not None:
                return cached
        digest = _hash_fd(fd, st.st_size)
        if cache is not None and st.st_mtime_ns < started_ns - timestamp_granularity_ns(st):
            after = os.fstat(fd)
            if (after.st_size, after.st_mtime_ns, after.st_ctime_ns) == \
                    (st.st_size, st.st_mtime_ns, st.st_ctime_ns):
                cache.put(key, st, digest)
    finally:
        os.close(fd)
    return digest


def timestamp_granularity_ns(st: os.stat_result) -> int:
    """How coarse the file's time stamp may be: 2 s when its mtime is a whole second (a
    coarse filesystem, or a tool that set it so: either way, trusting it costs at most a
    re-hash of files changed in the last 2 s), else the kernel tick."""
    coarse = st.st_mtime_ns % 1_000_000_000 == 0
    return _COARSE_GRANULARITY_NS if coarse else _FINE_GRANULARITY_NS


class SymlinkRefused(InvalidInput):
    """A logged folder holds a symbolic link, which jupyter-mlops does not follow."""

    def __init__(self, folder: Path, relative: str, target: str) -> None:
        self.folder = folder
        self.relative = relative
        self.target = target
        super().__init__(
            f"{folder} holds a symbolic link, {relative!r} -> {target!r}: links inside a "
            "logged folder are refused, so that no bytes from outside the folder are "
            "recorded or stored. Replace the link with a copy of the file, or log its "
            "target itself.")


def list_folder_files(folder: Path) -> list[tuple[str, FolderFile]]:
    """Files under `folder` as sorted (relative POSIX path, `FolderFile`) pairs.

    `.git` folders are skipped. A symbolic link anywhere inside (to a file or
    a folder) raises `SymlinkRefused`, a FIFO, socket or device
    `NotRegularFile`, and a file whose relative path fails the name check (a
    newline, a backslash, ...) `InvalidInput`, each naming the entry. `folder`
    itself may be a link: the user named it.

    The walk goes through file descriptors: each subfolder is opened relative
    to its parent's fd with `O_NOFOLLOW | O_DIRECTORY` and listed with
    `os.scandir(fd)`, so a subfolder swapped for a link during the walk is
    refused rather than walked into. Each file's (device, inode) is kept in its
    `FolderFile` for whoever opens it later. At most one fd per level is open.
    """
    files: list[tuple[str, FolderFile]] = []
    root = Path(folder)
    try:
        top = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFound(f"no folder {root}") from None
    # Each level: (its fd, its relative prefix, the names of its subfolders left to walk).
    stack = [(top, "", iter(_scan_or_close(top, "", root, files)))]
    try:
        while stack:
            fd, prefix, subfolders = stack[-1]
            name = next(subfolders, None)
            if name is None:
                stack.pop()
                os.close(fd)
                continue
            relative = prefix + name
            child = _open_subfolder(fd, name, root, relative)
            stack.append((child, relative + "/",
                          iter(_scan_or_close(child, relative + "/", root, files))))
    finally:
        for fd, _, _ in stack:
            os.close(fd)
    files.sort(key=lambda item: item[0])
    return files


def _scan_or_close(fd: int, prefix: str, root: Path, files: list[tuple[str, FolderFile]]
                   ) -> list[str]:
    """`_scan`, closing `fd` when it raises (the caller has not kept it yet)."""
    try:
        return _scan(fd, prefix, root, files)
    except BaseException:
        os.close(fd)
        raise


def _scan(fd: int, prefix: str, root: Path, files: list[tuple[str, FolderFile]]) -> list[str]:
    """List the folder open on `fd`: its files go to `files`; returns its subfolders' names."""
    subfolders: list[str] = []
    with os.scandir(fd) as entries:
        for entry in entries:
            relative = prefix + entry.name
            if entry.is_symlink():
                raise SymlinkRefused(root, relative, _link_target(entry.name, fd))
            if entry.is_dir(follow_symlinks=False):
                if entry.name != ".git":
                    check_relative_path(relative, root)
                    subfolders.append(entry.name)
                continue
            try:
                st = entry.stat(follow_symlinks=False)  # fstatat(fd, name): no link followed
            except FileNotFoundError:
                raise FolderChanged(root, relative, "was removed while the folder was "
                                    "listed") from None
            if not stat.S_ISREG(st.st_mode):
                raise NotRegularFile(relative, _kind(st.st_mode), root)
            files.append((check_relative_path(relative, root),
                          FolderFile.listed(root, relative, st)))
    return subfolders


def _open_subfolder(parent: int, name: str, root: Path, relative: str) -> int:
    """Open subfolder `name` of the folder open on `parent`, never through a link."""
    try:
        return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                       dir_fd=parent)
    except OSError as exc:
        try:
            now = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except OSError:
            now = None
        if now is not None and stat.S_ISLNK(now.st_mode):
            raise SymlinkRefused(root, relative, _link_target(name, parent)) from None
        raise FolderChanged(root, relative, _gone(exc)) from None


def _link_target(path: str | os.PathLike[str], dir_fd: int | None = None) -> str:
    try:
        return os.readlink(path, dir_fd=dir_fd)
    except OSError:
        return "?"


def digest_folder(path: str | os.PathLike[str], cache: StatCache | None = None) -> str:
    """Merkle digest of a folder: sorted relative paths, each with its file digest."""
    return digest_listed_files(list_folder_files(Path(path)), cache)


def digest_listed_files(files: list[tuple[str, FolderFile]],
                        cache: StatCache | None = None) -> str:
    """The folder digest of what `list_folder_files` found (each file re-checked as
    it is opened), for a caller that also needs the listing itself."""
    hasher = blake3.blake3()
    hasher.update(_FOLDER_HEADER)
    for relative, full in files:
        hasher.update(relative.encode("utf-8") + b"\0" + digest_file(full, cache).encode() + b"\n")
    return format_digest(hasher.hexdigest())


def digest_path(path: str | os.PathLike[str], cache: StatCache | None = None) -> str:
    p = Path(path)
    return digest_folder(p, cache) if p.is_dir() else digest_file(p, cache)
