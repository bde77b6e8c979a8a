"""`mlops serve` answers odd but legal HTTP as a careful service would (issue 9).

`HEAD` is GET without the body; a 405 says which methods are allowed;
`Expect: 100-continue` gets its interim 100 only when the request will be read,
and a refusal before the body is sent; a body in UTF-16 or UTF-32, or bytes that
are not UTF-8, is refused by name; a number no float64 or int64 holds is a 422
naming the field, and so is an input the model itself cannot score (an overflow
inside it, a non-finite output), logged once as a failure, never a 500.

One real service for the module, a small regressor whose scaler turns 1e308
into infinity and whose output overflows for +-1e300.
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import jupyter_mlops as mlops
from jupyter_mlops.errors import NotFound
from jupyter_mlops.monitoring.predlog import INPUT_PREFIX, PredictionLog
from jupyter_mlops.store import Store
from jupyter_mlops.tracking import Tracker

from ..helpers import ServedModel, start_serve, wait_for

ROW = {"a": 0.1, "b": 0.2, "n": 1}


Service = ServedModel


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    raw: bytes

    @property
    def body(self) -> dict:
        return json.loads(self.raw) if self.raw else {}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("serve-http")
    project = mlops.init(root)
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(0, 0.5, 200), "b": rng.normal(0, 0.5, 200),
                      "n": rng.integers(0, 5, 200)})
    model = make_pipeline(StandardScaler(), LinearRegression()).fit(x, 1e10 * (x.a + x.b))
    tracker = Tracker(project)
    with tracker.start_run("train") as run:
        run.log_model(model, name="reg", input_example=x)
    tracker.close()
    with Store(project.db_path) as store:
        store.releases.set_alias("reg", "production", 1, actor="test", reason="first")
    served = start_serve(project, "reg@production", "--max-body-mb", "1", "--poll", "0.5")
    yield served
    if served.proc.poll() is None:
        served.proc.send_signal(signal.SIGTERM)
        served.proc.wait(timeout=60)


def send(service: Service, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> Reply:
    conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        conn.close()


def predict(service: Service, instance: dict | bytes) -> Reply:
    body = instance if isinstance(instance, bytes) else json.dumps({"instances": [instance]})
    return send(service, "POST", "/predict", body if isinstance(body, bytes) else body.encode(),
                {"Content-Type": "application/json"})


def logged(service: Service):  # noqa: ANN201
    """The prediction log once the row of a request sent now is flushed (arrival order)."""
    marker = predict(service, ROW).body["request_ids"][0]

    def rows():  # noqa: ANN202
        with Store(service.project.db_path) as store:
            try:
                return PredictionLog(service.project).read(store, "reg")
            except NotFound:
                return None

    assert wait_for(lambda: (r := rows()) is not None and marker in set(r["request_id"]))
    return rows()


def assert_still_serving(service: Service) -> None:
    assert service.proc.poll() is None, service.log_text()
    assert predict(service, ROW).status == 200
    assert "Traceback" not in service.log_text()


# -- HEAD and 405 ------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/health", "/metadata", "/openapi.json"])
def test_head_answers_like_get_without_a_body(service, path) -> None:
    get = send(service, "GET", path)
    head = send(service, "HEAD", path)
    assert get.status == head.status == 200
    assert head.raw == b""
    assert int(head.headers["Content-Length"]) == len(get.raw) > 0
    assert head.headers["Content-Type"] == get.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("HEAD", "/predict", "POST, OPTIONS"), ("GET", "/predict", "POST, OPTIONS"),
    ("PUT", "/health", "GET, HEAD, OPTIONS"), ("DELETE", "/metadata", "GET, HEAD, OPTIONS"),
])
def test_a_method_not_allowed_is_405_with_allow(service, method, path, allowed) -> None:
    reply = send(service, method, path)
    assert reply.status == 405
    assert reply.headers["Allow"] == allowed
    if method != "HEAD":
        assert f"{method} is not allowed on {path}" in reply.body["message"]


# -- Expect: 100-continue ------------------------------------------------------------------

def expect_continue(service: Service, headers: dict[str, str], body: bytes) -> list[bytes]:
    """Send the headers with `Expect: 100-continue`, the body only after a 100; returns
    the status lines received, in order."""
    head = (f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:{service.port}\r\n"
            f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n")
    with socket.create_connection(("127.0.0.1", service.port), timeout=60) as sock:
        sock.sendall(head.encode())
        reader = sock.makefile("rb")
        lines = [reader.readline().rstrip()]
        if lines[0].startswith(b"HTTP/1.1 100"):
            assert reader.readline() == b"\r\n"
            sock.sendall(body)
            lines.append(reader.readline().rstrip())
        return lines


def test_expect_100_continue_is_answered_before_the_body(service) -> None:
    body = json.dumps({"instances": [ROW]}).encode()
    lines = expect_continue(service, {"Content-Type": "application/json"}, body)
    assert lines[0].startswith(b"HTTP/1.1 100") and lines[1] == b"HTTP/1.1 200 OK", lines


@pytest.mark.parametrize(("headers", "size", "status"), [
    ({"Content-Type": "text/plain"}, 100, b"415"),
    ({"Content-Type": "application/json", "Origin": "http://evil.example"}, 100, b"403"),
    ({"Content-Type": "application/json"}, 1_500_000, b"413"),  # over --max-body-mb 1
])
def test_a_refusal_is_sent_instead_of_100_continue(service, headers, size, status) -> None:
    lines = expect_continue(service, headers, b"x" * size)
    assert lines == [lines[0]] and lines[0].split()[1] == status, lines  # no 100, body unsent
    assert_still_serving(service)


def test_an_unknown_expectation_is_417(service) -> None:
    reply = send(service, "POST", "/predict", json.dumps({"instances": [ROW]}).encode(),
                 {"Content-Type": "application/json", "Expect": "x-ray"})
    assert reply.status == 417 and "100-continue" in reply.body["message"]


# -- text encodings ------------------------------------------------------------------------

@pytest.mark.parametrize(("encoding", "name"), [
    ("utf-16", "UTF-16"), ("utf-16-le", "UTF-16"), ("utf-16-be", "UTF-16"),
    ("utf-32", "UTF-32"), ("utf-32-le", "UTF-32"),
])
def test_a_utf16_or_utf32_body_is_415(service, encoding, name) -> None:
    reply = predict(service, json.dumps({"instances": [ROW]}).encode(encoding))
    assert reply.status == 415, reply.body
    assert f"looks like {name}" in reply.body["message"] and "UTF-8" in reply.body["message"]
    assert_still_serving(service)


@pytest.mark.parametrize(("body", "offset"), [
    (b'{"instances": [{"a": "\xff"}]}', 22),
    (b'{"instances": [{"\xed\xa0\x80": 1}]}', 17),  # a surrogate written as UTF-8 bytes
    (b'{"instances": [{"a": "\xc3"}]}', 22),  # cut in the middle of a character
])
def test_bytes_that_are_not_utf8_are_400(service, body, offset) -> None:
    reply = predict(service, body)
    assert reply.status == 400, reply.body
    assert f"at offset {offset} is not UTF-8" in reply.body["message"]


def test_utf8_with_or_without_bom_and_non_ascii_keys_are_read(service) -> None:
    assert predict(service, b"\xef\xbb\xbf" + json.dumps({"instances": [ROW]}).encode()
                   ).status == 200
    reply = predict(service, json.dumps({"instances": [{**ROW, "é😀": 1}]},
                                        ensure_ascii=False).encode())
    assert reply.status == 422 and reply.body["field"] == "instances[0].é😀"


# -- numbers -------------------------------------------------------------------------------

@pytest.mark.parametrize(("instance", "field", "words"), [
    ({**ROW, "a": 10**400}, "a", "too large for a float64"),
    ({**ROW, "a": -(10**400)}, "a", "too large for a float64"),
    ({**ROW, "n": 2**70}, "n", "does not fit in 64 bits"),
    ({**ROW, "n": -(2**63) - 1}, "n", "does not fit in 64 bits"),
])
def test_a_number_no_column_holds_is_422_naming_it(service, instance, field, words) -> None:
    reply = predict(service, instance)
    assert reply.status == 422, reply.raw
    assert reply.body["field"] == f"instances[0].{field}" and words in reply.body["message"]
    assert len(reply.body["message"]) < 200
    assert_still_serving(service)


def test_whole_numbers_for_a_float_feature_are_logged_as_floats(service) -> None:
    reply = predict(service, {"a": 1, "b": 2**60, "n": 2**62})
    assert reply.status == 200
    rows = logged(service)
    row = rows[rows["request_id"] == reply.body["request_ids"][0]].iloc[0]
    assert row[INPUT_PREFIX + "b"] == float(2**60) and row[INPUT_PREFIX + "n"] == 2**62


@pytest.mark.parametrize(("instance", "words"), [
    ({**ROW, "a": 1e308}, "Input X contains infinity"),  # the scaler overflows: sklearn refuses
    ({**ROW, "a": 1e300, "b": -1e300}, "not a finite number"),  # the output overflows
])
def test_an_input_the_model_cannot_score_is_422_logged_once(service, instance, words) -> None:
    reply = predict(service, instance)
    assert reply.status == 422, reply.raw
    assert "the model could not score this input" in reply.body["message"]
    assert words in reply.body["message"] and b"Infinity" not in reply.raw
    rows = logged(service)
    failed = rows[(rows["status"] == "error") & rows["error"].str.contains(words)]
    assert len(failed) == 1, failed  # one row: not a 500 too, not once per retry
    assert wait_for(lambda: service.log_text().count(words) == 1)  # one line, no warning wall
    assert "RuntimeWarning" not in service.log_text()
    assert_still_serving(service)
