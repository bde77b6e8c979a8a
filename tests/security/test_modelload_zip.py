"""A model file's zip can't expand past a bound, and its declared sizes can't lie (issue 9).

A skops file is a zip: a crafted one can declare compressed members that
expand to gigabytes (a zip bomb), or declare a small size for a member that
really expands far more (`ZipFile.read` decompresses up to 1 GiB at a time
before it notices). Each file here is a real skops file of a fitted model,
re-zipped or edited byte by byte as an attacker would; the refusal names the
member, and memory stays bounded.
"""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import textwrap
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from jupyter_mlops import model_archive
from jupyter_mlops.errors import InvalidInput
from jupyter_mlops.models import load_model_bytes

X, Y = load_breast_cancer(return_X_y=True)
MiB = 2**20


@pytest.fixture(scope="module")
def example_model():  # noqa: ANN201
    """The example project's model, as notebooks/train.ipynb builds it."""
    return make_pipeline(StandardScaler(),
                         LogisticRegression(C=1.0, max_iter=500, random_state=0)).fit(X, Y)


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _zip(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=method) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _with_member(data: bytes, name: str, size: int, chunk: int = MiB) -> bytes:
    """`data` re-zipped deflated with an extra member of `size` zero bytes, streamed in."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for member, content in _members(data).items():
            archive.writestr(member, content)
        with archive.open(name, "w", force_zip64=True) as out:
            zeros = bytes(chunk)
            for _ in range(size // chunk):
                out.write(zeros)
    return buffer.getvalue()


def _declare_size(data: bytes, name: str, size: int) -> bytes:
    """`data` with the uncompressed size of member `name` rewritten in both its headers."""
    edited = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = archive.getinfo(name)
    assert info.file_size < 2**32 and info.compress_size < 2**32
    struct.pack_into("<I", edited, info.header_offset + 22, size)  # local file header
    start = edited.find(b"PK\x01\x02")  # central directory entries
    while start != -1:
        length = struct.unpack_from("<H", edited, start + 28)[0]
        if edited[start + 46:start + 46 + length] == name.encode():
            struct.pack_into("<I", edited, start + 24, size)
        start = edited.find(b"PK\x01\x02", start + 4)
    with zipfile.ZipFile(io.BytesIO(bytes(edited))) as archive:
        assert archive.getinfo(name).file_size == size
    return bytes(edited)


def _refused(data: bytes, *expected: str) -> str:
    with pytest.raises(InvalidInput) as info:
        load_model_bytes(data)
    message = str(info.value)
    assert all(part in message for part in expected), message
    assert "\n" not in message
    return message


# -- legitimate files ------------------------------------------------------------------------

def test_the_example_model_loads_stored_and_deflated(example_model) -> None:
    for compression in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        data = sio.dumps(example_model, compression=compression)
        loaded = load_model_bytes(data)
        np.testing.assert_array_equal(loaded.predict(X), example_model.predict(X))


def test_a_large_deflated_model_within_the_bounds_loads() -> None:
    """A 24 MiB array of random values deflates a little: far inside both bounds."""
    model = LogisticRegression().fit(X[:, :3], Y)
    model.extra_ = np.random.default_rng(0).random(3 * MiB)
    data = sio.dumps(model, compression=zipfile.ZIP_DEFLATED)
    np.testing.assert_array_equal(load_model_bytes(data).extra_, model.extra_)


# -- bombs ---------------------------------------------------------------------------------

def test_a_member_that_expands_too_far_is_refused(example_model) -> None:
    bomb = _with_member(sio.dumps(example_model), "bomb.npy", 64 * MiB)
    message = _refused(bomb, "member 'bomb.npy'", "64.0 MiB", "at most 100x",
                       "MAX_MEMBER_RATIO")
    assert "zip bomb" in message


def test_many_small_members_past_the_total_bound_are_refused(example_model) -> None:
    """Each member stays under RATIO_FREE_BYTES, so only the total bound catches them."""
    members = _members(sio.dumps(example_model))
    members.update({f"pad{i}.npy": bytes(MiB - 1) for i in range(70)})
    _refused(_zip(members), "declare 70.", "at most", "MAX_EXPANSION", "the largest is 'pad")


def test_the_bounds_are_module_constants(example_model, monkeypatch) -> None:
    """A team that trusts an unusually compressible file raises the bound, and it loads."""
    bomb = _with_member(sio.dumps(example_model), "zeros.npy", 8 * MiB)
    _refused(bomb, "member 'zeros.npy'")
    monkeypatch.setattr(model_archive, "MAX_MEMBER_RATIO", 10_000)
    loaded = load_model_bytes(bomb)
    np.testing.assert_array_equal(loaded.predict(X), example_model.predict(X))


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_members_compressed_without_an_output_bound_are_refused(example_model,
                                                                method: int) -> None:
    data = _zip(_members(sio.dumps(example_model)), method)
    _refused(data, "member '", f"compression method {method}",
             "stored or deflated")


def test_a_member_named_twice_is_refused(example_model) -> None:
    members = _members(sio.dumps(example_model))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive, pytest.warns(UserWarning, match="Duplicate"):
        for name, content in members.items():
            archive.writestr(name, content)
        archive.writestr("schema.json", b"{}")
    _refused(buffer.getvalue(), "member 'schema.json' appears twice")


# -- sizes that lie ------------------------------------------------------------------------

@pytest.mark.parametrize("declared", [1_000, 3 * MiB])
def test_a_declared_size_that_lies_is_a_clean_refusal(example_model, declared: int) -> None:
    """Smaller than the content (it is cut there and the CRC fails) or larger (the stream
    ends first): either way one line naming the member, never a traceback."""
    members = _members(sio.dumps(example_model))
    members["lie.npy"] = np.random.default_rng(0).bytes(2 * MiB)
    data = _zip(members)
    message = _refused(_declare_size(data, "lie.npy", declared), "member 'lie.npy'",
                       "does not match its declared size and checksum")
    assert "BadZipFile" in message or "declares 3,145,728" in message


@pytest.mark.parametrize("declared", [10, 3 * MiB])
def test_a_stored_member_whose_declared_size_lies_is_refused(example_model,
                                                            declared: int) -> None:
    data = sio.dumps(example_model)  # stored, skops' default
    name = next(name for name in _members(data) if name.endswith(".npy"))
    _refused(_declare_size(data, name, declared), f"member {name!r} is stored, yet declares")


def test_a_flipped_checksum_is_refused(example_model) -> None:
    data = bytearray(sio.dumps(example_model, compression=zipfile.ZIP_DEFLATED))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        info = archive.getinfo("schema.json")
    crc = struct.pack("<I", info.CRC)
    flipped = struct.pack("<I", info.CRC ^ 1)
    data = bytes(data).replace(crc, flipped)
    _refused(data, "member 'schema.json'", "Bad CRC-32")


def test_a_small_declared_size_does_not_let_a_member_expand_in_memory(tmp_path: Path,
                                                                      example_model) -> None:
    """A member that declares 1,000 bytes but expands to 600 MiB: loading the file must
    not hold 600 MiB even for a moment (zipfile's own read would)."""
    data = _with_member(sio.dumps(example_model), "lie.npy", 600 * MiB, chunk=8 * MiB)
    path = tmp_path / "lie.skops"
    path.write_bytes(_declare_size(data, "lie.npy", 1_000))
    code = textwrap.dedent(f"""
        import resource
        from pathlib import Path
        from jupyter_mlops.errors import InvalidInput
        from jupyter_mlops.models import load_model_bytes, trusted_types
        trusted_types()
        data = Path({str(path)!r}).read_bytes()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            load_model_bytes(data)
        except InvalidInput as exc:
            print("refused:", exc)
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        print("grown MiB:", grown // 1024)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert "refused: refusing model file: member 'lie.npy'" in result.stdout, result.stdout
    grown = int(result.stdout.split("grown MiB:")[1])
    assert grown < 100, result.stdout


def test_not_a_zip_is_still_not_a_readable_model_file() -> None:
    _refused(b"\x80\x04K\x01.", "not a readable skops model file")
    _refused(b"PK\x05\x06" + bytes(18), "not a readable skops model file")
    _refused(zlib.compress(b"x" * 100), "not a readable skops model file")
