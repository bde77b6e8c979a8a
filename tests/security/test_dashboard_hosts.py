"""Issue 9, point 12: DNS rebinding. The dashboard answers only the hosts it was
started for, on every HTTP route and on the Bokeh websocket, with and without
login (--dev).

Real `mlops dashboard` processes, real HTTP requests and raw websocket
handshakes with `Host: evil.example`, as a rebinding page's browser sends them.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys

import pytest

import jupyter_mlops as mlops
from jupyter_mlops.dashboard.app import websocket_origins
from jupyter_mlops.dashboard.credentials import add_user
from jupyter_mlops.errors import InvalidInput
from jupyter_mlops.hosts import allowed_hosts, check_host_name

from ..helpers import free_port, running_dashboard

EVIL = "evil.example"
ALLOWED_EXTRA = "dashboard.example"
DIGEST = "blake3:" + "0" * 64


@pytest.fixture(scope="module", params=["login", "dev"])
def server(request, tmp_path_factory):
    """A dashboard (with a credentials file, or --dev) that also allows `dashboard.example`."""
    root = tmp_path_factory.mktemp(f"hosts-{request.param}")
    mlops.init(root)
    args = ["--dev"]
    if request.param == "login":
        creds = root / "credentials.json"
        add_user(creds, "alice", "alice-password")
        args = ["--auth", str(creds)]
    with running_dashboard(root, "--allow-host", ALLOWED_EXTRA, *args,
                           ready_path="/favicon.ico") as (port, log):
        yield request.param, port, log


def _request(port: int, method: str, path: str, headers: dict[str, str],
             body: str | None = None) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        conn.close()


def _handshake(port: int, host: str | None, origin: str, path: str = "/releases/ws") -> str:
    """Send a raw websocket upgrade request; return the response's status line."""
    lines = [f"GET {path} HTTP/1.1"] + ([f"Host: {host}"] if host is not None else []) + [
        "Upgrade: websocket", "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13",
        f"Origin: {origin}", "Sec-WebSocket-Protocol: bokeh, not-a-token"]
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return sock.makefile("rb").readline().decode("latin-1").strip()


@pytest.mark.parametrize("path", ["/", "/releases", "/releases/", "/runs", "/audit", "/login",
                                  "/logout", "/favicon.ico", "/static/js/bokeh.min.js",
                                  f"/artifact/{DIGEST}", "/releases/ws", "/no/such/page"])
@pytest.mark.parametrize("host", [EVIL, "{evil}:{port}", "localhost.evil.example:{port}",
                                  "127.0.0.1.nip.io:{port}", ""])
def test_every_route_refuses_a_foreign_host(server, path: str, host: str) -> None:
    _, port, _ = server
    status, body = _request(port, "GET", path, {
        "Host": host.format(evil=EVIL, port=port), "Origin": f"http://{EVIL}:{port}"})
    assert status == 403
    assert "does not answer to the host" in body
    assert "Pending releases" not in body and "bokeh" not in body.lower()


def test_a_login_post_to_a_foreign_host_is_refused(server) -> None:
    _, port, _ = server
    status, body = _request(port, "POST", "/login", {
        "Host": f"{EVIL}:{port}", "Origin": f"http://{EVIL}:{port}",
        "Content-Type": "application/x-www-form-urlencoded"},
        "username=alice&password=alice-password")
    assert status == 403 and "Set-Cookie" not in body


@pytest.mark.parametrize("host", ["localhost:{port}", "127.0.0.1:{port}", "[::1]:{port}",
                                  f"{ALLOWED_EXTRA}:{{port}}", "LOCALHOST:{port}", "localhost"])
def test_the_allowed_hosts_are_answered(server, host: str) -> None:
    mode, port, _ = server
    header = {"Host": host.format(port=port)}
    assert _request(port, "GET", "/favicon.ico", header)[0] == 200
    status, _ = _request(port, "GET", "/releases", header)
    assert status == (200 if mode == "dev" else 302)  # --dev: the page; else: the login


def test_a_websocket_upgrade_for_a_foreign_host_is_not_switched(server) -> None:
    _, port, log = server
    for host in (f"{EVIL}:{port}", EVIL):
        status = _handshake(port, host, f"http://{EVIL}:{port}")
        assert " 101 " not in status and " 403 " in status, (host, status)
    assert " 400 " in _handshake(port, None, f"http://{EVIL}:{port}")  # tornado: no Host
    assert f"refused GET /releases/ws for Host '{EVIL}:{port}'" in log.read_text()


def test_an_http_1_0_request_without_host_is_refused(server) -> None:
    _, port, _ = server
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"GET /releases HTTP/1.0\r\n\r\n")
        assert " 403 " in sock.makefile("rb").readline().decode("latin-1")


def test_a_websocket_from_a_foreign_origin_is_not_switched(server) -> None:
    _, port, _ = server
    status = _handshake(port, f"127.0.0.1:{port}", f"http://{EVIL}:{port}")
    assert " 101 " not in status and " 403 " in status


def test_the_handshake_itself_works_for_the_right_host_and_origin(server) -> None:
    """The control: the same handshake from the dashboard's own origin is switched
    (--dev), or sent to the login (with credentials, no session): the refusals
    above come from the Host and Origin checks, not from a malformed request."""
    mode, port, _ = server
    status = _handshake(port, f"127.0.0.1:{port}", f"http://127.0.0.1:{port}")
    # A token Bokeh can't decode is a 400 before the switch (Bokeh itself would switch,
    # then print a traceback); with credentials and no session, the login comes first.
    assert (" 400 " in status) if mode == "dev" else (" 101 " not in status)


def test_no_request_above_left_a_traceback(server) -> None:
    _, _, log = server
    assert "Traceback" not in log.read_text()


# --allow-host takes plain names only: in Bokeh's websocket origin list `*`
# matches any origin, and `*.example.com` any name under it.

WILDCARDS = ["*", "*.example.com", "*:5006", "0.0.0.0", "::", "[::]", "",
             "http://dashboard.example", "dashboard.example:5006", "dashboard.example/x",
             "a b", "evil.example,localhost"]


@pytest.mark.parametrize("name", WILDCARDS)
def test_the_dashboard_refuses_a_wildcard_or_malformed_allowed_host(tmp_path, name: str) -> None:
    mlops.init(tmp_path)
    creds = tmp_path / "credentials.json"
    add_user(creds, "alice", "alice-password")
    result = subprocess.run(
        [sys.executable, "-m", "jupyter_mlops.cli.main", "dashboard", "--auth", str(creds),
         "--port", str(free_port()), "--allow-host", name], capture_output=True, text=True,
        cwd=tmp_path, env={**os.environ, "MLOPS_HOME": str(tmp_path)}, timeout=60)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert f"--allow-host {name!r} refused" in result.stderr and "wildcard" in result.stderr


@pytest.mark.parametrize("name", WILDCARDS)
def test_check_host_name_refuses(name: str) -> None:
    with pytest.raises(InvalidInput, match="refused"):
        check_host_name(name)


@pytest.mark.parametrize("name", ["dashboard.example", "10.0.0.5", "::1", "[::1]", "Models-1"])
def test_check_host_name_takes_plain_names(name: str) -> None:
    assert check_host_name(name) == name


def test_websocket_origins_are_exact_names() -> None:
    origins = websocket_origins(allowed_hosts("127.0.0.1", ["dashboard.example"]), 5006)
    assert origins == ["127.0.0.1:5006", "dashboard.example:5006", "localhost:5006"]
