"""`mlops run NOTEBOOK`: execute a notebook with papermill under tracking, print its run."""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..artifacts import ArtifactStore
from ..capture import NOTEBOOK_ENV
from ..errors import InvalidInput, NotFound
from ..inspection import describe_run
from ..project import create_file_with_mode, make_dirs
from ..views import run_detail_text
from .common import open_store

if TYPE_CHECKING:
    from ..pipelines.warm import KernelStart
    from ..project import Project
    from ..store import Store


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "run", help="execute a notebook with papermill and print the run it recorded",
        description="Execute NOTEBOOK in a fresh kernel (papermill), in the project root, "
                    "with the given parameters. The notebook records its run with the "
                    "%%mlops magics; the executed notebook is stored with that run, which is "
                    "printed at the end.")
    parser.add_argument("notebook", help="path of the .ipynb to execute")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                        help="parameter for the notebook's `parameters` cell (repeatable); "
                             "VALUE is read as a Python literal, else as a string")
    parser.add_argument("-o", "--output", default=None,
                        help="where to write the executed notebook "
                             "(default: .mlops/cache/executed/NAME.ipynb)")
    parser.add_argument("--kernel", default=None, help="kernel name (default: the notebook's)")
    parser.add_argument("--cold", action="store_true",
                        help="start the kernel as a new process of its own, not forked from "
                             "a template process that imports the notebook's modules while "
                             "the run is prepared (see the README's warm steps)")
    parser.set_defaults(func=run)


def parse_assignment(text: str) -> tuple[str, object]:
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier():
        raise InvalidInput(f"parameter {text!r} should look like NAME=VALUE")
    try:
        value = ast.literal_eval(raw.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        value = raw.strip()
    return name, value


def run(args: argparse.Namespace) -> int:
    notebook = Path(args.notebook).resolve()
    if not notebook.is_file() or notebook.suffix != ".ipynb":
        raise NotFound(f"no notebook {args.notebook} (expected an existing .ipynb file)")
    params = dict(parse_assignment(p) for p in args.param)
    project, store = open_store()
    with warm_kernels(project, notebook, args.cold) as start:
        return _run(args, project, store, notebook, params, start)


@contextlib.contextmanager
def warm_kernels(project: Project, notebook: Path, cold: bool) -> Iterator[KernelStart]:
    """How the notebook's kernel starts: forked from a template process that imports the
    notebook's modules from now on, while the run is prepared and papermill imported
    (pipelines/warm.py), or cold when asked or when forking is unavailable here; the
    template ends with the block."""
    from ..pipelines.warm import ASKED_COLD, WarmStart

    kernels = WarmStart(ASKED_COLD if cold else None)
    try:
        env_digest = None
        if not cold:
            from ..capture import environment

            env_digest = environment().digest
            kernels.prepare(project.root, env_digest, [notebook])
        yield kernels.start(env_digest)
    finally:
        kernels.close()


def _run(args: argparse.Namespace, project: Project, store: Store, notebook: Path,
         params: dict, start: KernelStart) -> int:
    with store:
        before = store.runs.search(limit=1)
    output = Path(args.output).resolve() if args.output else (
        project.cache_dir / "executed" / notebook.name)
    make_dirs(output.parent)
    create_file_with_mode(output)  # private under .mlops/; papermill keeps the mode

    last_id = before[0].id if before else 0

    from ..pipelines.execution import execute_notebook  # papermill: only for this command
    from ..pipelines.runner import KERNEL_TAG  # as a pipeline step's: "warm", "cold: why"

    env = {NOTEBOOK_ENV: str(notebook), "MLOPS_HOME": str(project.root),
           "MLOPS_RUN_PARAMS": json.dumps(params, default=str)}
    started = time.time()
    error = execute_notebook(str(notebook), str(output), params, str(project.root), env,
                             kernel_name=args.kernel, progress_bar=sys.stderr.isatty(),
                             start=start)
    failure = None if error is None else f"{error} (executed notebook saved at {output})"
    elapsed = time.time() - started

    with open_store()[1] as store:
        recorded = [r for r in store.runs.search(f"id > {last_id}", limit=1000)
                    if r.notebook == str(notebook)]
        for found in recorded:
            digest, size = ArtifactStore(project.artifacts_dir).put_file(output)
            store.artifacts.link(found.id, f"executed/{notebook.name}", digest, size, "notebook")
            store.runs.set_tags(found.id, {KERNEL_TAG: start.note})
        if not recorded:
            print(f"executed {notebook.name} in {elapsed:.1f}s, but it recorded no run: add "
                  "`%load_ext jupyter_mlops` and `%mlops start` to it", file=sys.stderr)
        for found in reversed(recorded):
            print(run_detail_text(describe_run(store, found.id)))
    if failure:
        print(f"mlops: error: {notebook.name}: {failure}", file=sys.stderr)
        return 1
    print(f"\nexecuted {notebook.name} in {elapsed:.1f}s (its kernel started {start.note}); "
          f"output notebook: {output}", file=sys.stderr)
    return 0
