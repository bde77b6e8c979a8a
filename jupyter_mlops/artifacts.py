"""Content-addressed blob store: bytes kept once by digest, verified on read.

Layout: `<root>/blake3/<first 2 hex>/<rest of hex>`. Writes go to a temporary
file in `<root>/tmp/` and are renamed into place, so no partial file ever sits
under its final name. A writer holds an exclusive `flock` on its temporary
until the rename, so `mlops gc` never removes a file a live writer holds.

The store never follows a symbolic link: blobs are opened with `O_NOFOLLOW`,
every folder between the root and a blob is checked with `lstat` (a link is
refused) and its resolved path must stay under the store's root. A planted
link is reported (`UnsafeStorePath`, `mlops verify`), never read through or
written through. Source files are opened with `O_NOFOLLOW` too: callers that
mean to follow a link the user named resolve it first; only regular files are
stored, and a file listed in a folder must still be the one listed.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import blake3

from .errors import IntegrityError, InvalidInput, MlopsError, NotFound
from .hashing import format_digest, open_regular
from .project import modes_for
from .validation import MAX_NAME_LENGTH, check_artifact_name, split_digest

__all__ = ["MAX_NAME_LENGTH", "ArtifactStore", "GcReport", "IncomingBlob", "UnsafeStorePath",
           "check_artifact_name"]

_CHUNK = 1 << 20
# A file this small is read whole and hashed before anything is written: when the blob is
# already stored (a notebook snapshotted by every run of a session) nothing is written.
_SMALL_FILE = 8 << 20
_HEX = frozenset("0123456789abcdef")


class UnsafeStorePath(IntegrityError):
    """A path inside the blob store is a symbolic link or leads outside the store."""

    def __init__(self, path: Path, problem: str, shown: str | None = None) -> None:
        self.path = path
        self.problem = problem
        # The message names the entry relative to the store, never an absolute path
        # (it may reach a web page).
        MlopsError.__init__(
            self, f"refusing {shown or path.name} in the artifact store: {problem}; the "
                  "store never follows links. Remove it and run `mlops verify` (someone or "
                  "something changed .mlops/)")
        self.what, self.expected, self.actual = str(path), "a file of the store", problem


@dataclass(frozen=True)
class GcReport:
    """What `mlops gc` found (and removed)."""

    temporaries_removed: int = 0
    temporary_bytes: int = 0
    temporaries_busy: int = 0  # held by a live writer, or younger than the threshold
    unreferenced: int = 0
    unreferenced_bytes: int = 0
    deleted: int = 0
    deleted_bytes: int = 0


class ArtifactStore:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._real_root: str | None = None
        self._modes: tuple[int, int] | None = None

    # -- paths ---------------------------------------------------------------------

    @property
    def real_root(self) -> str:
        if self._real_root is None:
            self._real_root = os.path.realpath(self.root)
        return self._real_root

    @property
    def modes(self) -> tuple[int, int]:
        """(folder mode, blob mode): private 0700 / 0400, group-shared 2770 / 0440."""
        if self._modes is None:
            dir_mode, file_mode = modes_for(self.root)
            self._modes = (dir_mode, file_mode & 0o444)
        return self._modes

    def path_for(self, digest: str) -> Path:
        """Where `digest` lives; raises `InvalidDigest` unless it is `blake3:<64 hex>`."""
        algorithm, hexdigest = split_digest(digest)
        return self.root / algorithm / hexdigest[:2] / hexdigest[2:]

    def _folder(self, folder: Path, create: bool) -> bool:
        """Check each folder from the root down to `folder`: a real folder, no link,
        resolving under the root. Creates missing ones when `create`; returns
        whether `folder` exists. Raises `UnsafeStorePath`."""
        current = self.root
        for part in folder.relative_to(self.root).parts:
            current = current / part
            try:
                st = os.lstat(current)
            except FileNotFoundError:
                if not create:
                    return False
                self._mkdir(current)
                st = os.lstat(current)
            if stat.S_ISLNK(st.st_mode):
                raise self._unsafe(current, "it is a symbolic link")
            if not stat.S_ISDIR(st.st_mode):
                raise self._unsafe(current, "it is not a folder")
        real = os.path.realpath(folder)
        if not real.startswith(self.real_root + os.sep):
            raise self._unsafe(folder, "it resolves to a folder outside the store")
        return True

    def _unsafe(self, path: Path, problem: str) -> UnsafeStorePath:
        try:
            shown = "artifacts/" + path.relative_to(self.root).as_posix()
        except ValueError:
            shown = path.name
        return UnsafeStorePath(path, problem, shown)

    def _mkdir(self, path: Path) -> None:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            return
        os.chmod(path, self.modes[0])

    def _open_blob(self, digest: str) -> tuple[int, Path]:
        """An fd on the blob, opened without following links. Raises `NotFound`,
        `UnsafeStorePath` or `InvalidDigest`."""
        path = self.path_for(digest)
        if not self._folder(path.parent, create=False):
            raise NotFound(f"artifact {digest} is missing from the artifact store")
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            raise NotFound(f"artifact {digest} is missing from the artifact store") from None
        except OSError as exc:
            if os.path.islink(path):
                raise self._unsafe(path, "the blob is a symbolic link") from None
            raise IntegrityError(f"artifact {digest}", "a readable file", str(exc)) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise self._unsafe(path, "the blob is not a regular file")
        return fd, path

    # -- writing ---------------------------------------------------------------------

    def _store(self, write_into: Callable[[BinaryIO, object], int]) -> tuple[str, int]:
        fd, tmp_name = self._locked_temporary()
        try:
            with os.fdopen(fd, "wb") as out:
                hasher = blake3.blake3()
                size = write_into(out, hasher)
                out.flush()
                os.fsync(out.fileno())
                digest = format_digest(hasher.hexdigest())
                self._place(out.fileno(), tmp_name, digest)
        except BaseException:
            if os.path.lexists(tmp_name):
                os.unlink(tmp_name)
            raise
        return digest, size

    def _locked_temporary(self) -> tuple[int, str]:
        """A new temporary in `tmp/`, locked until renamed (see `locked_temporary`)."""
        tmp_dir = self.root / "tmp"
        self._folder(tmp_dir, create=True)
        return locked_temporary(tmp_dir, "incoming-")

    def _place(self, fd: int, tmp_name: str, digest: str) -> None:
        """Rename the temporary into place, or drop it when the blob is already there."""
        final = self.path_for(digest)
        self._folder(final.parent, create=True)
        try:
            existing = os.lstat(final)
        except FileNotFoundError:
            existing = None
        if existing is not None and stat.S_ISREG(existing.st_mode):
            os.unlink(tmp_name)
            try:
                os.utime(final)  # recently used: gc's age threshold spares it
            except OSError:
                pass  # another member's blob in a group-shared store
            return
        os.fchmod(fd, self.modes[1])
        os.replace(tmp_name, final)  # also replaces a planted link, never writes through it

    def _already_stored(self, digest: str) -> bool:
        """Whether the blob is there (then marked recently used, as `_place` does)."""
        final = self.path_for(digest)
        if not self._folder(final.parent, create=False):
            return False
        try:
            if not stat.S_ISREG(os.lstat(final).st_mode):
                return False
            os.utime(final)  # recently used: gc's age threshold spares it
        except OSError:
            return False  # gone, or another member's blob: store it the usual way
        return True

    def put_file(self, source: str | os.PathLike[str]) -> tuple[str, int]:
        """Copy a file in (hashing while copying); return (digest, size).

        `source` is opened with `O_NOFOLLOW`: a symbolic link is refused
        (`InvalidInput`); resolve it first to store its target on purpose. Only
        a regular file is stored (`NotRegularFile`), and a file listed in a
        folder (`hashing.FolderFile`) must still be the file listed
        (`FolderChanged`): then nothing is stored.
        """
        path = source if isinstance(source, Path) else Path(source)
        with os.fdopen(_open_source(path), "rb") as src:
            if os.fstat(src.fileno()).st_size <= _SMALL_FILE:
                data = src.read(_SMALL_FILE + 1)
                if len(data) <= _SMALL_FILE:
                    return self.put_bytes(data)
                src.seek(0)  # it grew past the limit since: copy it in pieces

            def copy(out: BinaryIO, hasher: object) -> int:
                size = 0
                while chunk := src.read(_CHUNK):
                    hasher.update(chunk)  # type: ignore[attr-defined]
                    out.write(chunk)
                    size += len(chunk)
                return size

            return self._store(copy)

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        digest = format_digest(blake3.blake3(data).hexdigest())
        if self._already_stored(digest):
            return digest, len(data)

        def write(out: BinaryIO, hasher: object) -> int:
            hasher.update(data)  # type: ignore[attr-defined]
            out.write(data)
            return len(data)

        return self._store(write)

    def receive(self) -> IncomingBlob:
        """A blob arriving in pieces (an upload to the team server), never held whole:
        `write()` each piece, then `finish(expected)` keeps it only when the bytes hash
        to `expected`; `abort()` drops it."""
        fd, tmp_name = self._locked_temporary()
        return IncomingBlob(self, fd, tmp_name)

    def stored_size(self, digest: str) -> int | None:
        """The size of the stored blob `digest`, or None when it is not here (not
        re-hashed: `check` does that). Raises `UnsafeStorePath` or `InvalidDigest`."""
        try:
            fd, _ = self._open_blob(digest)
        except NotFound:
            return None
        try:
            return os.fstat(fd).st_size
        finally:
            os.close(fd)

    def open(self, digest: str) -> BinaryIO:
        """The stored blob, opened for reading without following links (the reader
        verifies the digest). Raises `NotFound`, `UnsafeStorePath` or `InvalidDigest`."""
        fd, _ = self._open_blob(digest)
        return os.fdopen(fd, "rb")

    def ensure_present(self, digest: str, store_again: Callable[[], tuple[str, int]]) -> None:
        """After a writer recorded `digest` in the database, make sure its blob exists.

        `mlops gc --delete` removes only blobs with no row, deciding under the
        database's write lock; a blob it removed between this writer's put and
        its commit is stored again here. Once the row is committed no later gc
        can remove it, so this one check closes the race.
        """
        if os.path.lexists(self.path_for(digest)):
            return
        again, _ = store_again()
        if again != digest:
            raise IntegrityError(f"artifact {digest}", digest,
                                 f"{again} (the source changed while it was being stored)")

    # -- reading ---------------------------------------------------------------------

    def check(self, digest: str) -> str | None:
        """Re-hash stored bytes; None when intact, else what is wrong."""
        try:
            fd, _ = self._open_blob(digest)
        except NotFound:
            return "missing"
        except UnsafeStorePath as exc:
            return exc.problem + " (refused: never followed)"
        except InvalidInput as exc:
            return str(exc)
        try:
            hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
            if os.fstat(fd).st_size:
                with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as mapped:
                    hasher.update(mapped)
        finally:
            os.close(fd)
        actual = format_digest(hasher.hexdigest())
        return None if actual == digest else f"content hashes to {actual}"

    def read_bytes(self, digest: str) -> bytes:
        """The stored bytes, after checking they still hash to `digest`."""
        fd, path = self._open_blob(digest)
        with os.fdopen(fd, "rb") as blob:
            data = blob.read()
        actual = format_digest(blake3.blake3(data).hexdigest())
        if actual != digest:
            raise IntegrityError(f"artifact {digest}", digest, actual)
        return data

    def export(self, digest: str, destination: str | os.PathLike[str],
               mode: int = 0o644) -> Path:
        """Copy verified bytes to `destination` atomically, with `mode`.

        Exports into `.mlops/` pass the project's file mode (0600 or 0660).
        """
        fd, _ = self._open_blob(digest)
        dest = Path(destination)
        dest.parent.mkdir(parents=True, exist_ok=True)
        out_fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
        try:
            hasher = blake3.blake3()
            with os.fdopen(fd, "rb") as blob, os.fdopen(out_fd, "wb") as out:
                while chunk := blob.read(_CHUNK):
                    hasher.update(chunk)
                    out.write(chunk)
                os.fchmod(out.fileno(), mode)
            actual = format_digest(hasher.hexdigest())
            if actual != digest:
                raise IntegrityError(f"artifact {digest}", digest, actual)
            os.replace(tmp, dest)
        except BaseException:
            if os.path.lexists(tmp):
                os.unlink(tmp)
            raise
        return dest

    # -- inventory and garbage collection ------------------------------------------

    def unsafe_entries(self) -> list[tuple[Path, str]]:
        """Links and stray entries anywhere in the store (what `mlops verify` reports)."""
        found: list[tuple[Path, str]] = []
        if not self.root.is_dir():
            return found
        pending = [self.root]
        while pending:
            folder = pending.pop()
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.is_symlink():
                        found.append((Path(entry.path),
                                      f"symbolic link to {_readlink(entry.path)}"))
                    elif entry.is_dir(follow_symlinks=False):
                        pending.append(Path(entry.path))
        return sorted(found)

    def blobs(self) -> Iterator[tuple[str, Path, os.stat_result]]:
        """(digest, path, lstat) of every regular blob file; links are skipped."""
        top = self.root / "blake3"
        if not self._folder(top, create=False):
            return
        with os.scandir(top) as prefixes:
            for prefix in prefixes:
                if prefix.is_symlink() or not prefix.is_dir(follow_symlinks=False) \
                        or len(prefix.name) != 2 or not set(prefix.name) <= _HEX:
                    continue
                with os.scandir(prefix.path) as entries:
                    for entry in entries:
                        if len(entry.name) != 62 or not set(entry.name) <= _HEX \
                                or not entry.is_file(follow_symlinks=False):
                            continue
                        try:
                            st = entry.stat(follow_symlinks=False)
                        except FileNotFoundError:
                            continue  # removed by another gc since the listing
                        yield f"blake3:{prefix.name}{entry.name}", Path(entry.path), st

    def remove_stale_temporaries(self, older_than: float, now: float | None = None
                                 ) -> tuple[int, int, int]:
        """Remove temporaries older than `older_than` seconds that no writer holds.

        A writer holds an exclusive flock on its temporary until it renames it
        into place, so a lock we can take means its writer is gone (killed).
        Returns (removed, bytes, kept).
        """
        tmp_dir = self.root / "tmp"
        if not self._folder(tmp_dir, create=False):
            return 0, 0, 0
        now = time.time() if now is None else now
        return remove_stale_files(tmp_dir, older_than, now)

    def collect_garbage(self, locked_references: Callable[[], ContextManager[set[str]]], *,
                        older_than: float = 3600.0, delete: bool = False,
                        now: float | None = None) -> GcReport:
        """Remove stale temporaries; count (and with `delete`, remove) unreferenced blobs.

        `locked_references()` (the store's `artifacts.locked_references`) yields
        the referenced digests while holding the database's write lock; the
        decision and the deletions happen inside it. Blobs younger than
        `older_than` seconds are never deleted, and a writer re-checks its blob
        after committing its row (`ensure_present`), so a concurrent writer
        never ends up referring to a deleted blob.
        """
        now = time.time() if now is None else now
        removed, removed_bytes, busy = self.remove_stale_temporaries(older_than, now)
        unreferenced = unreferenced_bytes = deleted = deleted_bytes = 0
        with locked_references() as referenced:
            for digest, path, st in self.blobs():
                if digest in referenced:
                    continue
                unreferenced += 1
                unreferenced_bytes += st.st_size
                if delete and now - st.st_mtime >= older_than:
                    try:
                        os.unlink(path)
                    except FileNotFoundError:
                        continue  # another gc was first
                    deleted += 1
                    deleted_bytes += st.st_size
        return GcReport(temporaries_removed=removed, temporary_bytes=removed_bytes,
                        temporaries_busy=busy, unreferenced=unreferenced,
                        unreferenced_bytes=unreferenced_bytes, deleted=deleted,
                        deleted_bytes=deleted_bytes)


class IncomingBlob:
    """A blob being received (`ArtifactStore.receive`): hashed while it is written to a
    locked temporary in the store's `tmp/`, placed under its digest only if it matches."""

    def __init__(self, store: ArtifactStore, fd: int, tmp_name: str) -> None:
        self._store = store
        self._out = os.fdopen(fd, "wb")
        self._tmp = tmp_name
        self._hasher = blake3.blake3()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self._hasher.update(chunk)
        self._out.write(chunk)
        self.size += len(chunk)

    def finish(self, expected: str) -> bool:
        """Keep the bytes as blob `expected`; return whether they were new (False: the
        store had them, and keeps one copy). Raises `IntegrityError` (nothing kept)
        when the bytes hash to another digest."""
        digest = format_digest(self._hasher.hexdigest())
        if digest != expected:
            self.abort()
            raise IntegrityError("the uploaded blob", expected, digest)
        try:
            self._out.flush()
            os.fsync(self._out.fileno())
            new = not os.path.lexists(self._store.path_for(digest))
            self._store._place(self._out.fileno(), self._tmp, digest)
            self._out.close()
        except BaseException:
            self.abort()
            raise
        return new

    def abort(self) -> None:
        """Drop what was received."""
        self._out.close()
        if os.path.lexists(self._tmp):
            os.unlink(self._tmp)


def locked_temporary(folder: Path, prefix: str, suffix: str = "") -> tuple[int, str]:
    """Create a temporary file in `folder` (mode 0600) holding an exclusive flock on it;
    return (fd, path). The writer keeps the fd open until it renames the file.

    `remove_stale_temporaries` removes a file only after taking its lock and
    checking that the path still names the locked file; so once we hold the
    lock and see our file still under its name, no gc can remove it. If a gc
    got in between our create and our lock, we start again.
    """
    while True:
        fd, name = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=suffix)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            named = os.lstat(name)
        except FileNotFoundError:
            named = None
        held = os.fstat(fd)
        if named is not None and (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino):
            return fd, name
        os.close(fd)


def remove_stale_files(folder: Path, older_than: float, now: float,
                       pattern: str | None = None) -> tuple[int, int, int]:
    """Remove files in `folder` (whose names end with `pattern`, if given) older than
    `older_than` seconds that no writer holds a lock on. Returns (removed, bytes, kept)."""
    removed = size = kept = 0
    with os.scandir(folder) as entries:
        for entry in entries:
            if pattern is not None and not entry.name.endswith(pattern):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # renamed into place (or removed) since the listing
            if now - st.st_mtime < older_than:
                kept += 1
            elif _remove_if_unlocked(entry.path, st):
                removed += 1
                size += st.st_size
            else:
                kept += 1
    return removed, size, kept


def _remove_if_unlocked(path: str, st: os.stat_result) -> bool:
    """Unlink `path` if no process holds a lock on it (links are unlinked, not followed)."""
    if not stat.S_ISREG(st.st_mode):
        try:
            os.unlink(path)  # a link or a stray entry: removed, never followed
        except FileNotFoundError:
            return False
        return True
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return False  # renamed into place meanwhile
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a live writer
        try:
            now = os.lstat(path)
        except FileNotFoundError:
            return False
        held = os.fstat(fd)
        if (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino):
            return False
        try:
            os.unlink(path)
        except FileNotFoundError:
            return False
        return True
    finally:
        os.close(fd)


def _open_source(path: Path) -> int:
    """Open a file to store without following a link (`hashing.open_regular`).

    Raises `NotFound`, `InvalidInput` (a link), `NotRegularFile` (a FIFO, a
    device...) or, for a file listed in a folder, `FolderChanged`.
    """
    fd, _ = open_regular(path, follow=False)
    return fd


def _readlink(path: str | os.PathLike[str]) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"
