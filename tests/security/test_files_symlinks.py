"""Issue 9, point 7: symbolic links never carry bytes into (or out of) the store.

Policy: a link inside a logged folder is refused, naming the link; the blob
store opens blobs with O_NOFOLLOW and refuses a blob, a hash-prefix folder or
the tmp folder that is a link. Every test plants real links in tmp folders and
checks that nothing of the outside file comes back and nothing outside
`.mlops/` is written.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jupyter_mlops.artifacts import ArtifactStore, UnsafeStorePath
from jupyter_mlops.cli.main import main
from jupyter_mlops.errors import InvalidInput, MlopsError
from jupyter_mlops.hashing import SymlinkRefused, digest_bytes
from jupyter_mlops.project import Project

MARKER = b"TOP-SECRET-MARKER-7f3a9c"


@pytest.fixture
def secret(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A file outside the project whose bytes must never reach the store."""
    path = tmp_path_factory.mktemp("outside") / "secret.txt"
    path.write_bytes(MARKER + b"\n")
    return path


def stored_bytes(project: Project) -> bytes:
    """Every byte of every regular file under .mlops/ (links not followed)."""
    found = b""
    for folder, _dirs, files in os.walk(project.home):
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                with open(path, "rb") as f:
                    found += f.read()
    return found


def test_folder_with_link_to_a_file_outside_is_refused_by_name(project: Project, tracker,
                                                                 secret: Path) -> None:
    folder = project.root / "results"
    folder.mkdir()
    (folder / "ok.txt").write_text("fine")
    (folder / "sub").mkdir()
    (folder / "sub" / "passwd").symlink_to("/etc/passwd")
    (folder / "leak.txt").symlink_to(secret)
    run = tracker.start_run("links")
    with pytest.raises(SymlinkRefused) as refused:
        run.log_artifact(folder)
    assert refused.value.relative in ("leak.txt", "sub/passwd")
    assert refused.value.relative in str(refused.value) and "copy" in str(refused.value)
    run.end()
    assert tracker.store.artifacts.for_run(run.id) == [] or all(
        not a.name.startswith("results/") for a in tracker.store.artifacts.for_run(run.id))
    stored = stored_bytes(project)
    assert MARKER not in stored
    assert b"root:x:0:0" not in stored


def test_folder_with_link_to_a_folder_outside_is_refused(project: Project, tracker,
                                                        secret: Path) -> None:
    folder = project.root / "results"
    folder.mkdir()
    (folder / "elsewhere").symlink_to(secret.parent, target_is_directory=True)
    run = tracker.start_run("dir-link")
    with pytest.raises(SymlinkRefused, match="elsewhere"):
        run.log_artifact(folder)
    with pytest.raises(SymlinkRefused, match="elsewhere"):
        run.log_dataset(folder)
    run.end()
    assert MARKER not in stored_bytes(project)


def test_blob_replaced_by_a_link_is_refused_and_verify_reports_it(project: Project, tracker,
                                                                  secret: Path, capsys) -> None:
    (project.root / "a.txt").write_bytes(b"artifact bytes")
    run = tracker.start_run("blob")
    [link] = run.log_artifact(project.root / "a.txt")
    run.end()
    blob = tracker.artifacts.path_for(link.digest)
    blob.unlink()
    blob.symlink_to(secret)
    with pytest.raises(UnsafeStorePath, match="symbolic link"):
        tracker.artifacts.read_bytes(link.digest)
    with pytest.raises(UnsafeStorePath):
        tracker.artifacts.export(link.digest, project.root / "exported.txt")
    assert not (project.root / "exported.txt").exists()
    assert main(["verify", "-q"]) == 1
    out = capsys.readouterr().out
    assert "symbolic link" in out and MARKER.decode() not in out


def test_hash_prefix_folder_linked_elsewhere_is_never_written_through(
        project: Project, tmp_path_factory: pytest.TempPathFactory, capsys) -> None:
    outside = tmp_path_factory.mktemp("target")
    store = ArtifactStore(project.artifacts_dir)
    data = b"bytes that would land outside"
    digest = digest_bytes(data)
    prefix = store.path_for(digest).parent
    prefix.parent.mkdir(parents=True, exist_ok=True)
    prefix.symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafeStorePath, match="symbolic link"):
        store.put_bytes(data)
    assert list(outside.iterdir()) == []
    assert list((project.artifacts_dir / "tmp").iterdir()) == []  # temporary cleaned up
    assert main(["verify", "-q"]) == 1
    assert "symbolic link" in capsys.readouterr().out


def test_store_folders_linked_elsewhere_are_refused(
        project: Project, tmp_path_factory: pytest.TempPathFactory) -> None:
    for linked in ("tmp", "blake3"):
        outside = tmp_path_factory.mktemp(f"target-{linked}")
        store = ArtifactStore(project.artifacts_dir)
        folder = project.artifacts_dir / linked
        if folder.is_dir() and not folder.is_symlink():
            os.rmdir(folder)
        folder.symlink_to(outside, target_is_directory=True)
        with pytest.raises(UnsafeStorePath):
            store.put_bytes(b"payload " + linked.encode())
        assert list(outside.iterdir()) == []
        folder.unlink()


def test_a_planted_link_at_a_blob_path_is_replaced_not_written_through(
        project: Project, secret: Path) -> None:
    store = ArtifactStore(project.artifacts_dir)
    data = b"honest bytes"
    target = store.path_for(digest_bytes(data))
    target.parent.mkdir(parents=True)
    target.symlink_to(secret)
    digest, _ = store.put_bytes(data)
    assert secret.read_bytes() == MARKER + b"\n"
    assert not target.is_symlink() and store.read_bytes(digest) == data


def test_storing_a_link_directly_is_refused(project: Project, secret: Path) -> None:
    link = project.root / "link.txt"
    link.symlink_to(secret)
    with pytest.raises(InvalidInput, match="symbolic link"):
        ArtifactStore(project.artifacts_dir).put_file(link)
    assert MARKER not in stored_bytes(project)


def test_a_named_link_is_the_users_choice(project: Project, tracker) -> None:
    """The path a user names may itself be a link: its target is what they logged."""
    (project.root / "real.txt").write_text("chosen")
    (project.root / "alias.txt").symlink_to(project.root / "real.txt")
    run = tracker.start_run("named")
    [link] = run.log_artifact(project.root / "alias.txt")
    run.end()
    assert tracker.artifacts.read_bytes(link.digest) == b"chosen"


def test_store_root_outside_check_uses_the_resolved_path(project: Project,
                                                         tmp_path_factory) -> None:
    """An admin may move the whole artifact folder to another disk behind a link."""
    disk = tmp_path_factory.mktemp("bigdisk") / "artifacts"
    os.rename(project.artifacts_dir, disk)
    project.artifacts_dir.symlink_to(disk, target_is_directory=True)
    store = ArtifactStore(project.artifacts_dir)
    digest, _ = store.put_bytes(b"on the big disk")
    assert store.read_bytes(digest) == b"on the big disk"
    assert isinstance(UnsafeStorePath(Path("x"), "y"), MlopsError)
