"""A skops model file's zip, read within bounds before anything is built from it.

A crafted file can declare compressed members that expand to gigabytes, or lie
about their sizes. Before a model is loaded its zip directory is checked: all
members together may expand to at most `MAX_EXPANSION` times the file's size
plus `EXPANSION_ALLOWANCE`, one member past `RATIO_FREE_BYTES` at most
`MAX_MEMBER_RATIO` times its compressed size; encrypted members, compression
without a size cap (bzip2, LZMA) and duplicate names are refused. Compressed
members are read in bounded chunks and handed on uncompressed, so a lying size
ends in a clear error, never in memory blown up.
"""

from __future__ import annotations

import io
from typing import Any

from .errors import InvalidInput, describe_exception

# What a model file's zip may expand to: a crafted file can declare compressed members
# that expand to gigabytes. Files written by mlops.log_model (skops' default) store their
# members uncompressed, so they are far inside these bounds; raise them for a file you
# trust that holds unusually compressible arrays.
MAX_EXPANSION = 20  # all members together: at most 20 x the file's size...
EXPANSION_ALLOWANCE = 64 * 2**20  # ...plus 64 MiB
MAX_MEMBER_RATIO = 100  # one member declaring over RATIO_FREE_BYTES: at most 100 x its bytes
RATIO_FREE_BYTES = 2**20
_READ_CHUNK = 2**20  # compressed members are read this much at a time, never whole


def bounded_archive(data: bytes) -> bytes:
    """The model file, with every member stored, once its zip is known not to be a bomb.

    The declared sizes are checked before anything is read: all members
    together at most `MAX_EXPANSION` x the file's size plus
    `EXPANSION_ALLOWANCE`, and no member over `RATIO_FREE_BYTES` expanding
    more than `MAX_MEMBER_RATIO` times. A declared size can lie, and
    `ZipFile.read` decompresses up to 1 GiB at a time before it notices, so
    compressed members are read here in bounded chunks (never past their
    declared size, CRC checked) and handed to skops in a stored copy. Raises
    `InvalidInput` naming the member.
    """
    import zipfile

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except Exception as exc:  # not a zip (a bare pickle), or a damaged directory
        raise InvalidInput(f"not a readable skops model file ({describe_exception(exc)}); "
                           "model files are saved with mlops.log_model, never with pickle or "
                           "joblib") from None
    with archive:
        members = archive.infolist()
        names = [info.filename for info in members]
        if len(set(names)) != len(names):
            twice = next(name for name in names if names.count(name) > 1)
            raise InvalidInput(f"refusing model file: member {twice!r} appears twice in its zip; "
                               "skops never writes that, so the file was edited")
        for info in members:
            _check_member(info)
        total = sum(info.file_size for info in members)
        limit = MAX_EXPANSION * len(data) + EXPANSION_ALLOWANCE
        if total > limit:
            largest = max(members, key=lambda info: info.file_size)
            raise InvalidInput(
                f"refusing model file: its members declare {_size(total)} uncompressed from a "
                f"file of {_size(len(data))} (at most {_size(limit)} is loaded; the largest is "
                f"{largest.filename!r}, {_size(largest.file_size)}): a zip bomb looks like this; "
                "if you trust the file, re-save it uncompressed (skops' default) or raise "
                "jupyter_mlops.model_archive.MAX_EXPANSION")
        if all(info.compress_type == zipfile.ZIP_STORED for info in members):
            return data
        stored = io.BytesIO()
        with zipfile.ZipFile(stored, "w") as copy:
            for info in members:
                copy.writestr(info.filename, _read_member(archive, info))
    return stored.getvalue()


def _check_member(info: Any) -> None:
    """Refuse one zip member that is encrypted, oddly compressed or expands too far."""
    import zipfile

    name = info.filename
    if info.flag_bits & 0x1:
        raise InvalidInput(f"refusing model file: member {name!r} is encrypted; skops never "
                           "writes that")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        # bzip2 and LZMA decompress without an output bound: one read could expand gigabytes.
        raise InvalidInput(f"refusing model file: member {name!r} uses zip compression method "
                           f"{info.compress_type}; only stored or deflated members are loaded: "
                           "re-save the model with skops' default (stored)")
    if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
        raise InvalidInput(f"refusing model file: member {name!r} is stored, yet declares "
                           f"{info.file_size:,} bytes in {info.compress_size:,}; the file is "
                           "damaged or was edited")
    if (info.file_size > RATIO_FREE_BYTES
            and info.file_size > MAX_MEMBER_RATIO * max(info.compress_size, 1)):
        raise InvalidInput(
            f"refusing model file: member {name!r} declares {_size(info.file_size)} "
            f"uncompressed from {_size(info.compress_size)} "
            f"({info.file_size // max(info.compress_size, 1):,}x; at most {MAX_MEMBER_RATIO}x "
            "is loaded): a zip bomb looks like this; if you trust the file, re-save it "
            "uncompressed (skops' default) or raise jupyter_mlops.model_archive.MAX_MEMBER_RATIO")


def _read_member(archive: Any, info: Any) -> bytes:
    """One member's bytes, read a chunk at a time: never more than its declared size."""
    chunks = []
    try:
        with archive.open(info) as member:
            while chunk := member.read(_READ_CHUNK):
                chunks.append(chunk)
        content = b"".join(chunks)
        if len(content) != info.file_size:  # the stream ended first and its CRC matched
            raise ValueError(f"it holds {len(content):,} bytes and declares {info.file_size:,}")
    except Exception as exc:  # BadZipFile (CRC), EOFError, zlib.error: content != header
        raise InvalidInput(f"refusing model file: member {info.filename!r} does not match its "
                           f"declared size and checksum ({describe_exception(exc)}); the file "
                           "is damaged or was edited") from None
    return content


def _size(count: float) -> str:
    if count < 1024:
        return f"{count:,} bytes"
    for unit in ("KiB", "MiB", "GiB"):
        count /= 1024
        if count < 1024 or unit == "GiB":
            return f"{count:,.1f} {unit}"
    raise AssertionError("unreachable")


# A fixed time stamp for every member: the zip format's earliest date.
_CANONICAL_TIME = (1980, 1, 1, 0, 0, 0)


def canonical_archive(data: bytes) -> bytes:
    """The same model file, written so that the same fitted model always gives the same
    bytes (and so the same digest): `mlops reproduce` compares model digests.

    skops names each array file (`N.npy`, a sparse matrix's `N.npz`) and each
    shared-object `__id__` after the Python object's `id()` (a memory address) and
    stamps every member with the current time. Here the ids and the array file names
    are renumbered in order of first appearance in `schema.json` (one mapping for
    both: skops may use an object's id in either place), members are sorted by name
    and every time stamp is fixed. The renumbering is a bijection, so skops loads the
    same objects, shared the same way.
    """
    import json
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = {info.filename: (info, archive.read(info)) for info in archive.infolist()}
    if "schema.json" not in members:
        raise InvalidInput("not a skops model file: no schema.json in its zip")
    numbers: dict[int, int] = {}

    def renumber(value: int) -> int:
        return numbers.setdefault(value, len(numbers))

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out = {}
            for key, item in node.items():
                if key == "__id__" and isinstance(item, int):
                    out[key] = renumber(item)
                elif key == "file" and isinstance(item, str) and _numbered(item):
                    stem, _, suffix = item.partition(".")
                    out[key] = f"{renumber(int(stem))}.{suffix}"
                else:
                    out[key] = walk(item)
            return out
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    schema = walk(json.loads(members["schema.json"][1]))
    renamed = {"schema.json": json.dumps(schema, indent=2).encode()}
    for name, (_, content) in members.items():
        if name == "schema.json":
            continue
        stem, _, suffix = name.partition(".")
        if not (_numbered(name) and int(stem) in numbers):
            raise InvalidInput(f"not a skops model file we can write canonically: member "
                               f"{name!r} is not named in its schema")
        renamed[f"{numbers[int(stem)]}.{suffix}"] = content
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in sorted(renamed):
            info = zipfile.ZipInfo(name, date_time=_CANONICAL_TIME)
            info.external_attr = 0o644 << 16
            archive.writestr(info, renamed[name])
    return out.getvalue()


def _numbered(name: str) -> bool:
    """A member name skops makes from an object's id: digits, a dot, a plain suffix."""
    stem, dot, suffix = name.partition(".")
    return bool(dot) and stem.isdigit() and suffix.isalnum()
