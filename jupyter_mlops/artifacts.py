"""Content-addressed blob store: bytes kept once by digest, verified on read.

Layout: `<root>/blake3/<first 2 hex>/<rest of hex>`. Writes go to a temporary
file in `<root>/tmp/` and are renamed into place, so no partial file ever sits
under its final name.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import blake3

from .errors import IntegrityError, InvalidInput, NotFound
from .hashing import ALGORITHM, format_digest, split_digest

_CHUNK = 1 << 20
MAX_NAME_LENGTH = 255


def check_artifact_name(name: object) -> str:
    """Return `name` if it is a safe relative POSIX name, else raise `InvalidInput`."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("artifact name must be a non-empty string")
    problem = None
    if len(name) > MAX_NAME_LENGTH:
        problem = f"longer than {MAX_NAME_LENGTH} characters"
    elif any(ord(c) < 32 or ord(c) == 127 for c in name):
        problem = "it holds control characters"
    elif "\\" in name:
        problem = "it holds a backslash (use / between folders)"
    elif name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        problem = "it is an absolute path"
    elif any(part in ("..", ".", "") for part in name.split("/")):
        problem = "it has an empty, . or .. path segment"
    if problem:
        raise InvalidInput(f"artifact name {name[:80]!r} refused: {problem}")
    return name


class ArtifactStore:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path_for(self, digest: str) -> Path:
        algorithm, hexdigest = split_digest(digest)
        return self.root / algorithm / hexdigest[:2] / hexdigest[2:]

    def _store(self, write_into: Callable[[object, object], int]) -> tuple[str, int]:
        tmp_dir = self.root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        hasher = blake3.blake3()
        fd, tmp_name = tempfile.mkstemp(dir=tmp_dir, prefix="incoming-")
        try:
            with os.fdopen(fd, "wb") as out:
                size = write_into(out, hasher)
                out.flush()
                os.fsync(out.fileno())
            digest = format_digest(hasher.hexdigest())
            final = self.path_for(digest)
            if final.exists():
                os.unlink(tmp_name)
            else:
                final.parent.mkdir(parents=True, exist_ok=True)
                os.chmod(tmp_name, 0o444)
                os.replace(tmp_name, final)
        except BaseException:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
            raise
        return digest, size

    def put_file(self, source: str | os.PathLike[str]) -> tuple[str, int]:
        """Copy a file in (hashing while copying); return (digest, size)."""
        path = Path(source)
        if not path.is_file():
            raise NotFound(f"no file {path}")

        def copy(out, hasher) -> int:
            size = 0
            with open(path, "rb") as src:
                while chunk := src.read(_CHUNK):
                    hasher.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
            return size

        return self._store(copy)

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        def write(out, hasher) -> int:
            hasher.update(data)
            out.write(data)
            return len(data)

        return self._store(write)

    def check(self, digest: str) -> str | None:
        """Re-hash stored bytes; None when intact, else what is wrong."""
        path = self.path_for(digest)
        if not path.is_file():
            return "missing"
        hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
        if path.stat().st_size:
            hasher.update_mmap(path)
        actual = format_digest(hasher.hexdigest())
        return None if actual == digest else f"content hashes to {actual}"

    def read_bytes(self, digest: str) -> bytes:
        """The stored bytes, after checking they still hash to `digest`."""
        path = self.path_for(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise NotFound(f"artifact {digest} is missing from {self.root}") from None
        algorithm, _ = split_digest(digest)
        if algorithm != ALGORITHM:
            raise InvalidInput(f"unsupported digest algorithm {algorithm!r}")
        actual = format_digest(blake3.blake3(data).hexdigest())
        if actual != digest:
            raise IntegrityError(f"artifact {path}", digest, actual)
        return data

    def export(self, digest: str, destination: str | os.PathLike[str]) -> Path:
        """Copy verified bytes to `destination` atomically."""
        problem = self.check(digest)
        if problem == "missing":
            raise NotFound(f"artifact {digest} is missing from {self.root}")
        if problem:
            raise IntegrityError(f"artifact {self.path_for(digest)}", digest, problem)
        dest = Path(destination)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
        os.close(fd)
        shutil.copyfile(self.path_for(digest), tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
        return dest
