"""Re-execute a run's stored source in the scratch folder: a notebook with papermill and
the run's recorded parameters, a script with this Python. The kernel or process is told
(`capture.REPRODUCES_ENV`) which run it reproduces and which folder stands in for the
project's root, so the run it records is tagged and its paths read as the original's."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from ..capture import NOTEBOOK_ENV, REPRODUCE_ROOT_ENV, REPRODUCES_ENV

SCRIPT_OUTPUT_LINES = 20  # of a failing script's output, shown in the reason


def notebook_parameters(notebook: Path, recorded: Mapping[str, str]) -> dict[str, object]:
    """The run's recorded values of the names the notebook's `parameters` cell assigns,
    as Python values again (params are stored as text: a name whose default is a
    string keeps the text, any other is read back as JSON, then as a literal)."""
    try:
        cells = json.loads(notebook.read_text(encoding="utf-8")).get("cells", [])
    except (OSError, ValueError, AttributeError):
        return {}
    defaults: dict[str, object] = {}
    for cell in cells:
        if isinstance(cell, dict) and cell.get("cell_type") == "code" \
                and "parameters" in (cell.get("metadata") or {}).get("tags", ()):
            defaults.update(_assigned(cell.get("source", "")))
    values: dict[str, object] = {}
    for name, default in defaults.items():
        if name in recorded:
            values[name] = recorded[name] if isinstance(default, str) \
                else _value(recorded[name])
    return values


def _assigned(source: object) -> dict[str, object]:
    text = "".join(source) if isinstance(source, list) else str(source)
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return {}
    found: dict[str, object] = {}
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, ast.AnnAssign) and node.value else []
        for target in targets:
            if isinstance(target, ast.Name):
                try:
                    found[target.id] = ast.literal_eval(node.value)  # type: ignore[arg-type]
                except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                    found[target.id] = None  # an expression: not a string default
    return found


def _value(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return text


def kernel_environment(original_uuid: str, scratch: Path, project_root: Path
                       ) -> dict[str, str]:
    return {REPRODUCES_ENV: original_uuid, REPRODUCE_ROOT_ENV: str(scratch),
            "MLOPS_HOME": str(project_root)}


def run_notebook(notebook: Path, output: Path, params: Mapping[str, object], cwd: Path,
                 env: Mapping[str, str], progress_bar: bool) -> str | None:
    """Execute with papermill; None on success, else what failed (one line)."""
    from ..pipelines.execution import execute_notebook  # papermill: only when executing

    return execute_notebook(str(notebook), str(output), params, str(cwd),
                            {**env, NOTEBOOK_ENV: str(notebook)}, progress_bar=progress_bar)


def run_script(script: Path, cwd: Path, env: Mapping[str, str]) -> str | None:
    """Execute with this Python; None on success, else its exit status and last lines."""
    result = subprocess.run([sys.executable, str(script)], cwd=cwd, env={**os.environ, **env},
                            stdin=subprocess.DEVNULL, capture_output=True, check=False)
    if result.returncode == 0:
        return None
    tail = (result.stdout + result.stderr).decode("utf-8", "replace").strip().splitlines()
    shown = "\n".join(tail[-SCRIPT_OUTPUT_LINES:])
    return f"{script.name} exited with status {result.returncode}" + \
        (f":\n{shown}" if shown else "")
