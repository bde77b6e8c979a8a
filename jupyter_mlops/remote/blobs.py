"""Blobs read from the team server: `RemoteBlobs` answers the two calls a client makes of
`ArtifactStore` when it only reads (`export`, `read_bytes`), each download verified
against its digest (`Client.get_blob`) before anything is kept or loaded."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

from .client import Client


class RemoteBlobs:
    def __init__(self, client: Client) -> None:
        self.client = client

    def read_bytes(self, digest: str) -> bytes:
        """The verified bytes of `digest`. Raises `NotFound`, `IntegrityError`,
        `ServerUnreachable`."""
        buffer = io.BytesIO()
        self.client.get_blob(digest, buffer)
        return buffer.getvalue()

    def export(self, digest: str, destination: str | os.PathLike[str],
               mode: int = 0o644) -> Path:
        """Download `digest` to `destination` atomically, with `mode`: a temporary beside
        it, renamed only once its bytes are verified (as `ArtifactStore.export`)."""
        dest = Path(destination)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
        try:
            with os.fdopen(fd, "wb") as out:
                self.client.get_blob(digest, out)
                os.fchmod(out.fileno(), mode)
            os.replace(tmp, dest)
        except BaseException:
            if os.path.lexists(tmp):
                os.unlink(tmp)
            raise
        return dest
