"""A content-addressed blob store on any fsspec filesystem (an S3 bucket, GCS, a
`memory://` store in tests), for the team server's `--artifacts URL`.

Same layout and rules as the local `ArtifactStore`: a blob lives at
`ROOT/blake3/ab/cdef...`; an upload is written to `ROOT/tmp/incoming-RANDOM`
while it is hashed, piece by piece (never held whole), and moved under its
digest only when the bytes hash to it, so no reader ever finds a blob that is
not what its name says; a blob already stored is not stored again. Readers
verify what they read (`read_bytes`; clients verify downloads).

A plain path keeps the local `ArtifactStore` (links never followed, private
modes): `open_artifact_store` chooses. fsspec is imported only here, when a URL
is opened; a protocol whose backend is missing (`s3://` without s3fs) is an
`InvalidInput` naming the package to install.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import blake3

from .errors import IntegrityError, InvalidInput, NotFound
from .hashing import format_digest
from .validation import split_digest

if TYPE_CHECKING:
    from .artifacts import ArtifactStore

_CHUNK = 1 << 20


def is_url(location: str | os.PathLike[str]) -> bool:
    """Whether an artifact location names an fsspec filesystem (`PROTOCOL://...`)."""
    return isinstance(location, str) and "://" in location


def check_location(location: str) -> str:
    """A folder path (returned absolute) or an fsspec URL whose protocol is known and
    whose backend is installed. Raises `InvalidInput` saying what to give or install."""
    if not is_url(location):
        return str(Path(location).expanduser().absolute())
    protocol = location.split("://", 1)[0]
    try:
        import fsspec
    except ImportError:
        raise InvalidInput(f"--artifacts {location[:100]!r} needs fsspec: pip install "
                           "fsspec (or give a folder)") from None
    try:
        fsspec.get_filesystem_class(protocol)
    except ValueError:
        raise InvalidInput(f"--artifacts {location[:100]!r}: fsspec knows no protocol "
                           f"{protocol[:20]!r} (e.g. s3://BUCKET/PATH, gs://..., "
                           "file:///PATH, or a folder)") from None
    except ImportError as exc:
        raise InvalidInput(f"--artifacts {location[:100]!r}: the {protocol!r} filesystem "
                           f"needs a package that is not installed ({exc})") from None
    return location.rstrip("/")


def open_artifact_store(location: str | os.PathLike[str]) -> ArtifactStore | FsspecArtifactStore:
    """The blob store at `location`: a folder (`ArtifactStore`) or an fsspec URL."""
    if is_url(location):
        return FsspecArtifactStore(str(location))
    from .artifacts import ArtifactStore

    return ArtifactStore(location)


class FsspecArtifactStore:
    """Blobs by digest on an fsspec filesystem; the calls the team server makes of a
    local `ArtifactStore` (`stored_size`, `receive`, `open`, `read_bytes`)."""

    def __init__(self, url: str) -> None:
        import fsspec

        self.root = url.rstrip("/")  # what server.toml names, shown in messages
        self.fs, path = fsspec.core.url_to_fs(self.root)
        self._path = path.rstrip("/")

    def __repr__(self) -> str:
        return f"FsspecArtifactStore({self.root!r})"

    def _key(self, digest: str) -> str:
        algorithm, hexdigest = split_digest(digest)  # refuses anything but blake3:<hex>
        return f"{self._path}/{algorithm}/{hexdigest[:2]}/{hexdigest[2:]}"

    def path_for(self, digest: str) -> str:
        """Where `digest` lives, as a URL (for messages and logs)."""
        return f"{self.fs.unstrip_protocol(self._key(digest))}"

    def stored_size(self, digest: str) -> int | None:
        """The size of blob `digest`, or None when it is not stored."""
        try:
            info = self.fs.info(self._key(digest))
        except FileNotFoundError:
            return None
        if info.get("type") != "file":
            return None
        return int(info["size"])

    def open(self, digest: str) -> BinaryIO:
        """The stored blob, for reading (the reader verifies the digest). Raises `NotFound`."""
        try:
            return self.fs.open(self._key(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"artifact {digest} is missing from the artifact store") from None

    def read_bytes(self, digest: str) -> bytes:
        """The stored bytes, after checking they still hash to `digest`."""
        with self.open(digest) as blob:
            data = blob.read()
        actual = format_digest(blake3.blake3(data).hexdigest())
        if actual != digest:
            raise IntegrityError(f"artifact {digest}", digest, actual)
        return data

    def receive(self) -> IncomingFsspecBlob:
        """A blob arriving in pieces: `write()` each, then `finish(expected)` moves it
        under its digest only when the bytes hash to `expected`; `abort()` drops it."""
        self.fs.makedirs(f"{self._path}/tmp", exist_ok=True)
        temporary = f"{self._path}/tmp/incoming-{secrets.token_hex(16)}"
        return IncomingFsspecBlob(self, temporary, self.fs.open(temporary, "wb"))


class IncomingFsspecBlob:
    """An upload being written to the store's `tmp/` and hashed as it comes."""

    def __init__(self, store: FsspecArtifactStore, temporary: str, out: Any) -> None:
        self._store = store
        self._temporary = temporary
        self._out = out
        self._hasher = blake3.blake3()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self._hasher.update(chunk)
        self._out.write(chunk)
        self.size += len(chunk)

    def finish(self, expected: str) -> bool:
        """Keep the bytes as blob `expected`; return whether they were new. Raises
        `IntegrityError` (nothing kept) when they hash to another digest."""
        digest = format_digest(self._hasher.hexdigest())
        if digest != expected:
            self.abort()
            raise IntegrityError("the uploaded blob", expected, digest)
        fs, final = self._store.fs, self._store._key(digest)
        try:
            self._out.close()
            if fs.exists(final):
                fs.rm(self._temporary)
                return False
            fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
            fs.mv(self._temporary, final)
        except BaseException:
            self.abort()
            raise
        return True

    def abort(self) -> None:
        """Drop what was received."""
        try:
            self._out.close()
        finally:
            if self._store.fs.exists(self._temporary):
                self._store.fs.rm(self._temporary)
