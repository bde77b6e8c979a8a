"""Hostile requests to a real `mlops serve` (issue 9, points 12 and 13).

One service process for the module, reached with raw `http.client` requests as
an attacker's page or script would send them: a rebinding `Host`, a cross-site
`text/plain` POST, a foreign `Origin`, an 11 MiB body, JSON 10,000 levels deep.
Each is refused with the right status and a JSON message, is one line in the
service's log (never the body), is not logged as a prediction, and the service
still answers a valid request afterwards.
"""

from __future__ import annotations

import http.client
import json
import signal
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import jupyter_mlops as mlops
from jupyter_mlops.errors import NotFound
from jupyter_mlops.monitoring.predlog import INPUT_PREFIX, PredictionLog
from jupyter_mlops.store import Store
from jupyter_mlops.tracking import Tracker

from ..helpers import ServedModel, start_serve, wait_for

X, Y = load_breast_cancer(return_X_y=True, as_frame=True)
ROW = {k: float(v) for k, v in X.iloc[0].items()}
CORS_ORIGIN = "http://ok.example"
MIB = 1 << 20


Service = ServedModel


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: dict


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("scoring")
    project = mlops.init(root)
    tracker = Tracker(project)
    with tracker.start_run("train") as run:
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, Y)
        run.log_model(model, name="cancer", input_example=X)
    tracker.close()
    with Store(project.db_path) as store:
        store.releases.set_alias("cancer", "production", 1, actor="test", reason="first")
    served = start_serve(project, "cancer@production", "--allow-host", "models.internal",
                         "--cors-origin", CORS_ORIGIN, "--max-body-mb", "10", "--poll", "0.5")
    yield served
    if served.proc.poll() is None:
        served.proc.send_signal(signal.SIGTERM)
        served.proc.wait(timeout=60)


def send(service: Service, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> Reply:
    """One request on a fresh connection; `Host` defaults to 127.0.0.1:PORT."""
    conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=60)
    try:
        conn.request(method, path, body=body,
                     headers={"Host": f"127.0.0.1:{service.port}", **(headers or {})})
        response = conn.getresponse()
        raw = response.read()
        return Reply(response.status, response.headers, json.loads(raw) if raw else {})
    finally:
        conn.close()


def predict(service: Service, instance: dict | None = None,
            headers: dict[str, str] | None = None) -> Reply:
    body = json.dumps({"instances": [instance or ROW]}).encode()
    return send(service, "POST", "/predict", body,
                {"Content-Type": "application/json", **(headers or {})})


def assert_still_serving(service: Service) -> None:
    assert service.proc.poll() is None, service.log_text()
    reply = predict(service)
    assert reply.status == 200 and reply.body["model"] == "cancer:1", reply.body
    assert "Traceback" not in service.log_text()


def logged_inputs(service: Service, request_id: str) -> list[float]:
    """Every logged value of `mean radius`, once the row of `request_id` is flushed.

    Rows are flushed in arrival order, so when a later valid request's row is
    there, an earlier request's row would be there too.
    """
    def rows():  # noqa: ANN202
        with Store(service.project.db_path) as store:
            try:
                return PredictionLog(service.project).read(store, "cancer")
            except NotFound:  # nothing flushed yet
                return None

    assert wait_for(lambda: (logged := rows()) is not None
                    and request_id in set(logged["request_id"]), timeout=30)
    return list(rows()[INPUT_PREFIX + "mean radius"].dropna())


# -- point 12: Host header (DNS rebinding) ---------------------------------------------

@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/health"), ("GET", "/metadata"), ("GET", "/openapi.json"),
    ("POST", "/predict"), ("OPTIONS", "/predict"), ("GET", "/anything/else"),
])
@pytest.mark.parametrize("host", ["evil.com", "evil.com:8080", "localhost.evil.com",
                                  "127.0.0.1.nip.io"])
def test_a_foreign_host_is_refused_on_every_route(service, method, path, host) -> None:
    body = json.dumps({"instances": [ROW]}).encode() if method == "POST" else None
    reply = send(service, method, path, body,
                 {"Host": host, "Content-Type": "application/json"})
    assert reply.status == 403, (reply.status, reply.body)
    assert host.split(":")[0] in reply.body["message"]
    assert "--allow-host" in reply.body["message"]
    assert "predictions" not in reply.body and "signature" not in reply.body


def test_a_rebinding_page_gets_no_prediction_and_none_is_logged(service) -> None:
    reply = predict(service, {**ROW, "mean radius": 4242.5},
                    {"Host": "evil.com", "Origin": "http://evil.com"})
    assert reply.status == 403
    later = predict(service)
    assert 4242.5 not in logged_inputs(service, later.body["request_ids"][0])
    assert wait_for(lambda: "refused 403 POST /predict" in service.log_text())


def test_a_request_without_host_is_refused(service) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=60)
    conn.putrequest("GET", "/health", skip_host=True)
    conn.endheaders()
    response = conn.getresponse()
    # HTTP/1.1 requires Host: Tornado answers 400 itself, before any route.
    assert response.status in (400, 403) and b'"ok"' not in response.read()
    conn.close()


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]", "models.internal",
                                  "MODELS.INTERNAL."])
def test_the_bound_address_loopback_names_and_allow_host_are_answered(service, host) -> None:
    reply = send(service, "GET", "/health", headers={"Host": f"{host}:{service.port}"})
    assert reply.status == 200 and reply.body["status"] == "ok"


# -- point 13: content type, origin, CORS ------------------------------------------------

@pytest.mark.parametrize("content_type", [
    "text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x", None, "application/json-seq",
    "application/json; charset=latin-1",
])
def test_a_cross_site_simple_post_is_415_and_not_a_prediction(service, content_type) -> None:
    marker = 9191.5
    headers = {"Content-Type": content_type} if content_type else {}
    reply = send(service, "POST", "/predict",
                 json.dumps({"instances": [{**ROW, "mean radius": marker}]}).encode(), headers)
    assert reply.status == 415, reply.body
    assert "application/json" in reply.body["message"]
    later = predict(service)
    assert marker not in logged_inputs(service, later.body["request_ids"][0])
    assert_still_serving(service)


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8",
                                          "Application/JSON;charset=\"UTF-8\""])
def test_json_with_or_without_charset_is_accepted(service, content_type) -> None:
    reply = send(service, "POST", "/predict", json.dumps({"instances": [ROW]}).encode(),
                 {"Content-Type": content_type})
    assert reply.status == 200, reply.body


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://ok.example.evil.com",
                                    "https://ok.example", "http://ok.example:8080"])
def test_a_browser_request_from_another_origin_is_refused(service, origin) -> None:
    reply = predict(service, headers={"Origin": origin})
    assert reply.status == 403 and "--cors-origin" in reply.body["message"]
    assert "Access-Control-Allow-Origin" not in reply.headers
    health = send(service, "GET", "/health", headers={"Origin": origin})
    assert health.status == 403
    preflight = send(service, "OPTIONS", "/predict", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert preflight.status == 403
    assert "Access-Control-Allow-Origin" not in preflight.headers
    assert_still_serving(service)


def test_the_cors_origin_gets_a_preflight_and_only_it(service) -> None:
    preflight = send(service, "OPTIONS", "/predict", headers={
        "Origin": CORS_ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == CORS_ORIGIN
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "content-type" in preflight.headers["Access-Control-Allow-Headers"].lower()
    assert "Origin" in preflight.headers["Vary"]
    reply = predict(service, headers={"Origin": CORS_ORIGIN})
    assert reply.status == 200
    assert reply.headers["Access-Control-Allow-Origin"] == CORS_ORIGIN
    same_host = predict(service, headers={"Origin": f"http://localhost:{service.port}"})
    assert same_host.status == 200
    assert "Access-Control-Allow-Origin" not in same_host.headers


# -- point 13: sizes and depth -----------------------------------------------------------

def test_an_11_mib_body_is_413_logged_in_one_line_without_the_body(service) -> None:
    body = b'{"instances": [' + b'"' + b"A" * (11 * MIB) + b'"]}'
    reply = send(service, "POST", "/predict", body, {"Content-Type": "application/json"})
    assert reply.status == 413, reply.body
    assert "10 MiB" in reply.body["message"] and "--max-body-mb" in reply.body["message"]
    assert wait_for(lambda: "refused 413 POST /predict" in service.log_text())
    assert "AAAAAAAAAA" not in service.log_text()
    assert_still_serving(service)


def test_a_huge_declared_body_is_413_from_the_headers_alone(service) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=60)
    conn.putrequest("POST", "/predict")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(1 << 40))  # 1 TiB, never sent
    conn.endheaders()
    response = conn.getresponse()
    assert response.status == 413 and "over the limit" in json.loads(response.read())["message"]
    conn.close()
    assert_still_serving(service)


def test_a_chunked_body_over_the_limit_is_413(service) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"instances": ["'
        for _ in range(11):
            yield b"B" * MIB
        yield b'"]}'

    conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=60)
    conn.request("POST", "/predict", body=chunks(), encode_chunked=True,
                 headers={"Content-Type": "application/json",
                          "Transfer-Encoding": "chunked"})
    response = conn.getresponse()
    assert response.status == 413, response.read()
    conn.close()
    assert_still_serving(service)


@pytest.mark.parametrize("body", [
    b"[" * 10_000 + b"]" * 10_000,
    b'{"instances": ' + b'{"a": ' * 10_000 + b"1" + b"}" * 10_000 + b"}",
    b"[" * 10_000,  # unclosed as well
    b"[" * 33 + b"]" * 33,  # just over the limit of 32
])
def test_deeply_nested_json_is_400_never_500(service, body) -> None:
    reply = send(service, "POST", "/predict", body, {"Content-Type": "application/json"})
    assert reply.status == 400, reply.body
    assert "nested deeper than 32" in reply.body["message"]
    assert wait_for(lambda: "refused 400 POST /predict" in service.log_text())
    assert "[[[[[[[[[[" not in service.log_text() and '{"a": {"a"' not in service.log_text()
    assert_still_serving(service)


def test_brackets_inside_strings_do_not_count_as_depth(service) -> None:
    body = json.dumps({"instances": [{**ROW, "mean area": "[" * 100}]}).encode()
    reply = send(service, "POST", "/predict", body, {"Content-Type": "application/json"})
    assert reply.status == 422 and reply.body["field"] == "instances[0].mean area"


def test_a_thousand_rows_are_not_too_deep(service) -> None:
    body = json.dumps({"instances": [ROW] * 1000}).encode()
    reply = send(service, "POST", "/predict", body, {"Content-Type": "application/json"})
    assert reply.status == 200 and len(reply.body["predictions"]) == 1000


def test_every_refusal_is_one_log_line(service) -> None:
    assert send(service, "GET", "/health", headers={"Host": "evil.com"}).status == 403
    assert wait_for(lambda: "refused 403 GET /health" in service.log_text())
    lines = [line for line in service.log_text().splitlines() if "refused" in line]
    assert lines and all(line.startswith("mlops serve: refused ") for line in lines), lines[:5]
    assert all(len(line) < 1200 for line in lines)


# -- the rules without a server ---------------------------------------------------------

@pytest.mark.parametrize(("option", "value"), [
    ("--cors-origin", "*"), ("--cors-origin", "http://ok.example/path"),
    ("--cors-origin", "ok.example"), ("--cors-origin", "javascript:alert(1)"),
    ("--allow-host", "*"), ("--allow-host", "0.0.0.0"), ("--allow-host", "http://x"),
    ("--allow-host", "models.internal:8080"), ("--max-body-mb", "0"),
    ("--max-body-mb", "-1"),
])
def test_bad_options_are_one_line_errors(option, value, capsys) -> None:
    from jupyter_mlops.cli.main import main

    assert main(["serve", "cancer@production", option, value]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"mlops: error: {option}") and err.count("\n") == 1, err


def _reference_depth(body: bytes) -> int:
    """Deepest nesting outside strings, one character at a time (slow and obviously right)."""
    depth = deepest = 0
    inside = escaped = False
    for char in body.decode():
        if inside:
            escaped, inside = (False, inside) if escaped else (char == "\\", char != '"')
        elif char == '"':
            inside = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def test_the_depth_scan_agrees_with_a_reference_scanner() -> None:
    import random

    from jupyter_mlops.scoring.guard import nesting_exceeds

    rng = random.Random(7)
    pieces = ["[", "]", "{", "}", '"', "\\", "x", "\\\\", '\\"', "é"]

    def value(depth: int):  # noqa: ANN202
        roll = rng.random()
        if depth > 12 or roll < 0.5:
            return "".join(rng.choice(pieces) for _ in range(rng.randint(0, 5)))
        if roll < 0.75:
            return [value(depth + 1) for _ in range(rng.randint(1, 2))]
        return {str(value(depth + 1))[:10]: value(depth + 1) for _ in range(rng.randint(1, 2))}

    for _ in range(2000):
        body = json.dumps(value(0), ensure_ascii=rng.random() < 0.5).encode()
        deepest = _reference_depth(body)
        for limit in (1, 2, 3, 5):
            assert nesting_exceeds(body, limit) == (deepest > limit), body
