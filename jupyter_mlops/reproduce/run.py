"""`mlops reproduce RUN`: re-execute a recorded run from its record alone and say what
differs.

The run's stored source snapshot (never today's file) is re-executed in a scratch
folder that holds only the run's recorded inputs, each checked by digest
(`inputs.place_inputs`), with the run's recorded parameters, in the working folder it
ran in. The re-execution records a new run tagged `mlops.reproduces=<uuid>`, which
registers no model version and feeds no monitoring. Its metrics, parameters, dataset
and model digests are then compared with the original's (`compare.compare_results`).

Verdicts, and the command's exit codes: `reproduced` (0), `differs` (1), `could not
run` (2: the run can't be re-executed, an input changed, `--strict-env` found a
package difference, or the code failed).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from ..capture import REPRODUCES_TAG, WORKDIR_TAG, environment
from ..errors import InvalidInput, MlopsError, NotFound
from ..inspection import describe_run
from ..project import Project
from ..store import Store
from ..store.records import ArtifactLink, Run
from ..validation import NOT_REPRODUCIBLE_TAG
from .compare import Comparison, Tolerance, compare_results
from .environment import PackageDifference, differences
from .execute import kernel_environment, notebook_parameters, run_notebook, run_script
from .inputs import InputCheck, place_inputs, relative_source

if TYPE_CHECKING:
    from ..pipelines.warm import KernelStart, WarmStart

EXIT_CODES = {"reproduced": 0, "differs": 1, "could not run": 2}


class CouldNotRun(MlopsError):
    """The run can't be re-executed, or its re-execution failed: the reason, one line."""


@dataclass(frozen=True)
class Options:
    tolerance: Tolerance = field(default_factory=Tolerance)
    folder: Path | None = None  # the scratch folder (default: a new one in .mlops/cache)
    keep: bool = False  # keep the scratch folder afterwards
    strict_env: bool = False  # refuse to run on any package difference
    progress_bar: bool = False
    cold: bool = False  # no kernel forked from a template process (pipelines/warm.py)


@dataclass(frozen=True)
class Reproduction:
    original: Run
    verdict: str  # reproduced | differs | could not run
    reason: str | None = None  # why it could not run
    run: Run | None = None  # the run the re-execution recorded
    environment: tuple[PackageDifference, ...] = ()
    inputs: tuple[InputCheck, ...] = ()
    comparison: Comparison | None = None
    scratch: Path | None = None  # the scratch folder, when kept
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]


def resolve_original(store: Store, ref: str) -> Run:
    """A run id or uuid prefix, or a model reference (`NAME:VERSION`, `NAME@ALIAS`): the
    run that made that model version."""
    if ":" in ref or "@" in ref:
        version = store.models.resolve(ref)
        if version.run_id is None:
            raise NotFound(f"model {version.ref} was registered by no run")
        return store.runs.get(version.run_id)
    return store.runs.resolve(ref)


def reproduce(project: Project, store: Store, read_blob: Callable[[str], bytes], ref: str,
              options: Options,
              say: Callable[[str], None] = lambda message: None,
              scratch: Path | None = None, kernels: WarmStart | None = None) -> Reproduction:
    """Re-execute run `ref` and compare. `scratch`, given by a pipeline reproduction,
    is shared by its steps (each step's outputs are the next one's inputs) and never
    removed here; so is its `kernels`, the template its steps' kernels are forked from.
    Without `kernels`, a notebook's kernel is forked from a template of its own that
    imports while the inputs are checked (cold with `options.cold`)."""
    started = time.monotonic()
    original = resolve_original(store, ref)
    env_found: tuple[PackageDifference, ...] = ()
    checks: tuple[InputCheck, ...] = ()
    own_scratch = scratch is None
    own_kernels: WarmStart | None = None
    try:
        snapshot = _runnable_snapshot(store, original)
        here = environment()
        recorded_env = store.environments.get(original.env_digest) \
            if original.env_digest else None
        if recorded_env is not None:
            env_found = tuple(differences(recorded_env, here))
        if env_found and options.strict_env:
            raise CouldNotRun(f"{len(env_found)} package difference(s) from the run's "
                              "environment (--strict-env): "
                              + "; ".join(d.describe() for d in env_found[:5]))
        user = _recording_user(store)
        if scratch is None:
            scratch = scratch_folder(options.folder, project.cache_dir, f"run-{original.id}")
        if kernels is None and snapshot.name.endswith(".ipynb"):
            kernels = own_kernels = _warm_start(project, here.digest, options.cold,
                                                read_blob(snapshot.digest))
        say(f"checking the inputs of run {original.id}")
        checks = tuple(place_inputs(store, original, project.root, scratch, read_blob))
        source = _place_source(read_blob, original, snapshot, project.root, scratch)
        cwd = _working_folder(original, scratch)
        last_id = max((r.id for r in store.runs.search(limit=1)), default=0)
        env = kernel_environment(original.uuid, scratch, project.root)
        say(f"executing {source.name} (run {original.id}'s snapshot) in {cwd}")
        start = None
        if source.suffix == ".ipynb":
            output = scratch / ".reproduce" / source.name
            output.parent.mkdir(exist_ok=True)
            start = None if kernels is None else kernels.start(here.digest)
            failure = run_notebook(source, output, notebook_parameters(source, original.params),
                                   cwd, env, options.progress_bar, start)
            if start is not None:
                say(f"its kernel started {start.note}")
        else:
            output, failure = None, run_script(source, cwd, env)
        again = _recorded_run(store, original, last_id, source, user)
        if again is not None and output is not None and output.is_file():
            _keep_executed(store, project, again, output, start)
        if failure is not None:
            raise CouldNotRun(f"the re-execution failed: {failure}{_hint(failure)}"
                              f"{_original_failure(original)}")
        if again is None:
            late = (", or its records have not reached the team server yet (`mlops status` "
                    "says what is pending)") if getattr(store, "remote", False) else ""
            raise CouldNotRun(f"{source.name} ran but recorded no run (it starts none "
                              f"with `%mlops start` or `mlops.start_run()`{late})")
        comparison = compare_results(describe_run(store, original.id),
                                     describe_run(store, again.id), options.tolerance,
                                     scratch)
        verdict = "differs" if comparison.differences else "reproduced"
        return Reproduction(original, verdict, None, again, env_found, checks, comparison,
                            scratch if options.keep or not own_scratch else None,
                            time.monotonic() - started)
    except (MlopsError, OSError) as exc:  # CouldNotRun among them
        reason = str(exc) if isinstance(exc, MlopsError) else f"{type(exc).__name__}: {exc}"
        kept = scratch if scratch is not None and (options.keep or not own_scratch) else None
        return Reproduction(original, "could not run", reason, None, env_found, checks,
                            None, kept, time.monotonic() - started)
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM as the CLI maps it: say where things are
        if own_scratch and scratch is not None:
            say(f"interrupted: the scratch folder {scratch} was " + scratch_fate(options))
        raise
    finally:
        if own_kernels is not None:
            own_kernels.close()
        if own_scratch and scratch is not None and not options.keep:
            remove_scratch(scratch, named=options.folder is not None)


def _warm_start(project: Project, env_digest: str, cold: bool, notebook: bytes
                ) -> WarmStart:
    """A template process for one notebook's kernel, importing what the notebook imports
    while its inputs are checked (none with `cold`)."""
    from ..pipelines.warm import ASKED_COLD, WarmStart, notebook_text_imports, with_later_imports

    kernels = WarmStart(ASKED_COLD if cold else None)
    kernels.prepare(project.root, env_digest, [],
                    with_later_imports(notebook_text_imports(notebook)))
    return kernels


def _runnable_snapshot(store: Store, run: Run) -> ArtifactLink:
    """The run's stored notebook or script, or why it can't be re-executed."""
    if run.status == "running":
        raise CouldNotRun(f"run {run.id} is still running; reproduce it once it has ended")
    reason = run.tags.get(NOT_REPRODUCIBLE_TAG)
    if reason:
        raise CouldNotRun(f"run {run.id} is not reproducible: {reason}")
    snapshots = [a for a in store.artifacts.for_run(run.id)
                 if a.name.startswith("source/") and a.kind in ("notebook", "source")
                 and a.name != "source/session.py"]
    if not snapshots:
        raise CouldNotRun(f"run {run.id} stored no snapshot of its notebook or script")
    return snapshots[0]


def _recording_user(store: Store) -> str | None:
    """In team mode, the user this token records as (None in a project's own store).
    The re-execution records its run with the token, so one that may not record is
    said before anything runs, rather than as a magic's error inside the notebook."""
    if not getattr(store, "remote", False):
        return None
    who = store.client.whoami()  # type: ignore[attr-defined]
    if "record" not in (who.get("permissions") or []):
        roles = ", ".join(who.get("roles") or []) or "none"
        raise CouldNotRun(f"reproduce records a new run, and the team server "
                          f"{store.client.url} knows this token as "  # type: ignore[attr-defined]
                          f"{who.get('user')!r} (roles: {roles}), which may not record runs: "
                          "use a writer's or runner's token")
    return str(who["user"])


def _original_failure(run: Run) -> str:
    """The original's own end, when it did not finish: the same failure again is what
    reproducing it gives."""
    if run.status == "finished":
        return ""
    return f" (run {run.id} itself ended {run.status}" + \
        (f": {run.error.splitlines()[0][:200]})" if run.error else ")")


def scratch_folder(folder: Path | None, cache_dir: Path, label: str) -> Path:
    """`folder` (new or empty), or a new one under .mlops/cache/reproduce/."""
    if folder is None:
        parent = cache_dir / "reproduce"
        parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f"{label}-", dir=parent))
    if folder.exists() and not folder.is_dir():
        raise InvalidInput(f"--in {folder}: not a folder (name a new or empty folder)")
    if folder.exists() and any(folder.iterdir()):
        raise InvalidInput(f"--in {folder}: the folder must be new or empty (reproduce "
                           "fills it with the run's inputs and outputs)")
    folder.mkdir(parents=True, exist_ok=True)
    return folder.resolve()


def remove_scratch(scratch: Path, named: bool) -> None:
    """Remove a scratch folder; one the user named with `--in` (maybe their own empty
    folder, maybe through a link) is emptied and left where it is."""
    if not named:
        shutil.rmtree(scratch, ignore_errors=True)
        return
    if not scratch.is_dir():  # removed meanwhile
        return
    for entry in scratch.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def scratch_fate(options: Options) -> str:
    """What becomes of the scratch folder afterwards, as said to the user."""
    if options.keep:
        return "kept"
    return "emptied" if options.folder is not None else "removed"


def _place_source(read_blob: Callable[[str], bytes], run: Run, snapshot: ArtifactLink,
                  project_root: Path, scratch: Path) -> Path:
    """Write the snapshot in the folder the source was in, relative to the project (the
    scratch root when it lived outside)."""
    name = PurePosixPath(snapshot.name).name
    folder = PurePosixPath(".")
    if run.notebook:
        try:
            folder = PurePosixPath(Path(run.notebook).parent.relative_to(project_root)
                                   .as_posix())
        except ValueError:
            pass
    target = scratch / (relative_source((folder / name).as_posix()) or PurePosixPath(name))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(read_blob(snapshot.digest))
    return target


def _working_folder(run: Run, scratch: Path) -> Path:
    """Where the run's relative paths started: its recorded working folder, when that
    lies in the project, mirrored in the scratch folder; else the scratch root."""
    workdir = relative_source(run.tags.get(WORKDIR_TAG, "") or ".")
    folder = scratch / workdir if workdir is not None else scratch
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _recorded_run(store: Store, original: Run, last_id: int, source: Path,
                  user: str | None) -> Run | None:
    """The run the re-execution recorded: tagged as reproducing `original`, from the
    snapshot in this scratch folder (a tag alone could be set by anyone's run), and on
    a team server recorded by this token's user (a teammate can send any tag and path,
    and `--in DIR` makes the path known in advance, but not record as someone else)."""
    for run in store.runs.search(f"id > {last_id}", limit=1000):
        if run.tags.get(REPRODUCES_TAG) == original.uuid and run.notebook \
                and Path(run.notebook).resolve() == source.resolve() \
                and (user is None or run.user == user):
            return run
    return None


def _keep_executed(store: Store, project: Project, run: Run, output: Path,
                   start: KernelStart | None) -> None:
    """Store the executed notebook with the new run, and how its kernel started, as
    `mlops run` does."""
    if getattr(store, "remote", False):
        return  # the team server takes files only from a run's own recorder
    from ..artifacts import ArtifactStore
    from ..pipelines.runner import KERNEL_TAG

    digest, size = ArtifactStore(project.artifacts_dir).put_file(output)
    store.artifacts.link(run.id, f"executed/{output.name}", digest, size, "notebook")
    if start is not None:
        store.runs.set_tags(run.id, {KERNEL_TAG: start.note})


def _hint(failure: str) -> str:
    """What to do when the code looked for something the scratch folder lacks."""
    if "FileNotFoundError" in failure or "No such file" in failure \
            or "no file or folder" in failure:
        return (" (the scratch folder holds only the run's recorded inputs: record each "
                "file the code reads with `%mlops data PATH`)")
    if "ModuleNotFoundError" in failure:
        return (" (a module importable in the project is not in the scratch folder: "
                "install it as a package, `pip install -e .`)")
    return ""


def reproduction_text(found: Reproduction) -> str:
    """The verdict on one line, then the details, as `mlops reproduce` prints them."""
    original = found.original
    what = f"run {original.id}" + (f" ({original.name})" if original.name else "")
    if found.verdict == "could not run":
        lines = [f"could not run: {what}: {found.reason}"]
    elif found.verdict == "reproduced":
        assert found.run is not None and found.comparison is not None
        lines = [f"reproduced: run {found.run.id} reproduces {what}: "
                 f"{found.comparison.compared} recorded values compared, all equal"]
    else:
        assert found.run is not None and found.comparison is not None
        differing = found.comparison.differences
        lines = [f"differs: run {found.run.id} does not reproduce {what}: "
                 f"{len(differing)} of {found.comparison.compared} recorded values differ"]
        lines += [f"  {difference.describe()}" for difference in differing]
    if found.inputs:
        lines.append("inputs:")
        lines += [f"  {check.describe()}" for check in found.inputs]
    if found.environment:
        lines.append(f"environment: {len(found.environment)} difference(s) from the run's "
                     "(`mlops runs env RUN` prints its requirements):")
        lines += [f"  {difference.describe()}" for difference in found.environment]
    elif found.verdict != "could not run" or found.run is not None:
        lines.append("environment: the run's packages and Python, unchanged")
    if found.scratch is not None:
        lines.append(f"scratch folder kept: {found.scratch}")
    return "\n".join(lines)
