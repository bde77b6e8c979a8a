"""Issue 9, point 11: a store on a network filesystem is refused, naming it.

No NFS, SMB or sshfs mount is available on the test machine, so these tests
point the check at a fake statfs result (the `read_type` / `read_fuse` seams,
or the module's `statfs_type` replaced). The real statfs call is exercised on
the local tmp folder, which must read as local.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import jupyter_mlops as mlops
from jupyter_mlops.cli.main import main
from jupyter_mlops.store import connection
from jupyter_mlops.store.connection import (
    NetworkFilesystem,
    check_local_filesystem,
    network_filesystem,
    statfs_type,
)
from jupyter_mlops.tracking import Tracker

EXT4, TMPFS, OVERLAY, FUSE = 0xEF53, 0x01021994, 0x794C7630, 0x65735546


@pytest.mark.parametrize("magic, name", [
    (0x6969, "NFS"), (0x517B, "SMB"), (0xFF534D42, "CIFS"), (0xFE534D42, "SMB2"),
    (0x01021997, "9P"), (0x00C36400, "CephFS"), (0x5346414F, "AFS"),
])
def test_network_filesystems_are_refused_by_name(tmp_path: Path, magic: int, name: str
                                                 ) -> None:
    with pytest.raises(NetworkFilesystem) as refused:
        check_local_filesystem(tmp_path, read_type=lambda folder: magic)
    message = str(refused.value)
    assert name in message and str(tmp_path) in message
    assert "local disk" in message and "team mode" in message
    assert "allow_network_fs = true" in message


@pytest.mark.parametrize("magic", [EXT4, TMPFS, OVERLAY, 0x58465342, 0x9123683E, None])
def test_local_filesystems_pass(tmp_path: Path, magic: int | None) -> None:
    check_local_filesystem(tmp_path, read_type=lambda folder: magic)


@pytest.mark.parametrize("subtype, refused", [("sshfs", True), ("s3fs", True),
                                              ("rclone", True), ("fuse-overlayfs", False),
                                              ("gocryptfs", False), (None, False)])
def test_fuse_is_refused_only_for_remote_programs(tmp_path: Path, subtype: str | None,
                                                  refused: bool) -> None:
    name = network_filesystem(tmp_path, lambda folder: FUSE, lambda folder: subtype)
    assert (name == f"FUSE ({subtype})") if refused else name is None


def test_allow_network_fs_accepts_it(tmp_path: Path) -> None:
    check_local_filesystem(tmp_path, allow=True, read_type=lambda folder: 0x6969)


def test_the_real_statfs_reads_this_machines_tmp_as_local(tmp_path: Path) -> None:
    magic = statfs_type(str(tmp_path))
    assert isinstance(magic, int) and magic > 0
    assert network_filesystem(tmp_path) is None
    assert statfs_type(str(tmp_path / "missing")) is None


def test_init_and_tracking_refuse_a_project_on_nfs(tmp_path: Path, monkeypatch,
                                                   capsys) -> None:
    monkeypatch.setattr(connection, "statfs_type", lambda folder: 0x6969)
    with pytest.raises(NetworkFilesystem, match="NFS"):
        mlops.init(tmp_path)
    assert not (tmp_path / ".mlops" / "mlops.db").exists()
    assert main(["init", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "network filesystem (NFS)" in err

    config = tmp_path / ".mlops" / "config.toml"
    config.write_text(config.read_text().replace("# allow_network_fs = false",
                                                 "allow_network_fs = true"))
    project = mlops.init(tmp_path)
    assert project.db_path.exists()
    tracker = Tracker(project)
    try:
        run = tracker.start_run("on nfs, allowed")
        run.log_metric("x", 1.0)
        run.end()
    finally:
        tracker.close()

    config.write_text(config.read_text().replace("allow_network_fs = true",
                                                 "allow_network_fs = false"))
    from jupyter_mlops.project import find_project

    tracker = Tracker(find_project(tmp_path))
    with pytest.raises(NetworkFilesystem):
        tracker.start_run("refused again")
    tracker.close()
