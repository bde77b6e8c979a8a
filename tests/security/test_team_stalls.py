"""A client that stops sending (headers never finished, a blob upload that never ends)
is dropped after `mlops server start --stall-timeout`, and an upload's temporary
file goes with it: without it, any client could hold sockets and temporary files
for as long as it stayed connected."""

from __future__ import annotations

import socket

import pytest

from ..team import team_server


@pytest.fixture(scope="module")
def team(request, tmp_path_factory):
    return team_server(request, tmp_path_factory, "sqlite", "--stall-timeout", "1")


def _connect(team) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", team.port))
    sock.settimeout(60)  # far longer than the stall timeout: recv() sees the close
    return sock


def _closed_by_server(sock: socket.socket) -> bool:
    try:
        while data := sock.recv(65536):
            if b"\r\n\r\n" in data and not data.startswith(b"HTTP/1.1 100"):
                return False  # an answer, not a drop
        return True
    except TimeoutError:
        return False
    finally:
        sock.close()


def test_an_upload_that_never_ends_is_dropped_and_keeps_nothing(team):
    sock = _connect(team)
    sock.sendall(f"PUT /api/v1/blobs/blake3:{'1' * 64} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 f"Authorization: Bearer {team.tokens['writer']}\r\n"
                 "Content-Length: 1000000\r\n\r\n".encode() + b"x" * 1000)
    assert _closed_by_server(sock)
    assert list((team.folder / "artifacts" / "tmp").iterdir()) == []
    assert "stalled" in team.log_text()


def test_a_json_body_that_never_ends_is_dropped(team):
    sock = _connect(team)
    sock.sendall(f"POST /api/v1/read HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 f"Authorization: Bearer {team.tokens['reader']}\r\n"
                 'Content-Length: 1000\r\n\r\n{"call": '.encode())
    assert _closed_by_server(sock)


def test_headers_that_never_end_are_dropped(team):
    sock = _connect(team)
    sock.sendall(b"GET /api/v1/version HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    assert _closed_by_server(sock)


def test_a_slow_but_steady_upload_still_arrives(team):
    import time

    data = b"y" * 4096
    from ..team import digest_of

    sock = _connect(team)
    sock.sendall(f"PUT /api/v1/blobs/{digest_of(data)} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 f"Authorization: Bearer {team.tokens['writer']}\r\n"
                 f"Content-Length: {len(data)}\r\n\r\n".encode())
    for piece in range(4):  # 4 pauses of 0.6 s: 2.4 s in all, over the 1 s stall timeout
        sock.sendall(data[piece * 1024:(piece + 1) * 1024])
        time.sleep(0.6)
    answer = sock.recv(65536)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
