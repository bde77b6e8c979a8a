from __future__ import annotations

import os
import time
from pathlib import Path

import blake3

from jupyter_mlops.hashing import StatCache, digest_file, digest_folder


def test_file_digest_is_blake3_of_its_bytes(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    assert digest_file(path) == "blake3:" + blake3.blake3(data).hexdigest()


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b"")
    assert digest_file(path) == "blake3:" + blake3.blake3(b"").hexdigest()


def test_folder_digest_is_a_merkle_digest_over_sorted_paths(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "y.txt").write_bytes(b"yy")
    (tmp_path / "a.txt").write_bytes(b"aa")
    expected = blake3.blake3(b"jupyter-mlops folder v1\n")
    for rel, content in [("a.txt", b"aa"), ("b/y.txt", b"yy")]:
        file_digest = "blake3:" + blake3.blake3(content).hexdigest()
        expected.update(rel.encode() + b"\0" + file_digest.encode() + b"\n")
    assert digest_folder(tmp_path) == "blake3:" + expected.hexdigest()
    (tmp_path / "b" / "y.txt").write_bytes(b"yz")
    assert digest_folder(tmp_path) != "blake3:" + expected.hexdigest()


def test_stat_cache_skips_unchanged_files(tmp_path: Path, monkeypatch) -> None:
    from jupyter_mlops import hashing

    path = tmp_path / "f.bin"
    path.write_bytes(b"one")
    old = path.stat()
    os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns - 10**10))  # older than a tick
    cache = StatCache(tmp_path / "cache.db")
    first = digest_file(path, cache)
    reads: list[int] = []
    real = hashing._hash_fd
    monkeypatch.setattr(hashing, "_hash_fd", lambda fd, size: reads.append(fd) or real(fd, size))
    assert digest_file(path, cache) == first and reads == []  # a hit reads nothing
    cache.close()


def test_a_same_size_edit_within_one_timestamp_tick_is_seen(tmp_path: Path) -> None:
    """On a filesystem with whole-second stamps, an edit in the same second keeps size
    and mtime: a digest taken within the granularity is never cached (racy clean)."""
    path = tmp_path / "f.bin"
    path.write_bytes(b"one")
    second = (time.time_ns() // 10**9) * 10**9  # a coarse stamp: this very second
    os.utime(path, ns=(second, second))
    cache = StatCache(tmp_path / "cache.db")
    assert digest_file(path, cache) == "blake3:" + blake3.blake3(b"one").hexdigest()
    assert cache.get(str(path.resolve()), path.stat()) is None  # too recent to trust
    path.write_bytes(b"two")
    os.utime(path, ns=(second, second))
    assert digest_file(path, cache) == "blake3:" + blake3.blake3(b"two").hexdigest()
    cache.close()


def test_a_replacement_that_puts_the_old_mtime_back_is_seen(tmp_path: Path) -> None:
    """`tar x`, `rsync -t`, `cp -p` restore mtime; they can't restore ctime."""
    path = tmp_path / "f.bin"
    path.write_bytes(b"one")
    st = path.stat()
    old_ns = st.st_mtime_ns - 10**10
    os.utime(path, ns=(old_ns, old_ns))
    cache = StatCache(tmp_path / "cache.db")
    digest_file(path, cache)
    assert cache.get(str(path.resolve()), path.stat()) is not None  # cached: old enough
    time.sleep(1.0)  # a second later
    replacement = tmp_path / "new.bin"
    replacement.write_bytes(b"two")
    os.utime(replacement, ns=(old_ns, old_ns))
    os.replace(replacement, path)  # same size, same mtime; new inode and ctime
    assert digest_file(path, cache) == "blake3:" + blake3.blake3(b"two").hexdigest()
    path.write_bytes(b"six")  # in place: same inode, same size
    os.utime(path, ns=(old_ns, old_ns))
    assert digest_file(path, cache) == "blake3:" + blake3.blake3(b"six").hexdigest()
    cache.close()


def test_folder_digest_is_unchanged_by_the_link_refusing_walk(tmp_path: Path) -> None:
    """Pinned value computed by the os.walk-based walk this one replaced: the same
    tree (nested folders, a space in a name, a skipped .git) keeps its digest."""
    for relative, text in [("x.txt", "1\n"), ("a/y.txt", "2\n"), ("a/b/z.csv", "3\n"),
                           ("a/b c.txt", "4\n"), (".git/HEAD", "g\n")]:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(text)
    assert digest_folder(tmp_path) == \
        "blake3:3f6efb9b89236f5f4a75ca94f87a9ea79d85975ed245517b04d21cd5dc4d4a29"


def test_digests_are_unchanged_by_the_fd_walk_and_the_read_path(tmp_path: Path) -> None:
    """Pinned values from the path-based walk and `update_mmap` this code replaced:
    walking by file descriptors, and reading small files instead of mapping them,
    change no digest (a 2 MiB file is mapped, the others are read)."""
    (tmp_path / "b" / "c").mkdir(parents=True)
    (tmp_path / "a.txt").write_bytes(b"alpha\n")
    (tmp_path / "b" / "big.bin").write_bytes(bytes(range(256)) * 8192)
    (tmp_path / "b" / "c" / "empty").write_bytes(b"")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref")
    assert digest_file(tmp_path / "b" / "big.bin") == \
        "blake3:26aa5fa24030b1ca80acd6527922ffc6015e2e25a5024217fcd5e4c86d62ba6a"
    assert digest_folder(tmp_path) == \
        "blake3:2b15c3a40828aa66557a37a0f1d8bd318e4b5064466b183fda4d9004179f9c95"


def test_a_folder_walk_keeps_one_fd_per_level(tmp_path: Path) -> None:
    """Wide folders: the walk never holds an fd per pending subfolder, and closes all."""
    import resource

    from jupyter_mlops.hashing import list_folder_files

    for index in range(300):
        (tmp_path / f"d{index}").mkdir()
    (tmp_path / "d7" / "deep").mkdir()
    (tmp_path / "d7" / "deep" / "f.txt").write_text("x")
    open_before = len(os.listdir("/proc/self/fd"))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (open_before + 32, hard))  # < 300 folders
    try:
        listed = [rel for rel, _ in list_folder_files(tmp_path)]
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert listed == ["d7/deep/f.txt"]
    assert len(os.listdir("/proc/self/fd")) == open_before
