"""Loading and validating a pipeline spec (YAML), with the line of every mistake.

    name: churn-train
    schedule: "0 3 * * *"          # optional, cron
    params: {seed: 7}              # pipeline-wide, overridable
    preload: [xgboost]             # optional: imported by warm steps' template
    steps:
      prepare:
        notebook: notebooks/prepare.ipynb
        params: {test_size: 0.25}
        inputs: [data/raw.csv]
        outputs: [data/features.parquet]
      train:
        notebook: notebooks/train.ipynb
        needs: [prepare]
        params: {model: "${steps.prepare.outputs.path}"}

The schema is the `_TOP_KEYS` / `_STEP_KEYS` tables below, checked by hand so
that every error names the file, the step and the line, and so that loading a
spec stays cheap (no jsonschema import on the path of a fully cached run).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import InvalidInput
from . import references

MAX_SPEC_BYTES = 1 << 20
STEP_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]{0,63}")
PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
MODULE_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
# A line of a parameters cell Python can't parse (say, with a magic): `name = ...`
# or `name: type = ...`, as papermill reads it.
_ASSIGNED_LINE = re.compile(r"([A-Za-z_]\w*)\s*(?::[^=]*)?=(?!=)")

# key -> (python types allowed, required, description for errors)
_TOP_KEYS: dict[str, tuple[tuple[type, ...], bool, str]] = {
    "name": ((str,), True, "a string"),
    "description": ((str,), False, "a string"),
    "schedule": ((str,), False, "a cron string like \"0 3 * * *\""),
    "params": ((dict,), False, "a mapping of parameter names to values"),
    "steps": ((dict,), True, "a mapping of step names to steps"),
    "preload": ((list,), False, "a list of modules for warm steps' template to import"),
}
_STEP_KEYS: dict[str, tuple[tuple[type, ...], bool, str]] = {
    "notebook": ((str,), True, "a notebook path"),
    "description": ((str,), False, "a string"),
    "params": ((dict,), False, "a mapping of parameter names to values"),
    "inputs": ((list,), False, "a list of paths"),
    "outputs": ((list,), False, "a list of paths"),
    "needs": ((list,), False, "a list of step names"),
    "gates": ((bool,), False, "true to check the registry's gates on the models it logs"),
}


@dataclass(frozen=True)
class StepSpec:
    name: str
    notebook: Path
    params: Mapping[str, Any]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    needs: tuple[str, ...]
    line: int
    gates: bool = False


@dataclass(frozen=True)
class PipelineSpec:
    name: str
    path: Path
    root: Path
    schedule: str | None
    params: Mapping[str, Any]
    steps: Mapping[str, StepSpec]
    order: tuple[str, ...]  # a topological order: every step after the steps it needs
    description: str = ""
    lines: Mapping[tuple, int] = field(default_factory=dict, repr=False)
    # Modules the template of warm steps imports besides the notebooks' own imports
    # (one a notebook imports only inside a function, say).
    preload: tuple[str, ...] = ()

    def upstream(self, step: str) -> set[str]:
        """Every step `step` needs, directly or not."""
        seen: set[str] = set()
        stack = list(self.steps[step].needs)
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend(self.steps[current].needs)
        return seen


class _Errors:
    def __init__(self, path: Path, lines: Mapping[tuple, int]) -> None:
        self.path = path
        self.lines = lines

    def fail(self, message: str, at: tuple = ()) -> InvalidInput:
        line = None
        probe = at
        while probe not in self.lines and probe:
            probe = probe[:-1]
        line = self.lines.get(probe)
        where = f" (line {line})" if line else ""
        return InvalidInput(f"{self.path}: {message}{where}")


def _compose(text: str, path: Path) -> tuple[Any, dict[tuple, int]]:
    """Parse YAML safely, remembering the line (1-based) of every key and item."""
    import yaml

    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InvalidInput(f"{path}: not valid YAML: {problem}{where}") from None
    lines: dict[tuple, int] = {}

    def walk(current: Any, at: tuple) -> None:
        lines.setdefault(at, current.start_mark.line + 1)
        if isinstance(current, yaml.MappingNode):
            for key_node, value_node in current.value:
                key = key_node.value
                lines[at + (key,)] = key_node.start_mark.line + 1
                walk(value_node, at + (key,))
        elif isinstance(current, yaml.SequenceNode):
            for index, item in enumerate(current.value):
                walk(item, at + (index,))

    if node is not None:
        walk(node, ())
    return data, lines


def load_spec(path: str | Path, root: str | Path) -> PipelineSpec:
    """Read and validate a pipeline spec; notebook and data paths are relative to `root`.

    Raises `InvalidInput` naming the file, the step and the line of the problem.
    """
    spec_path = Path(path)
    root_path = Path(root).resolve()
    try:
        raw = spec_path.read_bytes()
    except FileNotFoundError:
        raise InvalidInput(f"no pipeline spec at {spec_path}") from None
    except IsADirectoryError:
        raise InvalidInput(f"{spec_path} is a folder, not a pipeline spec") from None
    if len(raw) > MAX_SPEC_BYTES:
        raise InvalidInput(f"{spec_path}: {len(raw)} bytes is too large for a pipeline spec "
                           f"(limit {MAX_SPEC_BYTES})")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"{spec_path}: not UTF-8 text") from None
    data, lines = _compose(text, spec_path)
    errors = _Errors(spec_path, lines)
    if not isinstance(data, dict):
        raise errors.fail("a pipeline spec is a mapping with `name` and `steps`")
    _check_keys(data, _TOP_KEYS, (), "the pipeline", errors)
    name = data["name"]
    pipeline = f"pipeline {name!r}"
    params = data.get("params") or {}
    _check_params(params, ("params",), pipeline, errors)
    schedule = data.get("schedule")
    if schedule is not None:
        _check_cron(schedule, errors)
    if not data["steps"]:
        raise errors.fail(f"{pipeline} has no steps", ("steps",))
    preload = data.get("preload") or []
    for index, module in enumerate(preload):
        if not isinstance(module, str) or len(module) > 200 or \
                not MODULE_NAME.fullmatch(module):
            raise errors.fail(f"{pipeline}: preload: {str(module)[:80]!r} is not a module "
                              "name like pandas or sklearn.ensemble", ("preload", index))

    steps: dict[str, StepSpec] = {}
    for step_name, body in data["steps"].items():
        at = ("steps", step_name)
        if not isinstance(step_name, str) or not STEP_NAME.fullmatch(step_name):
            raise errors.fail(f"{pipeline}: step name {str(step_name)[:80]!r} must be letters, "
                              "digits, '_' or '-', starting with a letter", at)
        where = f"{pipeline}: step {step_name!r}"
        if not isinstance(body, dict):
            raise errors.fail(f"{where} must be a mapping with at least `notebook`", at)
        _check_keys(body, _STEP_KEYS, at, where, errors)
        step_params = body.get("params") or {}
        _check_params(step_params, at + ("params",), where, errors)
        notebook = _project_path(body["notebook"], root_path, at + ("notebook",), where, errors)
        if notebook.suffix != ".ipynb" or not notebook.is_file():
            raise errors.fail(f"{where}: notebook {body['notebook']!r} does not exist "
                              f"(looked in {root_path})", at + ("notebook",))
        merged = {**params, **step_params}
        if merged and not _has_parameters_cell(notebook):
            raise errors.fail(f"{where}: {body['notebook']} has no cell tagged `parameters`, so "
                              f"its params ({', '.join(merged)}) cannot be injected",
                              at + ("notebook",))
        # A pipeline parameter goes only to the notebooks that declare it; a step's own
        # must be declared, or papermill would only warn and the step run without it.
        for key in step_params:
            problem = undeclared_parameter(notebook, key, body["notebook"])
            if problem:
                raise errors.fail(f"{where}: {problem}", at + ("params", key))
        files = {}
        for kind in ("inputs", "outputs", "needs"):
            items = body.get(kind) or []
            for index, item in enumerate(items):
                if not isinstance(item, str) or not item:
                    raise errors.fail(f"{where}: {kind} must be a list of strings",
                                      at + (kind, index))
                if kind != "needs":
                    _project_path(item, root_path, at + (kind, index), where, errors)
            files[kind] = tuple(items)
        steps[step_name] = StepSpec(name=step_name, notebook=notebook, params=step_params,
                                    inputs=files["inputs"], outputs=files["outputs"],
                                    needs=files["needs"], line=lines.get(at, 0),
                                    gates=bool(body.get("gates", False)))

    for step in steps.values():
        for index, needed in enumerate(step.needs):
            if needed not in steps:
                raise errors.fail(f"{pipeline}: step {step.name!r} needs {needed!r}, which is "
                                  "not defined", ("steps", step.name, "needs", index))
    order = _topological_order(steps, pipeline, errors)
    spec = PipelineSpec(name=name, path=spec_path.resolve(), root=root_path,
                        schedule=schedule, params=params, steps=steps, order=order,
                        description=data.get("description", ""), lines=lines,
                        preload=tuple(preload))
    for step in steps.values():
        _check_references(spec, step, errors)
    return spec


def _check_keys(body: dict, allowed: Mapping[str, tuple[tuple[type, ...], bool, str]],
                at: tuple, where: str, errors: _Errors) -> None:
    for key in body:
        if key not in allowed:
            raise errors.fail(f"{where}: unknown key {str(key)[:80]!r} (allowed: "
                              f"{', '.join(allowed)})", at + (key,))
    for key, (types, required, description) in allowed.items():
        if key not in body:
            if required:
                raise errors.fail(f"{where}: missing `{key}` ({description})", at)
            continue
        value = body[key]
        if value is None and not required:
            continue
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise errors.fail(f"{where}: `{key}` must be {description}, got "
                              f"{type(value).__name__}", at + (key,))


def _check_params(params: dict, at: tuple, where: str, errors: _Errors) -> None:
    for key, value in params.items():
        if not isinstance(key, str) or not PARAM_NAME.fullmatch(key):
            raise errors.fail(f"{where}: parameter name {str(key)[:80]!r} is not a Python "
                              "identifier", at + (key,))
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            raise errors.fail(f"{where}: parameter {key!r} must be plain data (numbers, "
                              "strings, lists, mappings)", at + (key,)) from None


def _check_cron(expression: str, errors: _Errors) -> None:
    from croniter import croniter

    if not croniter.is_valid(expression):
        raise errors.fail(f"schedule {expression!r} is not a valid cron expression "
                          "(five fields: minute hour day-of-month month day-of-week)",
                          ("schedule",))


def _project_path(text: str, root: Path, at: tuple, where: str, errors: _Errors) -> Path:
    """A path inside the project: relative, no `..`, no control characters."""
    pure = PurePosixPath(text)
    if (pure.is_absolute() or "\\" in text or ".." in pure.parts
            or any(ord(c) < 32 for c in text)):
        raise errors.fail(f"{where}: path {text[:80]!r} must be relative to the project and "
                          "stay inside it", at)
    return root / pure


def _parameters_cells(notebook: Path) -> list[str]:
    """Sources of the cells tagged `parameters` (read with json: nbformat is slow)."""
    try:
        data = json.loads(notebook.read_text(encoding="utf-8"))
        cells = [cell for cell in data.get("cells", [])
                 if "parameters" in (cell.get("metadata", {}).get("tags") or [])]
        return ["".join(c["source"]) if isinstance(c["source"], list) else str(c["source"])
                for c in cells]
    except (OSError, ValueError, AttributeError, TypeError, KeyError):
        return []


def _has_parameters_cell(notebook: Path) -> bool:
    return bool(_parameters_cells(notebook))


def declared_parameters(notebook: Path) -> set[str]:
    """Names assigned in the notebook's `parameters` cell."""
    return set(parameter_names(notebook))


def parameter_names(notebook: Path) -> list[str]:
    """Names assigned at the top level of the `parameters` cells, in order (`a = 1`,
    `b: int = 2`, `c, d = 3, 4`); a cell Python can't parse (a magic in it) is read
    line by line, as papermill does."""
    import ast

    names: list[str] = []

    def add(target: ast.expr) -> None:
        if isinstance(target, ast.Name) and target.id not in names:
            names.append(target.id)
        elif isinstance(target, ast.Tuple | ast.List):
            for element in target.elts:
                add(element)
        elif isinstance(target, ast.Starred):
            add(target.value)

    for source in _parameters_cells(notebook):
        try:
            tree = ast.parse(source)
        except SyntaxError:
            for line in source.splitlines():
                match = _ASSIGNED_LINE.match(line)
                if match and match.group(1) not in names:
                    names.append(match.group(1))
            continue
        for node in tree.body:
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    add(target)
            elif isinstance(node, ast.AnnAssign | ast.AugAssign):
                add(node.target)
    return names


def undeclared_parameter(notebook: Path, name: str, shown: str) -> str | None:
    """Why `name` can't be given to `notebook` (shown as `shown`), or None when its
    `parameters` cell declares it. A notebook in another language than Python is not
    checked: its cell is not read here."""
    declared = parameter_names(notebook)
    if name in declared or _language(notebook) not in ("python", None):
        return None
    return (f"parameter {name!r} is not declared in the `parameters` cell of {shown} "
            f"(declared: {', '.join(declared) or 'none'}){did_you_mean(name, declared)}")


def did_you_mean(name: str, choices: list[str]) -> str:
    """`; did you mean 'C'?` for the choice closest to `name` (case first), or ''."""
    import difflib

    lowered = {choice.lower(): choice for choice in choices}
    match = lowered.get(name.lower())
    if match is None:
        close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
        match = lowered[close[0]] if close else None
    return f"; did you mean {match!r}?" if match else ""


def _language(notebook: Path) -> str | None:
    """The notebook's kernel language as its metadata says (lowercase), or None."""
    try:
        metadata = json.loads(notebook.read_text(encoding="utf-8")).get("metadata") or {}
        language = ((metadata.get("kernelspec") or {}).get("language")
                    or (metadata.get("language_info") or {}).get("name"))
    except (OSError, ValueError, AttributeError):
        return None
    return language.lower() if isinstance(language, str) else None


def _topological_order(steps: Mapping[str, StepSpec], pipeline: str,
                       errors: _Errors) -> tuple[str, ...]:
    order: list[str] = []
    state: dict[str, str] = {}  # visiting | done

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = trail[trail.index(name):] + [name]
            raise errors.fail(f"{pipeline}: steps form a cycle: {' -> '.join(cycle)}",
                              ("steps", name, "needs"))
        state[name] = "visiting"
        for needed in steps[name].needs:
            visit(needed, trail + [name])
        state[name] = "done"
        order.append(name)

    for name in steps:
        visit(name, [])
    return tuple(order)


def _check_references(spec: PipelineSpec, step: StepSpec, errors: _Errors) -> None:
    where = f"pipeline {spec.name!r}: step {step.name!r}"
    upstream = spec.upstream(step.name)
    for key, value in step.params.items():
        at = ("steps", step.name, "params", key)
        try:
            found = references.find(value)
        except references.BadReference as exc:
            raise errors.fail(f"{where}: {exc}", at) from None
        for ref in found:
            if ref.kind == "params" and ref.name not in spec.params:
                raise errors.fail(f"{where}: {ref.text} names no pipeline parameter "
                                  f"(declared: {', '.join(spec.params) or 'none'})", at)
            if ref.kind == "models":
                continue  # resolved against the registry when the step runs
            if ref.kind == "outputs" and ref.step not in upstream:
                raise errors.fail(f"{where}: {ref.text} refers to step {ref.step!r}, which "
                                  f"this step does not need (add it to `needs`)", at)
