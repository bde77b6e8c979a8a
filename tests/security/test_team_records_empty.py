"""Records the schema allows but that carry nothing (a metrics record without points)
are applied as nothing, on both backends: on PostgreSQL the empty batch of points
reached an upsert of zero arrays, a 500 that wedged the run's stream (every retry
of the batch failed the same way)."""

from __future__ import annotations

import uuid

import pytest

from ..team import team_server


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def team(request, tmp_path_factory):
    return team_server(request, tmp_path_factory, request.param)


def test_a_metrics_record_without_points_is_applied_as_nothing(team):
    stream = uuid.uuid4().hex
    records = [{"op": "start", "run": {"uuid": stream, "name": "empty",
                                       "started_at": 1_700_000_000.0,
                                       "source_kind": "notebook"}},
               {"op": "metrics", "points": []},
               {"op": "params", "params": {}},
               {"op": "metrics", "points": [["acc", 0.5, None, 1_700_000_001.0]]},
               {"op": "end", "status": "finished", "error": None}]
    numbered = [{"seq": seq, "version": 1, **r} for seq, r in enumerate(records, 1)]
    answer = team.post("/api/v1/records", "writer", json={"stream": stream,
                                                          "records": numbered})
    assert answer.status_code == 200, answer.text
    assert answer.json()["applied_seq"] == 5
    found = team.post("/api/v1/read", "reader",
                      json={"call": "runs.metric_history", "args": [answer.json()["run_id"]]})
    assert [p["fields"]["value"] for p in found.json()["result"]] == [0.5]
