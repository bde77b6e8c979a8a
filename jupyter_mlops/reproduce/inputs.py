"""A run's recorded inputs, checked by digest and placed in the scratch folder where
`mlops reproduce` re-executes it.

Each input file or folder the run recorded (by a path relative to the project) must
be found with the recorded digest: at its path in the project, or in the artifact
store (a copy the run kept with `%mlops data PATH --keep`, or a file a pipeline step
wrote, which the runner keeps). It is then copied to the same relative path in the
scratch folder, so the re-execution reads those bytes and its writes never touch the
project. An input found with other bytes and no copy stops the reproduction, naming
both digests and where the recorded bytes came from. In-memory tables are rebuilt by
the code itself: their digests are compared after the run.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..datasets import describe_path
from ..errors import MlopsError, NotFound
from ..hashing import StatCache, digest_file, list_folder_files
from ..store import Store
from ..store.records import ArtifactLink, Run, RunDataset
from ..validation import check_artifact_name


class InputChanged(MlopsError):
    """A recorded input is not available with its recorded bytes."""


@dataclass(frozen=True)
class InputCheck:
    source: str  # as recorded: relative to the project, or absolute
    recorded: str  # the digest the run recorded
    found: str  # where the bytes came from: "project" | "kept copy" (the artifact store) |
    # "scratch" (an earlier step of a pipeline reproduction) | "in place" (an absolute path)

    def describe(self) -> str:
        where = {"project": "the project's file, unchanged",
                 "kept copy": "restored from the artifact store",
                 "scratch": "written by an earlier step of this reproduction",
                 "in place": "unchanged, read in place (an absolute path)"}[self.found]
        return f"{self.source}: {where} ({self.recorded})"


def place_inputs(store: Store, run: Run, project_root: Path, scratch: Path,
                 read_blob: Callable[[str], bytes], cache: StatCache | None = None
                 ) -> list[InputCheck]:
    """Check every input file and folder of `run` and copy it into `scratch`. Raises
    `InputChanged` naming every input that can't be had with its recorded bytes."""
    kept = [a for a in store.artifacts.for_run(run.id) if a.kind == "dataset"]
    checks, problems = [], []
    for used in store.datasets.for_run(run.id, role="input"):
        if used.dataset.kind not in ("file", "folder"):
            continue
        try:
            checks.append(_place(store, used, project_root, scratch, read_blob, kept, cache))
        except InputChanged as exc:
            problems.append(str(exc))
    if problems:
        raise InputChanged("; ".join(problems))
    return checks


def relative_source(source: str) -> PurePosixPath | None:
    """The recorded path as a safe relative path (no `..`, not absolute), or None."""
    path = PurePosixPath(source)
    if path.is_absolute() or not path.parts or ".." in path.parts:
        return None
    return path


def _place(store: Store, used: RunDataset, project_root: Path, scratch: Path,
           read_blob: Callable[[str], bytes], kept: list[ArtifactLink],
           cache: StatCache | None) -> InputCheck:
    recorded, source = used.dataset.digest, used.source
    relative = relative_source(source)
    if relative is None and not PurePosixPath(source).is_absolute():
        # A record made by hand (`name=`, a glued record, a team server's row): never
        # read relative to wherever reproduce was started, never placed above scratch.
        raise InputChanged(f"input {source} can't be placed: its recorded path climbs out "
                           "of the project (`..`); the run's code can't be re-executed "
                           "with it")
    if relative is None:  # an absolute path, read in place by the code: only checked
        current = _digest_of(Path(source), used.dataset.kind, cache)
        if current != recorded:
            raise InputChanged(_changed(store, source, recorded, current,
                                        "an absolute path can't be restored into the "
                                        "scratch folder"))
        return InputCheck(source, recorded, "in place")
    target = scratch / relative
    if target.exists():  # an earlier step of a pipeline reproduction wrote it
        current = _digest_of(target, used.dataset.kind, None)
        if current != recorded:
            raise InputChanged(f"input {source} differs: the run read {recorded}, an earlier "
                               f"step of this reproduction wrote {current}")
        return InputCheck(source, recorded, "scratch")
    current = _digest_of(project_root / relative, used.dataset.kind, cache)
    if current == recorded:
        _copy(project_root / relative, target, used.dataset.kind)
        return InputCheck(source, recorded, "project")
    if _restore(used, target, read_blob, kept):
        return InputCheck(source, recorded, "kept copy")
    hint = (f"keep inputs with `%mlops data {source} --keep` (or "
            "`log_dataset(..., keep=True)`) so reproduce can restore them")
    if current is None:
        hint += (f"; an input logged under another name (`name=`) is recorded by that "
                 f"name, not by its path, and reproduce looks for it at {source}")
    raise InputChanged(_changed(store, source, recorded, current, hint))


def _digest_of(path: Path, kind: str, cache: StatCache | None) -> str | None:
    """The path's digest as the run would record it, or None when it is not there."""
    try:
        if kind == "folder":
            return describe_path(path, cache).digest if path.is_dir() else None
        return digest_file(path, cache) if path.is_file() else None
    except (MlopsError, OSError):
        return None


def _copy(source: Path, target: Path, kind: str) -> None:
    if kind == "file":
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        return
    for relative, full in list_folder_files(source):
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(full, destination)


def _restore(used: RunDataset, target: Path, read_blob: Callable[[str], bytes],
             kept: list[ArtifactLink]) -> bool:
    """Write the recorded bytes at `target` from the artifact store; False when they are
    not there. A file's blob has the file's digest; a folder is restored from the
    run's kept copy of each of its files, then checked whole."""
    if used.dataset.kind == "file":
        try:
            data = read_blob(used.dataset.digest)
        except NotFound:
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return True
    prefix = f"datasets/{used.source}/"
    files = [a for a in kept if a.name.startswith(prefix)]
    if not files:
        return False
    for link in files:
        relative = relative_source(check_artifact_name(link.name).removeprefix(prefix))
        if relative is None:
            return False
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(read_blob(link.digest))
    if describe_path(target).digest != used.dataset.digest:
        shutil.rmtree(target)
        return False
    return True


def _changed(store: Store, source: str, recorded: str, current: str | None, hint: str
             ) -> str:
    now = "missing" if current is None else f"now {current}"
    writers = [run_id for run_id, role in store.datasets.runs_using(recorded)
               if role == "output"]
    origin = (f"; run {writers[0]} wrote the recorded bytes (`mlops reproduce {writers[0]}` "
              "makes them again)" if writers else "")
    return f"input {source} changed: the run read {recorded}, {now}{origin}; {hint}"
