"""The panel's REST routes in a real Jupyter server (pytest-jupyter's jp_fetch)."""

from __future__ import annotations

import json
import re

import pytest
import tornado.httpclient

from jupyter_mlops.lab.routes import ROUTES

pytest_plugins = ("pytest_jupyter.jupyter_server",)


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"jupyter_mlops.lab": True}}}


@pytest.fixture
def seeded(tracker, project):
    (project.root / "plot.png").write_bytes(b"\x89PNG not really")
    for index in range(5):
        with tracker.start_run(f"run-{index}") as run:
            run.log_params({"C": index / 10})
            run.log_metric("acc", 0.5 + index / 10)
            run.log_metric("loss", 1.0 / (index + 1), step=index)
            if index == 0:
                run.log_artifact(project.root / "plot.png", name="plots/plot.png")
    return tracker


async def get(jp_fetch, path: str, **params):
    response = await jp_fetch("jupyter-mlops", "api", path, params=params, method="GET")
    return json.loads(response.body)


async def test_runs_are_paged_newest_first(jp_fetch, seeded) -> None:
    first = await get(jp_fetch, "runs", limit="2")
    assert [r["name"] for r in first["runs"]] == ["run-4", "run-3"] and first["has_more"]
    last = await get(jp_fetch, "runs", limit="2", offset="4")
    assert [r["name"] for r in last["runs"]] == ["run-0"] and not last["has_more"]


async def test_runs_filter(jp_fetch, seeded) -> None:
    found = await get(jp_fetch, "runs", filter="metrics.acc > 0.75")
    assert [r["name"] for r in found["runs"]] == ["run-4", "run-3"]


async def test_one_run_and_compare(jp_fetch, seeded) -> None:
    detail = await get(jp_fetch, "runs/1")
    assert detail["run"]["name"] == "run-0"
    assert [p["key"] for p in detail["metric_history"]] == ["acc", "loss"]
    comparison = await get(jp_fetch, "compare", runs="1,2")
    differing = {row["key"] for row in comparison["rows"] if row["differs"]}
    assert {"C", "acc", "name"} <= differing


async def test_artifact_download(jp_fetch, seeded) -> None:
    response = await jp_fetch("jupyter-mlops", "api", "artifacts", "1", "plots", "plot.png")
    assert response.body == b"\x89PNG not really"
    assert response.headers["Content-Disposition"] == (
        "attachment; filename=\"plot.png\"; filename*=UTF-8''plot.png")
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_models(jp_fetch, seeded) -> None:
    body = await get(jp_fetch, "models")
    assert body["models"] == [] and "dashboard_url" in body


@pytest.mark.parametrize(("path", "params", "status", "message"), [
    ("runs", {"filter": "metrics.acc >"}, 400, "bad filter"),
    ("runs", {"limit": "x"}, 400, "whole number"),
    ("runs", {"limit": "100000"}, 400, "between 1 and 500"),
    ("runs", {"offset": "-1"}, 400, "between"),
    ("runs/999", {}, 404, "no run with id 999"),
    ("compare", {"runs": "1"}, 400, "2 to 10 run ids"),
    ("compare", {"runs": "1,abc"}, 400, "run ids"),
    ("compare", {"runs": "1,\u00b2"}, 400, "run ids"),
    ("compare", {"runs": "1,99999999999999999999"}, 400, "run ids"),
    ("compare", {"runs": "1,999"}, 404, "no run"),
    ("artifacts/1/../../mlops.db", {}, 404, None),
    ("artifacts/1/%2e%2e%2f%2e%2e%2fmlops.db", {}, 404, "no artifact"),
    ("artifacts/1/plots%2F..%2F..%2Fconfig.toml", {}, 404, "no artifact"),
    ("artifacts/999/plots/plot.png", {}, 404, "no artifact"),
])
async def test_bad_requests_are_json_4xx(jp_fetch, seeded, path, params, status,
                                         message) -> None:
    with pytest.raises(tornado.httpclient.HTTPClientError) as info:
        await jp_fetch("jupyter-mlops", "api", path, params=params, method="GET")
    assert info.value.code == status
    if message:
        assert message in json.loads(info.value.response.body)["message"]


async def test_every_route_refuses_requests_without_credentials(jp_serverapp, http_server_client,
                                                                seeded) -> None:
    base = jp_serverapp.base_url
    for pattern, handler in ROUTES:
        path = re.sub(r"\([^)]*\)", "1", pattern)
        for method in ("GET", "POST", "PUT", "DELETE", "PATCH"):
            if not hasattr(handler, method.lower()) or method != "GET" and \
                    getattr(handler, method.lower()) is getattr(tornado.web.RequestHandler,
                                                                method.lower()):
                continue
            response = await http_server_client.fetch(
                f"{base}jupyter-mlops/api/{path}", method=method, raise_error=False,
                body=None if method in ("GET", "DELETE") else b"{}")
            assert response.code == 403, (pattern, method, response.code)
