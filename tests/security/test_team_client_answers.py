"""The client against a hostile or broken server (a tiny HTTP server of this test):
answers of the wrong shape, JSON that isn't, a blob whose bytes are not its digest.
Each is one line naming the server, never a traceback from deep in a view and never
a file kept or a model loaded from the wrong bytes."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from jupyter_mlops.cli.main import main
from jupyter_mlops.errors import IntegrityError, MlopsError
from jupyter_mlops.remote.blobs import RemoteBlobs
from jupyter_mlops.remote.client import Client
from jupyter_mlops.remote.store import RemoteStore

TOKEN = "mlops_" + "A" * 43
DIGEST = "blake3:" + "0" * 64


class FakeServer:
    """Answers /version and /whoami like a team server and every read with `answer`."""

    def __init__(self) -> None:
        self.answer: bytes = b'{"result": []}'
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def send(self, body: bytes, kind: str = "application/json") -> None:
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path.endswith("/version"):
                    self.send(b'{"server": "9", "api": 1, "min_client_api": 1}')
                elif self.path.endswith("/whoami"):
                    self.send(b'{"user": "u", "roles": ["admin"], "expires_at": null}')
                else:  # a blob: not the bytes of any digest asked for
                    self.send(b"these are not the bytes you asked for",
                              "application/octet-stream")

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send(fake.answer)

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()


@pytest.fixture
def fake():
    server = FakeServer()
    yield server
    server.http.shutdown()
    server.http.server_close()


RUN = {"$type": "Run", "fields": {
    "id": 1, "uuid": "u" * 32, "name": "r", "status": "finished", "started_at": 1.0,
    "ended_at": None, "notebook": None, "source_kind": "notebook", "code_digest": None,
    "git_commit": None, "git_branch": None, "git_dirty": None, "python": "3.11",
    "env_digest": None, "host": "h", "user": "u", "error": None}}


@pytest.mark.parametrize("answer", [
    {"result": {"a": 1}},
    {"result": [1, 2, 3]},
    {"result": None},
    {"result": ["a run"]},
    {"result": [{**RUN, "fields": {**RUN["fields"], "id": "one"}}]},
    {"result": [{**RUN, "fields": {**RUN["fields"], "params": {"k": 5}}}]},
])
def test_a_read_answered_with_the_wrong_shape_is_one_line(fake, answer):
    fake.answer = json.dumps(answer).encode()
    with RemoteStore(Client(fake.url, TOKEN)) as store, \
            pytest.raises(MlopsError, match="answered runs.search with .* where list"):
        store.runs.search()


def test_mlops_runs_ls_against_a_wrong_answer_is_one_line(fake, project, monkeypatch, capsys):
    fake.answer = b'{"result": [1, 2, 3]}'
    monkeypatch.setenv("MLOPS_URL", fake.url)
    monkeypatch.setenv("MLOPS_TOKEN", TOKEN)
    assert main(["runs", "ls"]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"team server {fake.url} answered runs.search" in err


def test_a_right_answer_still_reads(fake):
    fake.answer = json.dumps({"result": [RUN]}).encode()
    with RemoteStore(Client(fake.url, TOKEN)) as store:
        assert [run.name for run in store.runs.search()] == ["r"]


def test_a_blob_whose_bytes_are_not_its_digest_is_refused_and_not_kept(fake, tmp_path):
    blobs = RemoteBlobs(Client(fake.url, TOKEN))
    with pytest.raises(IntegrityError):
        blobs.read_bytes(DIGEST)
    with pytest.raises(IntegrityError):
        blobs.export(DIGEST, tmp_path / "model.pkl")
    assert list(tmp_path.iterdir()) == []
