"""The team server under faults and at its edges: killed mid-batch, wrong tokens in
a row, asked to listen beyond localhost in clear text, a port in use, big blobs."""

from __future__ import annotations

import subprocess
import threading
import uuid

import blake3
import pytest
import requests

from jupyter_mlops.teamserver.home import ServerHome

from .helpers import wait_for
from .team import mlops, team_server

BATCHES = 40
PER_BATCH = 250


@pytest.fixture(params=["sqlite", "postgresql"])
def server(request, tmp_path_factory):
    return team_server(request, tmp_path_factory, request.param)


def metric_batch(number: int, stream: str) -> dict:
    first = 2 + number * PER_BATCH  # seq 1 is the start record
    return {"stream": stream, "records": [
        {"seq": first + i, "version": 1, "op": "metrics",
         "points": [["step", float(number * PER_BATCH + i), number * PER_BATCH + i, 1.7e9]]}
        for i in range(PER_BATCH)]}


def test_server_killed_mid_batch_loses_and_doubles_nothing(server):
    """A client sends batches back to back; the server is killed -9 while it does,
    and started again; the client resends what was not acknowledged, as the remote
    client does. Every record is then in the store exactly once."""
    stream = uuid.uuid4().hex
    start = {"stream": stream, "records": [{"seq": 1, "version": 1, "op": "start",
                                            "run": {"name": "faults", "started_at": 1.7e9,
                                                    "source_kind": "notebook"}}]}
    run_id = server.post("/api/v1/records", "runner", json=start).json()["run_id"]
    acknowledged: list[int] = []
    failures: list[str] = []

    def client() -> None:
        for number in range(BATCHES):
            while True:  # resend until acknowledged, as RemoteRecorder does
                try:
                    answer = server.post("/api/v1/records", "runner",
                                         json=metric_batch(number, stream), timeout=30)
                except requests.ConnectionError:
                    continue
                if answer.status_code == 200:
                    acknowledged.append(answer.json()["applied_seq"])
                    break
                failures.append(answer.text)
                return

    sender = threading.Thread(target=client)
    sender.start()
    try:
        assert wait_for(lambda: len(acknowledged) >= 5, timeout=120)
        server.kill()  # somewhere in the middle of a batch, or between two
        server.start()
    finally:
        sender.join(timeout=300)
    assert not failures, failures
    assert acknowledged[-1] == 1 + BATCHES * PER_BATCH
    with ServerHome(server.home).open_store() as store:
        steps = [point.step for point in store.runs.metric_history(run_id, "step")]
    assert sorted(steps) == list(range(BATCHES * PER_BATCH))  # each exactly once


def test_wrong_tokens_lock_the_address_out_with_retry_after(server):
    wrong = {"Authorization": "Bearer mlops_" + "x" * 43}
    codes = [requests.get(server.url + "/api/v1/whoami", headers=wrong).status_code
             for _ in range(21)]
    assert codes[:20] == [401] * 20
    assert codes[20] == 429
    locked = server.get("/api/v1/whoami", "reader")  # even the right token waits
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) >= 1
    assert locked.json()["error"]["kind"] == "rate_limited"


def test_listening_beyond_localhost_needs_tls_or_a_proxy(server):
    done = subprocess.run(
        [*server_command(server), "--host", "0.0.0.0", "--port", str(server.port + 1)],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert "refusing to listen on 0.0.0.0 without TLS" in line and "--behind-proxy" in line


def test_a_port_in_use_is_one_line(server):
    done = subprocess.run([*server_command(server), "--port", str(server.port)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert f"port {server.port} is in use" in line


def server_command(server) -> list[str]:
    import sys

    return [sys.executable, "-m", "jupyter_mlops.cli.main", "server", "--home",
            str(server.home), "start"]


def test_init_refuses_bad_urls_and_another_database(tmp_path):
    home = tmp_path / "home"
    bad = mlops(home, "init", "--db", "mysql://x", "--artifacts", str(tmp_path / "a"),
                check=False)
    assert bad.returncode == 1 and "--db 'mysql://x' refused" in bad.stderr
    mlops(home, "init", "--db", f"sqlite:///{tmp_path}/a.db", "--artifacts",
          str(tmp_path / "a"))
    assert (home.stat().st_mode & 0o777) == 0o700
    assert ((home / "audit.key").stat().st_mode & 0o777) == 0o600
    assert ((home / "server.toml").stat().st_mode & 0o777) == 0o600
    mlops(home, "init", "--db", f"sqlite:///{tmp_path}/a.db", "--artifacts",
          str(tmp_path / "a"))  # again: nothing changes
    other = mlops(home, "init", "--db", f"sqlite:///{tmp_path}/b.db", "--artifacts",
                  str(tmp_path / "a"), check=False)
    assert other.returncode == 1 and "already names database" in other.stderr
    home.chmod(0o755)
    opened = mlops(home, "token", "list", check=False)
    assert opened.returncode == 1 and "chmod 700" in opened.stderr


def test_a_large_blob_streams_through_without_being_held_in_memory(server):
    size = 256 << 20
    chunk = bytes(range(256)) * 4096  # 1 MiB

    def body():
        for _ in range(size // len(chunk)):
            yield chunk

    hasher = blake3.blake3()
    for piece in body():
        hasher.update(piece)
    digest = "blake3:" + hasher.hexdigest()
    before = peak_memory(server)
    answer = server.request("PUT", f"/api/v1/blobs/{digest}", "writer", data=body())
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"digest": digest, "size": size, "stored": True}
    assert peak_memory(server) - before < size // 4
    again = blake3.blake3()
    with server.get(f"/api/v1/blobs/{digest}", "reader", stream=True) as got:
        for piece in got.iter_content(1 << 20):
            again.update(piece)
    assert "blake3:" + again.hexdigest() == digest
    assert peak_memory(server) - before < size // 4


def peak_memory(server) -> int:
    """The server process's peak resident memory in bytes (VmHWM)."""
    for line in open(f"/proc/{server.proc.pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")



def test_tls_serves_https_with_the_given_certificate(tmp_path):
    import shutil

    from .team import start_team_server

    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key),
                    "-out", str(cert)],
                   check=True, capture_output=True, timeout=120)
    server = start_team_server(tmp_path / "tls", None, "--tls-cert", str(cert),
                               "--tls-key", str(key))
    try:
        assert server.url.startswith("https://")
        answer = requests.get(server.url + "/api/v1/whoami", headers=server.headers("reader"),
                              verify=str(cert), timeout=30)
        assert answer.json()["user"] == "reader-user"
        with pytest.raises(requests.ConnectionError):  # plain http gets no answer
            requests.get(server.url.replace("https", "http") + "/api/v1/version", timeout=5)
    finally:
        server.stop()
    half = subprocess.run([*server_command(server), "--tls-cert", str(cert)],
                          capture_output=True, text=True, timeout=120)
    assert half.returncode == 1 and "give both --tls-cert and --tls-key" in half.stderr


def test_an_upload_the_disk_cannot_take_is_503_and_keeps_nothing(tmp_path):
    """The server's files may not grow past 4 MiB (RLIMIT_FSIZE, as a full disk)."""
    from .team import start_team_server

    server = start_team_server(tmp_path)
    try:
        server.file_size_limit = 4 << 20
        server.restart()
        data = b"\x01" * (8 << 20)
        digest = "blake3:" + blake3.blake3(data).hexdigest()
        answer = server.request("PUT", f"/api/v1/blobs/{digest}", "writer", data=data)
        assert answer.status_code == 503, answer.text
        assert "nothing was kept" in answer.json()["error"]["message"]
        assert server.post("/api/v1/blobs/missing", "writer",
                           json={"digests": [digest]}).json() == {"missing": [digest]}
        assert not list((server.artifacts / "tmp").iterdir())
        small = b"fits"
        assert server.request("PUT", "/api/v1/blobs/blake3:" + blake3.blake3(small).hexdigest(),
                              "writer", data=small).status_code == 200
    finally:
        server.stop()


def test_a_client_gone_mid_upload_leaves_nothing(tmp_path):
    import socket

    from .team import start_team_server

    server = start_team_server(tmp_path)
    try:
        digest = "blake3:" + blake3.blake3(b"never sent whole").hexdigest()
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall((f"PUT /api/v1/blobs/{digest} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          f"Authorization: Bearer {server.tokens['writer']}\r\n"
                          "Content-Length: 10000000\r\n\r\n").encode() + b"x" * 3_000_000)
            assert wait_for(lambda: temporaries(server), timeout=30)
        assert wait_for(lambda: not temporaries(server), timeout=30)
        assert server.post("/api/v1/blobs/missing", "writer",
                           json={"digests": [digest]}).json() == {"missing": [digest]}
    finally:
        server.stop()


def temporaries(server) -> list:
    folder = server.artifacts / "tmp"
    return list(folder.iterdir()) if folder.exists() else []
