"""Issue 9, point 8: records glued into a step's notebook, and results sent back by
an executor, are checked before the runner reads or stores anything of them.

The pipeline test runs a real papermill kernel whose notebook forges a record
pointing at /etc/passwd. The executor test uses a stub executor standing in for
a Dask worker (it returns a forged `StepResult`, which is exactly what a
compromised or buggy worker sends back; starting a real cluster adds only time).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import blake3
import nbformat
import pytest

from jupyter_mlops.glue import JSON_SCRAP_MIME
from jupyter_mlops.pipelines.execution import StepResult, StepTask, check_step_result
from jupyter_mlops.pipelines.ingest import ingest
from jupyter_mlops.pipelines.runner import PipelineRunner
from jupyter_mlops.pipelines.spec import load_spec
from jupyter_mlops.project import Project
from jupyter_mlops.validation import RecordRefused

HEX = "ab" * 32
GOOD = "blake3:" + HEX


def notebook_with(records: dict[str, object]) -> dict:
    outputs = [{"output_type": "display_data", "metadata": {},
                "data": {JSON_SCRAP_MIME: {"name": name, "data": value, "encoder": "json",
                                           "version": 1}}}
               for name, value in records.items()]
    return {"cells": [{"cell_type": "code", "outputs": outputs}]}


FORGED = [
    ({"op": "artifact", "name": "stolen", "digest": "../../../etc/passwd", "size": 1,
      "kind": "artifact"}, "64 lowercase hex"),
    ({"op": "artifact", "name": "nl\nx", "digest": GOOD, "size": 1, "kind": "artifact"},
     "control"),
    ({"op": "artifact", "name": "../up", "digest": GOOD, "size": 1, "kind": "artifact"},
     "segment"),
    ({"op": "artifact", "name": "a", "digest": GOOD, "size": 1 << 50, "kind": "artifact"},
     "size"),
    ({"op": "artifact", "name": "a", "digest": GOOD, "size": 1, "kind": "../x"}, "kind"),
    ({"op": "artifact", "name": "a", "size": 1, "kind": "artifact"}, "digest"),
    ({"op": "model", "name": "../m", "digest": GOOD, "size": 1, "flavor": "skops"},
     "model name"),
    ({"op": "model", "name": "m", "digest": "blake3:" + HEX.upper(), "size": 1,
      "flavor": "skops"}, "64 lowercase hex"),
    ({"op": "predictions", "name": "m", "digest": "/etc/passwd", "rows": 1}, "digest"),
    ({"op": "dataset", "dataset": {"digest": "x", "kind": "file", "size": 1, "rows": None,
                                   "schema": None}, "role": "input", "source": "d"}, "digest"),
    ({"op": "dataset", "dataset": {"digest": GOOD, "kind": "file", "size": 1, "rows": None,
                                   "schema": None, "extra": 1}, "role": "input",
      "source": "d"}, "dataset"),
    ({"op": "metrics", "points": [["acc", "0.9", None, 1.0]]}, "number"),
    ({"op": "metrics", "points": "nope"}, "list"),
    ({"op": "params", "params": {"a\nb": "1"}}, "key"),
    ({"op": "params", "params": ["a"]}, "object"),
    ({"op": "end", "status": "hacked"}, "status"),
    ({"op": "tags", "tags": {"team": "a", "mlops.step": "other"}}, "'mlops.step' refused"),
    ({"op": "tags", "tags": {"mlops.pipeline_run": "1"}}, "set by the pipeline runner"),
    ({"op": "artifact", "name": "invoice\u202eslx.exe", "digest": GOOD, "size": 1,
      "kind": "artifact"}, "U\\+202E"),
    ({"op": "dataset", "dataset": {"digest": GOOD, "kind": "file", "size": 1, "rows": None,
                                   "schema": None}, "role": "input", "source": "a\u2028b"},
     "U\\+2028"),
    ({"op": "rm -rf"}, "unknown operation"),
    ("a string", "expected an object"),
]


@pytest.mark.parametrize("record, problem", FORGED)
def test_forged_records_are_refused_before_anything_is_read(record: object, problem: str
                                                            ) -> None:
    value = {"version": 1, **record} if isinstance(record, dict) else record
    good = {"version": 1, "op": "params", "params": {"C": "1"}}
    read: list[str] = []

    class Recorder:  # records what ingest would have written; it must write nothing
        def __getattr__(self, name: str):
            return lambda *args, **kw: read.append(name)

    notebook = notebook_with({"mlops.record.000001": good, "mlops.record.000002": value})
    with pytest.raises(RecordRefused, match=problem) as refused:
        ingest(notebook, Recorder(), 1, lambda digest: read.append(digest) or b"")
    assert "mlops.record.000002" in str(refused.value)
    assert read == []  # not even the good record before it was replayed


def test_a_record_of_an_unknown_version_is_refused() -> None:
    notebook = notebook_with({"mlops.record.000001": {"version": 99, "op": "params",
                                                      "params": {}}})
    with pytest.raises(RecordRefused, match="version"):
        ingest(notebook, None, 1, lambda d: b"")  # type: ignore[arg-type]


def all_stored_bytes(project: Project) -> bytes:
    found = b""
    for folder, _dirs, files in os.walk(project.artifacts_dir):
        for name in files:
            with open(os.path.join(folder, name), "rb") as f:
                found += f.read()
    return found


def forging_notebook(path: Path, record: dict) -> None:
    source = ("import json\nfrom jupyter_mlops.glue import glue\n"
              f"glue('mlops.record.000001', json.loads({json.dumps(record)!r}))\n")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    nbformat.write(notebook, path)


def run_spec(project: Project, store, spec: Path, **kwargs):
    return PipelineRunner(load_spec(spec, project.root), project, store, **kwargs).run()


def test_a_step_forging_a_digest_to_etc_passwd_fails_and_stores_nothing(project: Project,
                                                                        store) -> None:
    forging_notebook(project.root / "forge.ipynb",
                     {"version": 1, "op": "artifact", "name": "stolen",
                      "digest": "../../../../../../../../etc/passwd", "size": 10,
                      "kind": "artifact"})
    spec = project.root / "forge.yaml"
    spec.write_text("name: forge\nsteps:\n  steal:\n    notebook: forge.ipynb\n")
    outcome = run_spec(project, store, spec)
    step = outcome.steps["steal"]
    assert step.status == "failed"
    assert "step 'steal'" in step.error and "mlops.record.000001" in step.error
    assert "64 lowercase hex" in step.error
    names = [a.name for a in store.artifacts.for_run(step.run_id)]
    assert "stolen" not in names
    assert b"root:x:0:0" not in all_stored_bytes(project)


class ForgingExecutor:
    """Stands in for a Dask worker that sends back a forged result."""

    name = "forging"
    remote = True

    def __init__(self, outbox: dict[str, bytes], notebook: dict) -> None:
        self.outbox = outbox
        self.notebook = notebook

    def execute(self, task: StepTask) -> StepResult:
        return StepResult(step=task.step, notebook_json=json.dumps(self.notebook).encode(),
                          outbox_files=self.outbox)

    def interrupt(self) -> None: ...
    def close(self) -> None: ...


@pytest.mark.parametrize("kind", ["traversal", "mismatch"])
def test_forged_results_from_a_remote_executor_are_refused(project: Project, store,
                                                            kind: str) -> None:
    secret = b"SECRET-FROM-THE-WORKER-HOST"
    honest = b"what the step claims to have staged"
    digest = "blake3:" + blake3.blake3(honest).hexdigest()
    record = {"version": 1, "op": "artifact", "name": "data.bin", "digest": digest,
              "size": len(honest), "kind": "artifact"}
    outbox = ({"../../../../etc/passwd": secret} if kind == "traversal"
              else {digest.replace(":", "-"): secret})
    (project.root / "step.ipynb").write_text(json.dumps(nbformat.v4.new_notebook()))
    spec = project.root / "remote.yaml"
    spec.write_text("name: remote\nsteps:\n  fit:\n    notebook: step.ipynb\n")
    executor = ForgingExecutor(outbox, notebook_with({"mlops.record.000001": record}))
    outcome = run_spec(project, store, spec, executor=executor)
    step = outcome.steps["fit"]
    assert step.status == "failed" and "step 'fit'" in step.error
    assert ("refused" if kind == "traversal" else "corrupted") in step.error
    assert "data.bin" not in [a.name for a in store.artifacts.for_run(step.run_id)]
    assert secret not in all_stored_bytes(project)


def test_a_result_for_another_step_is_refused() -> None:
    with pytest.raises(Exception, match="result of step"):
        check_step_result(StepResult(step="other", notebook_json=b""), "fit")


def test_a_step_cannot_overwrite_the_runners_tags(project: Project, store) -> None:
    """`mlops.pipeline`, `mlops.step`, `mlops.pipeline_run` are the runner's: a step
    that glues its own fails, naming the step and the tag, and the runner's stay."""
    forging_notebook(project.root / "retag.ipynb",
                     {"version": 1, "op": "tags",
                      "tags": {"mlops.pipeline_run": "999", "mlops.step": "deploy"}})
    spec = project.root / "retag.yaml"
    spec.write_text("name: retag\nsteps:\n  fit:\n    notebook: retag.ipynb\n")
    outcome = run_spec(project, store, spec)
    step = outcome.steps["fit"]
    assert step.status == "failed"
    assert "step 'fit'" in step.error and "'mlops.pipeline_run' refused" in step.error
    tags = store.runs.get(step.run_id).tags
    assert tags["mlops.step"] == "fit" and tags["mlops.pipeline"] == "retag"
    assert tags["mlops.pipeline_run"] == str(outcome.pipeline_run_id)


def test_tags_set_inside_a_step_are_checked_where_they_are_set(project: Project, store
                                                                ) -> None:
    """Through the API inside a real step kernel: the cell fails, not a later ingest;
    the step's own tags, and the run name the runner records, still work."""
    source = ("import jupyter_mlops as mlops\n"
              "run = mlops.start_run(name='named', tags={'team': 'churn'})\n"
              "mlops.set_tags({'mlops.step': 'deploy'})\n")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    nbformat.write(notebook, project.root / "tagging.ipynb")
    spec = project.root / "tagging.yaml"
    spec.write_text("name: tagging\nsteps:\n  fit:\n    notebook: tagging.ipynb\n")
    outcome = run_spec(project, store, spec)
    step = outcome.steps["fit"]
    assert step.status == "failed" and "step 'fit'" in step.error
    assert "'mlops.step' refused" in step.error and "cell 1" in step.error
    tags = store.runs.get(step.run_id).tags
    assert tags["mlops.step"] == "fit"
    assert tags.get("team") == "churn" and tags.get("mlops.notebook_run_name") == "named"
