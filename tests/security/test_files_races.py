"""Issue 9, files: a logged folder swapped for a link while it is being logged.

The walk refuses links it sees, but someone who can write the folder can swap
a folder (the one logged, or one inside it) for a link to somewhere else
between the walk and the moment a file is opened, or between listing a folder
and walking into its subfolder. Each test makes that swap at exactly that
moment (through a hook around the real listing, no timing) on real files, and
checks that the outside file's bytes never reach the store or a digest, and
that nothing of the folder is recorded.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import jupyter_mlops.hashing as hashing
import jupyter_mlops.tracking as tracking
from jupyter_mlops.errors import InvalidInput
from jupyter_mlops.hashing import (
    FolderChanged,
    FolderFile,
    SymlinkRefused,
    digest_file,
    digest_folder,
    list_folder_files,
)
from jupyter_mlops.project import Project
from jupyter_mlops.recorders import GlueRecorder

MARKER = b"-----BEGIN OPENSSH PRIVATE KEY----- stolen-7f3a9c"


@pytest.fixture
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder outside the project shaped like the logged one, every file a secret."""
    home = tmp_path_factory.mktemp("home")
    (home / "sub").mkdir()
    (home / "sub" / "id_rsa").write_bytes(MARKER)
    (home / "metrics.json").write_bytes(MARKER)
    return home


@pytest.fixture
def results(project: Project) -> Path:
    folder = project.root / "results"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "id_rsa").write_bytes(b"an honest file that happens to share the name")
    (folder / "metrics.json").write_text('{"acc": 0.9}')
    return folder


def swap_for_link(path: Path, target: Path) -> None:
    """Move `path` aside and put a link to `target` in its place."""
    os.rename(path, path.with_name(path.name + ".moved"))
    path.symlink_to(target, target_is_directory=True)


def everything_under(folder: Path) -> bytes:
    found = b""
    for parent, _dirs, files in os.walk(folder):
        for name in files:
            path = os.path.join(parent, name)
            if not os.path.islink(path):
                with open(path, "rb") as f:
                    found += f.read()
    return found


def swapping_after(real, swap):  # noqa: ANN001, ANN202
    """`real` (a listing function) that makes the swap right after it returns."""
    def listing(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        listed = real(*args, **kwargs)
        swap()
        return listed
    return listing


@pytest.mark.parametrize("swapped", ["subfolder", "the folder itself"])
def test_a_folder_swapped_for_a_link_after_listing_is_never_copied(
        project: Project, tracker, results: Path, outside: Path, monkeypatch,
        swapped: str) -> None:
    if swapped == "subfolder":
        swap, first = lambda: swap_for_link(results / "sub", outside / "sub"), "sub/id_rsa"
    else:
        swap, first = lambda: swap_for_link(results, outside), "metrics.json"
    monkeypatch.setattr(tracking, "list_folder_files", swapping_after(list_folder_files, swap))
    run = tracker.start_run("swap")
    with pytest.raises(FolderChanged) as changed:
        run.log_artifact(results)
    message = str(changed.value)
    assert repr(first) in message and "not the file that was listed" in message
    assert "not recorded" in message
    assert MARKER.decode() not in message
    run.end()
    assert [a.name for a in tracker.store.artifacts.for_run(run.id)
            if a.name.startswith("results/")] == []  # metrics.json neither: all or nothing
    assert MARKER not in everything_under(project.home)


def test_a_subfolder_swapped_between_listing_and_walking_into_it_is_refused(
        project: Project, tracker, results: Path, outside: Path, monkeypatch) -> None:
    """The walk lists a folder, then opens each subfolder: a swap in between."""
    real_scandir = os.scandir
    swaps = []

    class Listed:
        def __init__(self, entries: list) -> None:
            self.entries = entries

        def __enter__(self):  # noqa: ANN204
            return iter(self.entries)

        def __iter__(self):  # noqa: ANN204
            return iter(self.entries)

        def __exit__(self, *exc: object) -> None:
            return None

    def scandir(target):  # noqa: ANN001, ANN202
        with real_scandir(target) as entries:
            listed = list(entries)  # read the whole listing, as it was
        if not swaps:
            swap_for_link(results / "sub", outside / "sub")
            swaps.append(target)
        return Listed(listed)

    run = tracker.start_run("walk")
    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(SymlinkRefused) as refused:
        run.log_artifact(results)
    monkeypatch.undo()
    assert swaps and refused.value.relative == "sub"
    run.end()
    assert [a.name for a in tracker.store.artifacts.for_run(run.id)
            if a.name.startswith("results/")] == []
    assert MARKER not in everything_under(project.home)


def test_a_dataset_digest_never_covers_a_swapped_in_file(results: Path, outside: Path,
                                                         monkeypatch) -> None:
    honest = digest_folder(results)
    monkeypatch.setattr(hashing, "list_folder_files", swapping_after(
        list_folder_files, lambda: swap_for_link(results / "sub", outside / "sub")))
    with pytest.raises(FolderChanged, match="sub/id_rsa"):
        digest_folder(results)
    monkeypatch.undo()
    os.unlink(results / "sub")
    os.rename(results / "sub.moved", results / "sub")
    assert digest_folder(results) == honest


def test_a_file_replaced_after_listing_is_refused(results: Path) -> None:
    """Same name, another file (here a link to the secret; a renamed-over copy alike)."""
    [(_, metrics), (_, key)] = list_folder_files(results)
    assert isinstance(key, FolderFile) and key.identity is not None
    os.unlink(key)
    key.symlink_to(Path("/etc/passwd"))
    with pytest.raises(FolderChanged, match="symbolic link"):
        digest_file(key)
    newer = metrics.with_name("metrics.json.new")
    newer.write_text('{"acc": 1.0}')
    os.replace(newer, metrics)  # another file (inode) under the listed name
    with pytest.raises(FolderChanged, match="not the file that was listed"):
        digest_file(metrics)


def test_a_pipeline_step_never_stages_a_swapped_in_file(results: Path, outside: Path,
                                                       tmp_path: Path) -> None:
    """Inside a step, files are copied into the outbox by `GlueRecorder`: same check."""
    outbox = tmp_path / "outbox"
    files = [(f"results/{rel}", full) for rel, full in list_folder_files(results)]
    swap_for_link(results / "sub", outside / "sub")
    with pytest.raises(FolderChanged):
        GlueRecorder(outbox).put_files(None, files, "artifact")
    assert MARKER not in everything_under(outbox)


def test_an_unchanged_folder_logs_as_before(project: Project, tracker, results: Path) -> None:
    run = tracker.start_run("plain")
    links = run.log_artifact(results)
    run.end()
    assert sorted(link.name for link in links) == ["results/metrics.json", "results/sub/id_rsa"]
    assert tracker.artifacts.read_bytes(links[0].digest) in (
        b'{"acc": 0.9}', b"an honest file that happens to share the name")
    assert isinstance(FolderChanged(results, "x", "y"), InvalidInput)
