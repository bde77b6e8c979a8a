"""Issue 9, files: only regular files are recorded as datasets or artifacts.

A FIFO has no end (reading one blocked the step's copy forever) and a device
has no fixed content (/dev/null digested as an empty file). Each is refused
with its kind named, at every door: a dataset, an artifact, a file inside a
logged folder, a file staged by a pipeline step. Opening is non-blocking, so a
FIFO swapped in after the type check still cannot hang us.

Each FIFO test arms a rescuer that opens the FIFO for writing after a while:
without the fix the blocked read then ends and the test fails on its
assertions instead of hanging the suite.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import jupyter_mlops.hashing as hashing
from jupyter_mlops.artifacts import ArtifactStore
from jupyter_mlops.errors import InvalidInput
from jupyter_mlops.hashing import NotRegularFile, digest_file, open_regular
from jupyter_mlops.project import Project
from jupyter_mlops.recorders import GlueRecorder

RESCUE_AFTER_SECONDS = 20.0  # only ever reached without the fix


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "pipe.csv"
    os.mkfifo(path)
    done = threading.Event()

    def rescue() -> None:  # unblock a reader stuck in open() or read()
        if done.wait(RESCUE_AFTER_SECONDS):
            return
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            return  # nobody is reading
        os.close(fd)

    rescuer = threading.Thread(target=rescue, daemon=True)
    rescuer.start()
    yield path
    done.set()
    rescuer.join()


@pytest.fixture
def unix_socket(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "s.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    yield path
    server.close()


def test_a_fifo_is_refused_as_a_dataset_and_an_artifact(project: Project, tracker,
                                                       fifo: Path) -> None:
    run = tracker.start_run("fifo")
    with pytest.raises(NotRegularFile, match="FIFO") as refused:
        run.log_dataset(fifo)
    assert str(fifo) in str(refused.value) and "regular file" in str(refused.value)
    with pytest.raises(NotRegularFile, match="FIFO"):
        run.log_artifact(fifo)
    run.end()
    assert tracker.store.datasets.for_run(run.id) == []
    assert [a.name for a in tracker.store.artifacts.for_run(run.id)
            if "pipe" in a.name] == []


def test_a_pipeline_step_does_not_hang_on_a_fifo(fifo: Path, tmp_path: Path) -> None:
    """`GlueRecorder` copies files into the step's outbox: it opened without O_NONBLOCK."""
    with pytest.raises(NotRegularFile, match="FIFO"):
        GlueRecorder(tmp_path / "outbox").put_file(None, "pipe.csv", fifo, "artifact")
    assert not any(p.name.startswith("blake3-") for p in (tmp_path / "outbox").iterdir())


@pytest.mark.parametrize("device, kind", [("/dev/null", "character device"),
                                          ("/dev/zero", "character device")])
def test_a_device_is_refused(project: Project, tracker, device: str, kind: str) -> None:
    if not os.path.exists(device):
        pytest.skip(f"{device} is missing here")
    run = tracker.start_run("device")
    with pytest.raises(NotRegularFile, match=kind):
        run.log_dataset(device)
    with pytest.raises(NotRegularFile, match=kind):
        run.log_artifact(device)
    with pytest.raises(NotRegularFile, match=kind):
        ArtifactStore(project.artifacts_dir).put_file(device)
    run.end()
    assert tracker.store.datasets.for_run(run.id) == []


def test_a_socket_is_refused(unix_socket: Path) -> None:
    with pytest.raises(NotRegularFile, match="socket"):
        digest_file(unix_socket)


def test_special_files_inside_a_logged_folder_are_refused_by_name(project: Project, tracker,
                                                                   fifo: Path) -> None:
    folder = project.root / "data"
    folder.mkdir()
    (folder / "rows.csv").write_text("a\n1\n")
    os.mkfifo(folder / "live.csv")
    run = tracker.start_run("folder")
    with pytest.raises(NotRegularFile) as refused:
        run.log_dataset(folder)
    assert "'live.csv'" in str(refused.value) and "FIFO" in str(refused.value)
    assert "Move it out of the folder" in str(refused.value)
    with pytest.raises(NotRegularFile, match="live.csv"):
        run.log_artifact(folder)
    run.end()
    assert [a.name for a in tracker.store.artifacts.for_run(run.id)
            if a.name.startswith("data/")] == []


def test_a_fifo_swapped_in_after_the_type_check_is_caught_on_the_fd(fifo: Path, tmp_path: Path,
                                                                    monkeypatch) -> None:
    """The check before opening says "a regular file"; the fd says otherwise."""
    regular = tmp_path / "regular.csv"
    regular.write_text("a\n")
    real_stat = os.stat

    def stat_lies(path, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        return real_stat(regular if os.fspath(path) == os.fspath(fifo) else path,
                         *args, **kwargs)

    monkeypatch.setattr(hashing.os, "stat", stat_lies)
    with pytest.raises(NotRegularFile, match="FIFO"):
        open_regular(fifo)
    with pytest.raises(NotRegularFile, match="FIFO"):
        digest_file(fifo)


def test_regular_files_still_pass(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(3 << 20))  # read through mmap
    small = tmp_path / "small.bin"
    small.write_bytes(path.read_bytes()[:1000])  # read with read()
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    for file in (path, small, empty):
        fd, st = open_regular(file)
        os.close(fd)
        assert st.st_size == file.stat().st_size
        assert digest_file(file) == hashing.digest_bytes(file.read_bytes())
    assert isinstance(NotRegularFile("x", "a FIFO"), InvalidInput)
