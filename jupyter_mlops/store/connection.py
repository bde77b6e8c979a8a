"""Opening the SQLite file, the one way to write to it, and where it may live."""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import InvalidInput, StoreUnavailable
from ..project import create_file_with_mode

BUSY_TIMEOUT_SECONDS = 60.0


class StoreConnection(sqlite3.Connection):
    """A connection several threads of one process may share: `write()` holds
    `write_lock` for the whole transaction, so one thread's `BEGIN` never lands
    inside another thread's transaction (SQLite itself queues the processes)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.write_lock = threading.RLock()
        self.write_depth = 0  # writes nested in the open transaction (savepoints)
        self.busy_seconds = BUSY_TIMEOUT_SECONDS  # how long a writer queues for the lock
        self.audit_key = None  # the audit chain's key (audit.attach_key)


def connect(path: str | Path, busy_seconds: float = BUSY_TIMEOUT_SECONDS) -> StoreConnection:
    """Open the store's database for this thread.

    Autocommit mode (`isolation_level=None`): reads take no lock, and every
    write goes through `write()`, which takes the write lock up front with
    `BEGIN IMMEDIATE` so that concurrent writers queue on the busy timeout
    instead of failing with "database is locked".

    `busy_seconds` is how long a write waits for another process's lock before
    failing (`StoreUnavailable`); a caller that keeps its work for a later try
    (the scoring service's log) waits less than the default.

    A new database file is created first with the mode of its folder
    (0600, or 0660 in a group-shared project); SQLite gives its -wal and -shm
    files the database's mode.
    """
    if str(path) != ":memory:":
        create_file_with_mode(path)
    conn = sqlite3.connect(path, timeout=busy_seconds, isolation_level=None,
                           check_same_thread=False, factory=StoreConnection)
    conn.busy_seconds = busy_seconds
    conn.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL mode
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


@contextmanager
def write(conn: StoreConnection) -> Iterator[StoreConnection]:
    """A write transaction: `BEGIN IMMEDIATE` ... `COMMIT`, rolled back on error.

    Threads sharing `conn` take turns (its `write_lock`); processes queue on
    SQLite's lock for up to the busy timeout. When the database itself refuses
    (disk full, read-only, lock held past the timeout, I/O error) nothing of the
    transaction is kept and the caller gets `StoreUnavailable` saying so.

    A `write()` inside another on the same thread joins it as a savepoint: an
    error undoes the inner block only (the outer one may catch it and go on),
    and nothing is committed before the outermost block ends. So several
    repository calls can be made one transaction (`Store.transaction()`).
    """
    with conn.write_lock:
        if conn.write_depth:
            yield from _savepoint(conn)
            return
        try:
            # Inside the try: a Ctrl-C that arrives as BEGIN returns (after waiting for
            # another process's lock) must roll back, or the connection stays in a
            # transaction that every later write refuses. The depth is set after BEGIN:
            # PostgreSQL's connection reconnects a lost link only outside a transaction.
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise store_fault(exc, conn.busy_seconds) or exc from exc
            conn.write_depth = 1
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:  # SQLite may have rolled back already (disk full)
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError) and (
                    fault := store_fault(exc, conn.busy_seconds)):
                raise fault from exc
            raise
        finally:
            conn.write_depth = 0


def _savepoint(conn: StoreConnection) -> Iterator[StoreConnection]:
    name = f"nested_{conn.write_depth}"
    conn.execute(f"SAVEPOINT {name}")
    conn.write_depth += 1
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute(f"ROLLBACK TO {name}")
            conn.execute(f"RELEASE {name}")
        raise
    else:
        conn.execute(f"RELEASE {name}")
    finally:
        conn.write_depth -= 1


_FAULTS = {
    "database or disk is full": "the disk holding the store is full; free some space",
    "readonly database": "the store's database is read-only for this user; check the "
                         "permissions of .mlops/ and its files",
    "database is locked": "another process held the store's write lock for more than "
                          "{waited:g} s; try again when it is done",
    "disk I/O error": "the disk holding the store failed a read or a write",
}


def store_fault(exc: sqlite3.Error,
                waited: float = BUSY_TIMEOUT_SECONDS) -> StoreUnavailable | None:
    """The user-facing error for a database fault, or None when `exc` is not one
    (`waited`: the busy timeout the lock was waited for)."""
    text = str(exc)
    for known, advice in _FAULTS.items():
        if known in text:
            return StoreUnavailable(f"nothing was written ({text}): "
                                    f"{advice.format(waited=waited)}")
    return None


def is_database_error(exc: BaseException) -> bool:
    """Whether `exc` is an error of either database: sqlite3's (PostgreSQL's errors come
    through `PgConnection` as sqlite3's too), or psycopg's, raised by code that used a
    psycopg connection directly. psycopg is looked up, never imported here."""
    if isinstance(exc, sqlite3.Error):
        return True
    psycopg = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(exc, psycopg.Error)


# -- network filesystems ---------------------------------------------------------------

# statfs(2) f_type magic numbers of filesystems where SQLite's WAL mode (which
# needs shared memory and working POSIX locks between hosts) is not safe.
NETWORK_FILESYSTEMS: dict[int, str] = {
    0x6969: "NFS",
    0x517B: "SMB",
    0xFF534D42: "CIFS",
    0xFE534D42: "SMB2",
    0x01021997: "9P (v9fs: WSL2 Windows drives, VM shared folders)",
    0x5346414F: "AFS",
    0x00C36400: "CephFS",
    0x0BD00BD0: "Lustre",
    0x47504653: "GPFS",
    0x01161970: "GFS2",
    0x7461636F: "OCFS2",
}
FUSE_MAGIC = 0x65735546
# FUSE is local or remote depending on the program behind it: these are remote.
NETWORK_FUSE = frozenset({
    "sshfs", "s3fs", "gcsfuse", "rclone", "goofys", "blobfuse", "blobfuse2", "davfs",
    "glusterfs", "ceph-fuse", "juicefs", "mountpoint-s3", "geesefs", "cvmfs", "sshfs-fuse",
})


_statfs: tuple[Callable[..., int], type] | None = None


def _libc_statfs() -> tuple[Callable[..., int], type] | None:
    """libc's statfs and a buffer type for it, loaded on first use (ctypes costs ~10 ms
    to import, which `%load_ext` should not pay)."""
    global _statfs
    if _statfs is None:
        import ctypes

        class StatFs(ctypes.Structure):
            # Only f_type matters; it is the first field on every Linux ABI. The rest
            # of `struct statfs` (at most 120 bytes) lands in the padding.
            _fields_ = [("f_type", ctypes.c_long), ("_rest", ctypes.c_byte * 248)]

        try:  # the running process's symbols include libc's (no ldconfig subprocess)
            libc = ctypes.CDLL(None, use_errno=True)
        except OSError:
            return None
        if not hasattr(libc, "statfs"):
            return None
        libc.statfs.argtypes = [ctypes.c_char_p, ctypes.POINTER(StatFs)]
        libc.statfs.restype = ctypes.c_int
        _statfs = (libc.statfs, StatFs)
    return _statfs


def statfs_type(folder: str) -> int | None:
    """The `f_type` magic number of the filesystem holding `folder` (Linux), else None."""
    loaded = _libc_statfs()
    if loaded is None:
        return None
    call, buffer_type = loaded
    buf = buffer_type()
    import ctypes

    if call(os.fsencode(folder), ctypes.byref(buf)) != 0:
        return None
    return buf.f_type & 0xFFFFFFFF


def fuse_subtype(folder: str) -> str | None:
    """The program behind the FUSE mount holding `folder` (`sshfs`, ...) from
    /proc/self/mountinfo, or None when unknown."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    real = os.path.realpath(folder)
    best, subtype = -1, None
    for line in lines:
        before, _, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if len(fields) < 5 or not tail:
            continue
        mount_point = fields[4].replace("\\040", " ")
        inside = real == mount_point or real.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) > best:
            best = len(mount_point)
            fstype = tail[0]
            subtype = fstype.split(".", 1)[1] if fstype.startswith("fuse.") else \
                (tail[1] if fstype == "fuse" and len(tail) > 1 else fstype)
    return subtype


def network_filesystem(folder: str | os.PathLike[str],
                       read_type: Callable[[str], int | None] = statfs_type,
                       read_fuse: Callable[[str], str | None] = fuse_subtype) -> str | None:
    """The name of the network filesystem holding `folder`, or None when it is local.

    `read_type` and `read_fuse` are seams for tests (no NFS mount is needed to
    check the decision). A local FUSE filesystem (fuse-overlayfs, encfs, ...)
    is accepted; a remote one (sshfs, s3fs, rclone, ...) is not.
    """
    fs_type = read_type(os.fspath(folder))
    if fs_type is None:
        return None
    if fs_type in NETWORK_FILESYSTEMS:
        return NETWORK_FILESYSTEMS[fs_type]
    if fs_type == FUSE_MAGIC:
        subtype = read_fuse(os.fspath(folder))
        if subtype in NETWORK_FUSE:
            return f"FUSE ({subtype})"
    return None


class NetworkFilesystem(InvalidInput):
    """The store's folder is on a network filesystem, where SQLite can lose data."""

    def __init__(self, folder: str, filesystem: str) -> None:
        self.folder = folder
        self.filesystem = filesystem
        super().__init__(
            f"the store in {folder} is on a network filesystem ({filesystem}); SQLite "
            "corrupts there when several processes write at once. Put the project (or its "
            ".mlops/ folder) on a local disk, or use team mode (a server owning the "
            "database; coming). If only one process ever writes, set "
            "`allow_network_fs = true` under [store] in .mlops/config.toml.")


def check_local_filesystem(folder: str | os.PathLike[str], *, allow: bool = False,
                           read_type: Callable[[str], int | None] | None = None,
                           read_fuse: Callable[[str], str | None] | None = None) -> None:
    """Raise `NetworkFilesystem` when `folder` is on a network filesystem and not `allow`.

    One statfs call (microseconds); /proc/self/mountinfo is read only for FUSE.
    The readers default to this module's `statfs_type` and `fuse_subtype`,
    looked up at call time so that a test can replace them.
    """
    if allow:
        return
    name = network_filesystem(folder, read_type or statfs_type, read_fuse or fuse_subtype)
    if name is not None:
        raise NetworkFilesystem(os.fspath(folder), name)
