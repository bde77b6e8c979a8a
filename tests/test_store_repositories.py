"""Every repository of the store answers the same on SQLite and on PostgreSQL.

Each test runs twice (ids `sqlite`, `postgresql`): the store is a real SQLite
file, or a fresh database on the session's PostgreSQL cluster.
"""

from __future__ import annotations

import math
import sqlite3
import time
import uuid

import pytest

from jupyter_mlops.errors import Conflict, IntegrityError, InvalidInput, NotFound
from jupyter_mlops.store import Store
from jupyter_mlops.store.gates import GateResult
from jupyter_mlops.store.records import DatasetVersion, Environment, StepFailure
from jupyter_mlops.store.runs import NewRun

pytestmark = pytest.mark.both_backends


def _run(store: Store, name: str = "r", **fields: object) -> int:
    return store.runs.create(NewRun(uuid=uuid.uuid4().hex, name=name, started_at=time.time(),
                                    source_kind="script", **fields))


def test_runs_round_trip_every_field(store: Store) -> None:
    run_id = _run(store, "full", notebook="a.ipynb", code_digest="blake3:ab", git_commit="c0",
                  git_branch="main", git_dirty=True, python="3.11", host="h", user="alice",
                  pid=123)
    store.runs.update_source(run_id, notebook="b.ipynb", code_digest="blake3:cd")
    store.runs.log_params(run_id, {"C": "0.5", "<script>": "x' OR '1'='1"})
    store.runs.set_tags(run_id, {"team": "a"})
    store.runs.set_tags(run_id, {"team": "b"})  # replaced
    store.runs.end(run_id, "finished", at=1000.0)
    run = store.runs.get(run_id)
    assert (run.notebook, run.code_digest, run.git_dirty, run.user) == \
        ("b.ipynb", "blake3:cd", True, "alice")
    assert run.params == {"C": "0.5", "<script>": "x' OR '1'='1"}
    assert run.tags == {"team": "b"} and run.status == "finished" and run.ended_at == 1000.0
    assert store.runs.resolve(run.uuid[:12]).id == run_id
    with pytest.raises(NotFound):
        store.runs.get(2**63)  # past any stored id: not found, not an overflow
    with pytest.raises(NotFound):
        store.runs.resolve("../../etc/passwd")
    with pytest.raises(InvalidInput):
        store.runs.search(limit=-1)
    assert [r.id for r in store.runs.search(limit=2**70)] == [run_id]


def test_a_nul_character_is_refused_on_both(store: Store) -> None:
    run_id = _run(store)
    with pytest.raises(InvalidInput, match="NUL"):
        store.runs.set_tags(run_id, {"note": "a\x00b"})
    if store.dialect == "postgresql":  # any other text: a clear error, nothing kept
        with pytest.raises(InvalidInput, match="NUL"):
            store.runs.update_source(run_id, notebook="a\x00b.ipynb", code_digest=None)
    assert store.runs.get(run_id).tags == {}


def test_metrics_keep_history_order_nan_and_infinities(store: Store) -> None:
    run_id = _run(store)
    now = time.time()
    store.runs.log_metrics(run_id, [("loss", 1.0, 0, now), ("loss", math.nan, 1, now),
                                    ("up", math.inf, None, now), ("down", -math.inf, None, now)])
    store.runs.log_metrics(run_id, [("loss", 0.5, 2, now)])
    store.runs.log_metrics(run_id, [])  # no points: nothing written, no error
    history = store.runs.metric_history(run_id, "loss")
    assert [p.step for p in history] == [0, 1, 2]
    assert math.isnan(history[1].value)
    assert store.runs.get(run_id).metrics == {"loss": 0.5, "up": math.inf, "down": -math.inf}


def test_a_batch_of_points_is_stored_as_logged(store: Store) -> None:
    """Many points at once (PostgreSQL: one COPY, one upsert of every key's latest):
    the same history, NaN as NaN, a backslash kept, the latest by step."""
    run_id = _run(store)
    now = time.time()
    points = [(f"k{i % 3}", float(i), i, now + i) for i in range(30)]
    points += [("back\\slash", 2.0, 0, now), ("back\\slash", math.nan, 1, now),
               ("back\\slash", 9.0, None, now), ("k0", -1.0, 5, now),
               ("n", 1.0, 2, now), ("n", math.nan, 3, now)]
    store.runs.log_metrics(run_id, points)
    history = store.runs.metric_history(run_id)
    assert [(p.key, p.step) for p in history] == sorted(
        [(k, s) for k, _, s, _ in points], key=lambda ks: ks[0])  # by key, then as logged
    assert [history[0].value, history[2].value] == [2.0, 9.0] and math.isnan(history[1].value)
    latest = store.runs.get(run_id).metrics
    assert latest["k0"] == 27.0 and latest["k2"] == 29.0  # step 5 is older than step 27
    assert latest["back\\slash"] == 9.0  # a point without a step wins
    assert [r.id for r in store.runs.search("metrics.k1 = 28")] == [run_id]
    assert math.isnan(latest["n"])  # stored as SQLite stores it (NULL), found as NaN
    assert [r.id for r in store.runs.search("metrics.n = nan")] == [run_id]


@pytest.mark.parametrize(("expression", "names"), [
    ("metrics.loss = nan", ["nan"]),
    ("metrics.loss != nan", ["inf", "one"]),
    ("metrics.loss > 0.5", ["inf", "one"]),
    ("metrics.loss < inf", ["one"]),
    ("metrics.loss > inf", []),
    ("metrics.loss >= inf", ["inf"]),
    ("metrics.loss <= -inf", []),
    ("not metrics.loss > 0.5", ["nan"]),
    ("params.n > 2", ["one"]),  # params are text: compared as numbers when given one
    ("params.n < 1", ["inf", "nan"]),  # '' and 'abc' read as 0, as SQLite's CAST does
    ("name like 'N%'", ["nan"]),  # like ignores ASCII case
    ("name like 'n_n'", ["nan"]),
    ("name like 'o\\\\e'", []),  # a backslash is a plain character, not an escape
    ("user = 'bob'", ["one"]),
    ("id <= '1'", ["one"]),  # a quoted number compares with a number column as a number
    ("name = 1", []),  # a number compares with a text column as text ('1.0')
    ("host != 1", []),  # NULL compares with nothing
])
def test_filters_answer_the_same_on_both(store: Store, expression: str,
                                         names: list[str]) -> None:
    now = time.time()
    for name, value, param in (("one", 1.0, "10"), ("nan", math.nan, "abc"),
                               ("inf", math.inf, "")):
        run_id = _run(store, name, user="bob" if name == "one" else None)
        store.runs.log_metrics(run_id, [("loss", value, None, now)])
        store.runs.log_params(run_id, {"n": param})
    assert sorted(r.name for r in store.runs.search(expression)) == names


@pytest.mark.parametrize("expression", ["id = 'abc'", "git_dirty > 'x'", "id like '1%'"])
def test_text_for_a_number_attribute_is_a_syntax_error(store: Store, expression: str) -> None:
    from jupyter_mlops.errors import FilterSyntaxError

    with pytest.raises(FilterSyntaxError, match="is a number"):
        store.runs.search(expression)


def test_datasets_artifacts_and_environments(store: Store) -> None:
    run_id = _run(store)
    version = DatasetVersion(digest="blake3:d1", kind="file", size=10, rows=3,
                             schema={"a": "int64"})
    store.datasets.link(run_id, version, "input", "data/a.csv")
    store.datasets.link(run_id, version, "input", "data/a.csv")  # once per digest
    store.datasets.link(run_id, DatasetVersion("blake3:d2", "dataframe", None, 2, None),
                        "output", "df")
    assert [d.dataset.digest for d in store.datasets.for_run(run_id)] == \
        ["blake3:d1", "blake3:d2"]
    assert store.datasets.get("blake3:d1") == version
    assert store.datasets.runs_using("blake3:d2") == [(run_id, "output")]
    assert [v.digest for v in store.datasets.recent()] == ["blake3:d2", "blake3:d1"]
    assert store.datasets.recent(1, 1) == [version]
    assert sorted(store.datasets.uses(["blake3:d1", "blake3:d2"])) == [
        ("blake3:d1", run_id, "input", "data/a.csv"), ("blake3:d2", run_id, "output", "df")]
    assert store.datasets.uses([]) == []
    with pytest.raises(InvalidInput):
        store.datasets.link(run_id, version, "sideways", "x")

    store.artifacts.link(run_id, "b.txt", "blake3:b", 2, "artifact")
    store.artifacts.link(run_id, "a.txt", "blake3:a", 1, "artifact")
    store.artifacts.record("blake3:loose", 5)
    assert [a.name for a in store.artifacts.for_run(run_id)] == ["b.txt", "a.txt"]
    store.artifacts.link(run_id, "b.txt", "blake3:b", 2, "artifact")  # replaced: moves last
    assert [a.name for a in store.artifacts.for_run(run_id)] == ["a.txt", "b.txt"]
    assert list(store.artifacts.all_digests()) == [("blake3:a", 1), ("blake3:b", 2),
                                                   ("blake3:loose", 5)]
    with store.artifacts.locked_references() as digests:
        assert digests == {"blake3:a", "blake3:b", "blake3:loose"}
    with pytest.raises(sqlite3.IntegrityError):  # a link to a run that does not exist
        store.artifacts.link(10**9, "x", "blake3:x", 1, "artifact")

    environment = Environment("blake3:e", "3.11", {"numpy": "2.0"})
    store.environments.save(environment)
    store.environments.save(environment)
    assert store.environments.get("blake3:e") == environment


def test_models_gates_releases_and_the_audit_chain(store: Store) -> None:
    run_id = _run(store)
    first = store.models.register("churn", digest="blake3:m1", flavor="sklearn", run_id=run_id,
                                  signature={"in": ["a"]}, input_datasets=["blake3:d"],
                                  actor="alice", size=10, profile={"rows": 1})
    second = store.models.register("churn", digest="blake3:m2", flavor="sklearn",
                                   run_id=run_id, signature=None, input_datasets=[],
                                   actor="alice", size=20)
    assert (first.version, second.version) == (1, 2)
    assert store.models.resolve("churn").version == 2
    assert store.models.names() == ["churn"]
    assert [m.version for m in store.models.for_run(run_id)] == [1, 2]
    assert store.predictions.profile("churn", 1) == {"rows": 1}

    evaluation = store.gates.add_evaluation("churn", 2, "blake3:d", {"acc": 0.9})
    assert store.gates.evaluations("churn", 2) == [evaluation]
    result = GateResult("churn", 2, "min_acc", None, None, True, 0.9, 0.8, "blake3:d", "ok",
                        time.time())
    store.gates.record([result], actor="alice")
    assert store.gates.latest("churn", 2) == [result]

    store.releases.set_alias("churn", "staging", 1, actor="alice", reason="first")
    request = store.releases.request("churn", 2, "staging", requester="alice", reason="better",
                                     evidence={"gates_passed": True,
                                               "data": {"digest": "blake3:d"}})
    with pytest.raises(Conflict, match="already pending"):
        store.releases.request("churn", 2, "staging", requester="alice", reason="again",
                               evidence={})
    decided = store.releases.decide(request.id, decision="approve", actor="bob", reason="ok")
    assert decided.status == "approved"
    assert store.models.resolve("churn@staging").version == 2
    assert store.releases.latest_approved(name="churn").id == request.id
    assert [r.id for r in store.releases.list(status="approved")] == [request.id]

    report = store.audit.verify()
    assert report.ok and report.rows == 7, report
    assert store.audit.head() == report.head
    assert store.audit.alias_problems() == []
    assert [e.action for e in store.audit.entries(limit=2)] == ["alias moved",
                                                                "release approved"]


def test_a_release_request_edited_in_the_database_is_refused(store: Store) -> None:
    store.models.register("m", digest="blake3:m", flavor="sklearn", run_id=None,
                          signature=None, input_datasets=[], actor="alice", size=1)
    request = store.releases.request("m", 1, "production", requester="alice", reason="r",
                                     evidence={"gates_passed": False})
    with store.transaction() as conn:
        conn.execute("UPDATE release_requests SET requester = 'mallory' WHERE id = ?",
                     (request.id,))
    with pytest.raises(IntegrityError, match="requester"):
        store.releases.decide(request.id, decision="approve", actor="bob", reason="ok")


def test_the_audit_log_is_append_only_and_edits_are_found(store: Store) -> None:
    for version in range(3):
        store.models.register("m", digest=f"blake3:{version}", flavor="sklearn", run_id=None,
                              signature=None, input_datasets=[], actor="alice", size=1)
    for statement in ("UPDATE audit_log SET actor = 'mallory' WHERE id = 2",
                      "DELETE FROM audit_log WHERE id = 3"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"), \
                store.transaction() as conn:
            conn.execute(statement)
    assert store.audit.verify().ok
    # Whoever owns the database can drop the trigger; the MACs still find the edit.
    with store.transaction() as conn:
        if store.dialect == "postgresql":
            conn.execute("ALTER TABLE audit_log DISABLE TRIGGER USER")
        else:
            conn.execute("DROP TRIGGER audit_log_no_update")
        conn.execute("UPDATE audit_log SET actor = 'mallory' WHERE id = 2")
    report = store.audit.verify()
    assert report.first_broken == 2 and "MAC" in report.problem
    with pytest.raises(Conflict, match="can't be chained onto|nothing was written"):
        with store.transaction() as conn:  # the next append checks the last row only
            conn.execute("UPDATE audit_log SET actor = 'eve' WHERE id = 3")
        store.models.register("m", digest="blake3:x", flavor="sklearn", run_id=None,
                              signature=None, input_datasets=[], actor="alice", size=1)


def test_pipelines_and_the_step_cache(store: Store) -> None:
    pipeline_id = store.pipelines.start("train", "pipelines/train.yaml", "blake3:s", "manual",
                                        ["prep", "fit"])
    run_id = _run(store)
    store.pipelines.update_step(pipeline_id, "prep", status="finished", run_id=run_id,
                                cache_key="k1", params={"a": 1}, warnings=["w"])
    store.pipelines.update_step(pipeline_id, "fit", status="failed",
                                failure=StepFailure(kind="notebook", message="boom", cell=3))
    store.pipelines.finish(pipeline_id, "failed", "fit failed")
    pipeline = store.pipelines.get(pipeline_id)
    assert [(s.step, s.status) for s in pipeline.steps] == [("prep", "finished"),
                                                             ("fit", "failed")]
    assert pipeline.steps[0].params == {"a": 1} and pipeline.steps[0].warnings == ("w",)
    assert pipeline.steps[1].failure.cell == 3
    assert store.pipelines.cached_step("k1").run_id == run_id
    assert store.pipelines.step_of_run(run_id).step == "prep"
    assert [p.id for p in store.pipelines.recent("train")] == [pipeline_id]
    assert not store.pipelines.is_running("train")
    with pytest.raises(NotFound):
        store.pipelines.get(2**64)


def test_prediction_batches_compaction_and_labels(store: Store) -> None:
    ids = [store.predictions.add_batch("churn", 1, f"p/{i}.parquet", 10, 0, i, i + 1,
                                       "service") for i in range(3)]
    assert len(set(ids)) == 3
    batches = store.predictions.batches("churn")
    merged = store.predictions.replace_batches("churn", batches, "p/merged.parquet", 30, 0,
                                               "service")
    assert [b.id for b in store.predictions.batches("churn")] == [merged]
    assert store.predictions.replace_batches("churn", batches, "p/again", 30, 0,
                                             "service") is None
    assert sorted(store.predictions.retired_files("churn")) == [f"p/{i}.parquet"
                                                                for i in range(3)]
    store.predictions.forget_retired(["p/0.parquet"])
    assert len(store.predictions.retired_files("churn")) == 2
    store.predictions.add_labels("churn", "labels/1.parquet", 5)
    assert store.predictions.label_files("churn") == ["labels/1.parquet"]
    assert store.predictions.monitored_models() == ["churn"]
    assert store.predictions.indexed_paths("churn") == {"p/merged.parquet"}
