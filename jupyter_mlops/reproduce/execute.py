"""Re-execute a run's stored source in the scratch folder: a notebook with papermill and
the run's recorded parameters, a script with this Python. The kernel or process is told
(`capture.REPRODUCES_ENV`) which run it reproduces and which folder stands in for the
project's root, so the run it records is tagged and its paths read as the original's."""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ..capture import NOTEBOOK_ENV, REPRODUCE_ROOT_ENV, REPRODUCES_ENV, assignments
from ..recorders import OUTBOX_ENV
from .cells import cell_tags, cell_text, code_cells

if TYPE_CHECKING:
    from ..pipelines.warm import KernelStart

SCRIPT_OUTPUT_LINES = 20  # of a failing script's output, shown in the reason
SCRIPT_OUTPUT_TAIL_BYTES = 64 * 1024  # read from the end of its output for those lines
INTERRUPT_GRACE_SECONDS = 5  # an interrupted script's time to end its run
RUN_PARAMS_ENV = "MLOPS_RUN_PARAMS"  # set by `mlops run -p` for its kernel


def notebook_parameters(notebook: Path, recorded: Mapping[str, str]) -> dict[str, object]:
    """The run's recorded values of the names the notebook's `parameters` cell assigns,
    as Python values again (params are stored as text: a name whose default is a
    string keeps the text, any other is read back as JSON, then as a literal)."""
    try:
        cells = code_cells(notebook.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    defaults: dict[str, object] = {}
    for cell in cells:
        if "parameters" in cell_tags(cell):
            defaults.update(assignments(cell_text(cell)))
    values: dict[str, object] = {}
    for name, default in defaults.items():
        if name in recorded:
            values[name] = recorded[name] if isinstance(default, str) \
                else _value(recorded[name])
    return values


def _value(text: str) -> object:
    """The recorded text as the value it was: JSON (what `log_params` writes for a
    non-string), else a Python literal, else the text itself. Nothing is evaluated, and a
    crafted record (`[[[[...` nested past the parser's depth) stays text."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return text


def kernel_environment(original_uuid: str, scratch: Path, project_root: Path
                       ) -> dict[str, str]:
    """What the re-execution's kernel or process is told. It inherits the environment
    of whatever runs reproduce, which may be a kernel `mlops run -p` started (its
    parameters) or a pipeline step's (its outbox): both are blanked, or the new run
    would log those parameters, or be glued into that step instead of recorded."""
    return {REPRODUCES_ENV: original_uuid, REPRODUCE_ROOT_ENV: str(scratch),
            "MLOPS_HOME": str(project_root), RUN_PARAMS_ENV: "", OUTBOX_ENV: ""}


def run_notebook(notebook: Path, output: Path, params: Mapping[str, object], cwd: Path,
                 env: Mapping[str, str], progress_bar: bool,
                 start: KernelStart | None = None) -> str | None:
    """Execute with papermill (in a kernel forked from a template when `start` has one);
    None on success, else what failed (one line)."""
    from ..pipelines.execution import execute_notebook  # papermill: only when executing

    failure = execute_notebook(str(notebook), str(output), params, str(cwd),
                               {**env, NOTEBOOK_ENV: str(notebook)}, progress_bar=progress_bar,
                               start=start)
    if failure is not None and failure.rstrip().endswith(":"):
        said = _last_error_line(output)  # a magic's UsageError reaches papermill blank
        failure = f"{failure.rstrip()} {said}" if said else failure
    return failure


def _last_error_line(executed: Path) -> str | None:
    """The last line the executed notebook's cells wrote to stderr, or None."""
    try:
        cells = json.loads(executed.read_text(encoding="utf-8")).get("cells", [])
    except (OSError, ValueError, AttributeError):
        return None
    lines = [line for cell in cells if isinstance(cell, dict)
             for out in cell.get("outputs") or () if isinstance(out, dict)
             and out.get("name") == "stderr"
             for line in "".join(out.get("text") or ()).splitlines() if line.strip()]
    return lines[-1].strip() if lines else None


def run_script(script: Path, cwd: Path, env: Mapping[str, str]) -> str | None:
    """Execute with this Python; None on success, else its exit status and last lines.
    Its output goes to a file, not a pipe: a process the script leaves running (a
    server, a worker) keeps a pipe open, and reading to its end would wait for it.
    Interrupted, the script is interrupted too (SIGINT), so the run it records ends
    `killed` rather than staying `running`."""
    with tempfile.TemporaryFile() as output:
        with subprocess.Popen([sys.executable, str(script)], cwd=cwd,
                              env={**os.environ, **env}, stdin=subprocess.DEVNULL,
                              stdout=output, stderr=subprocess.STDOUT) as child:
            try:
                child.wait()
            except KeyboardInterrupt:
                _interrupt(child)
                raise
        if child.returncode == 0:
            return None
        size = output.seek(0, os.SEEK_END)
        output.seek(max(0, size - SCRIPT_OUTPUT_TAIL_BYTES))
        tail = output.read().decode("utf-8", "replace").strip().splitlines()
    shown = "\n".join(tail[-SCRIPT_OUTPUT_LINES:])
    return f"{script.name} exited with status {child.returncode}" + \
        (f":\n{shown}" if shown else "")


def _interrupt(child: subprocess.Popen) -> None:
    """Let an interrupted script end its run: a terminal's Ctrl-C reached it already; a
    SIGTERM sent to reproduce alone did not, so it gets SIGINT; killed if it lingers."""
    for wait, then in ((1.0, signal.SIGINT), (INTERRUPT_GRACE_SECONDS, signal.SIGKILL)):
        try:
            child.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            child.send_signal(then)
    child.wait()
