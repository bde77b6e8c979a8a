"""Pipeline specs: every mistake is a clear error naming the file, the step and the line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from jupyter_mlops.errors import InvalidInput
from jupyter_mlops.pipelines import references
from jupyter_mlops.pipelines.spec import load_spec

from .conftest import NOTEBOOKS

VALID = """\
name: chain
params: {n: 3}
steps:
  make:
    notebook: make.ipynb
    outputs: [out/numbers.txt]
  use:
    notebook: use.ipynb
    needs: [make]
    params: {count: "${steps.make.outputs.count}", path: "x-${params.n}"}
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    for name in ("make.ipynb", "use.ipynb"):
        shutil.copy(NOTEBOOKS / "pipeline" / name, tmp_path / name)
    (tmp_path / "plain.ipynb").write_text('{"cells": [], "metadata": {}, "nbformat": 4, '
                                          '"nbformat_minor": 5}')
    return tmp_path


def write(root: Path, text: str) -> Path:
    path = root / "p.yaml"
    path.write_text(text)
    return path


def test_a_valid_spec_loads_in_order(root: Path) -> None:
    spec = load_spec(write(root, VALID), root)
    assert spec.order == ("make", "use") and spec.params == {"n": 3}
    assert spec.steps["use"].needs == ("make",) and spec.steps["use"].line == 7
    assert spec.upstream("use") == {"make"}


@pytest.mark.parametrize(("change", "message"), [
    (("  use:\n", "  use:\n    colour: red\n"), "step 'use': unknown key 'colour' (allowed: "),
    (("needs: [make]", "needs: [prep]"),
     "pipeline 'chain': step 'use' needs 'prep', which is not defined (line 9)"),
    (("outputs: [out/numbers.txt]", "needs: [use]"), "steps form a cycle: make -> use -> make"),
    (("notebook: use.ipynb", "notebook: missing.ipynb"), "notebook 'missing.ipynb' does not exist"),
    (("notebook: use.ipynb", "notebook: plain.ipynb"), "has no cell tagged `parameters`"),
    (("params: {n: 3}", "params: {n: 3}\nschedule: 'every day'"), "not a valid cron expression"),
    (("x-${params.n}", "x-${params.m}"), "${params.m} names no pipeline parameter"),
    (("${steps.make.outputs.count}", "${steps.use.outputs.count}"),
     "refers to step 'use', which this step does not need"),
    (("${steps.make.outputs.count}", "${__import__('os').system('x')}"),
     "is not ${params.NAME}, ${steps.STEP.outputs.NAME} or ${models.NAME@ALIAS}"),
    (("outputs: [out/numbers.txt]", "outputs: [../../etc/passwd]"), "stay inside it"),
    (("outputs: [out/numbers.txt]", "outputs: [/etc/passwd]"), "stay inside it"),
    (("  use:\n", "  <script>:\n"), "step name '<script>'"),
    (("name: chain", "name: [1, 2]"), "`name` must be a string, got list"),
    (("name: chain\n", ""), "missing `name`"),
    (("params: {n: 3}", "params: {n: !!python/object:os.system x}"), "not valid YAML"),
    (("    needs: [make]\n", "    needs: [make\n"), "not valid YAML"),
    (("params: {n: 3}", "params: {'bad name': 3}"), "is not a Python identifier"),
])
def test_spec_errors_name_file_step_and_line(root: Path, change: tuple[str, str],
                                             message: str) -> None:
    old, new = change
    assert old in VALID
    path = write(root, VALID.replace(old, new, 1))
    with pytest.raises(InvalidInput) as info:
        load_spec(path, root)
    text = str(info.value)
    assert text.startswith(str(path)) and message in text
    assert "(line " in text


@pytest.mark.parametrize(("content", "message"), [
    ("", "is a mapping"),
    ("- a\n- b\n", "is a mapping"),
    ("name: x\nsteps: {}\n", "has no steps"),
    ("name: x\nsteps:\n  a: notebook.ipynb\n", "must be a mapping"),
])
def test_structural_errors(root: Path, content: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        load_spec(write(root, content), root)


def test_missing_and_huge_specs(root: Path) -> None:
    with pytest.raises(InvalidInput, match="no pipeline spec"):
        load_spec(root / "nope.yaml", root)
    huge = write(root, "name: x\n# " + "x" * (2 << 20) + "\n")
    with pytest.raises(InvalidInput, match="too large"):
        load_spec(huge, root)


def test_references_are_substituted_never_evaluated() -> None:
    values = {"params.n": 3, "count": 7}

    def lookup(ref: references.Reference):
        return values["params.n"] if ref.kind == "params" else values[ref.name]

    assert references.substitute("${params.n}", lookup) == 3
    assert references.substitute("n=${params.n}, c=${steps.a.outputs.count}", lookup) == "n=3, c=7"
    assert references.substitute({"x": ["${params.n}"]}, lookup) == {"x": [3]}
    with pytest.raises(references.BadReference):
        references.find("${1 + 1}")


def test_model_references_are_accepted_and_checked() -> None:
    ref = references.parse("${models.churn@production}")
    assert (ref.kind, ref.name) == ("models", "churn@production")
    assert references.parse("${models.churn:3}").name == "churn:3"
    for bad in ("${models.churn}", "${models.churn@Prod;rm}", "${models.../x@p}"):
        with pytest.raises(references.BadReference):
            references.parse(bad)
