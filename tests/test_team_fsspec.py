"""The team server's artifact store on an fsspec filesystem (`--artifacts URL`): a real
`mlops server` on `memory://` and `file://` stores, and the store itself."""

from __future__ import annotations

import io
import os

import pytest

from jupyter_mlops.errors import IntegrityError, InvalidInput, NotFound
from jupyter_mlops.fsspec_artifacts import FsspecArtifactStore, check_location
from jupyter_mlops.remote.client import Client
from jupyter_mlops.remote.store import RemoteStore

from .team import digest_of, mlops, record_run, start_team_server

BIG = os.urandom(3 * (1 << 20) + 17)  # several chunks on the wire and in the store


@pytest.fixture(scope="module", params=["memory", "file"])
def server(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp("team-fsspec")
    url = (f"memory://team-{os.getpid()}/blobs" if request.param == "memory"
           else f"file://{folder}/bucket")
    server = start_team_server(folder, None, artifacts=url)
    request.addfinalizer(server.stop)
    server.kind = request.param
    return server


def put(server, data: bytes, digest: str | None = None):
    return server.request("PUT", f"/api/v1/blobs/{digest or digest_of(data)}", "writer",
                          data=data)


def missing(server, *digests: str) -> list[str]:
    answer = server.post("/api/v1/blobs/missing", "writer", json={"digests": list(digests)})
    assert answer.status_code == 200, answer.text
    return answer.json()["missing"]


def test_a_blob_is_stored_once_and_read_back_verified(server):
    digest = digest_of(BIG)
    assert missing(server, digest) == [digest]
    first = put(server, BIG)
    assert first.status_code == 200, first.text
    assert first.json() == {"digest": digest, "size": len(BIG), "stored": True}
    assert put(server, BIG).json()["stored"] is False  # known bytes: not stored twice
    assert missing(server, digest) == []
    got = server.get(f"/api/v1/blobs/{digest}", "reader")
    assert got.status_code == 200 and got.content == BIG
    assert got.headers["X-Mlops-Digest"] == digest
    with Client(server.url, server.tokens["reader"]) as client:
        out = io.BytesIO()
        assert client.get_blob(digest, out) == len(BIG) and out.getvalue() == BIG
    if server.kind == "file":  # the local store's layout, under the URL's folder
        hexdigest = digest.split(":")[1]
        stored = server.folder / "bucket" / "blake3" / hexdigest[:2] / hexdigest[2:]
        assert stored.read_bytes() == BIG


def test_bytes_that_are_not_their_digest_are_refused_and_not_kept(server):
    data = b"tampered on the way" * 1000
    claimed = digest_of(b"what the client said it sends")
    answer = put(server, data, claimed)
    assert answer.status_code == 409 and answer.json()["error"]["kind"] == "integrity"
    assert set(missing(server, claimed, digest_of(data))) == {claimed, digest_of(data)}
    if server.kind == "file":
        assert list((server.folder / "bucket" / "tmp").iterdir()) == []


def test_runs_artifacts_and_models_record_through_the_fsspec_store(server):
    answer = record_run(server, "on-fsspec", files={"report.html": b"<p>report</p>"},
                        model="churn")
    with RemoteStore(Client(server.url, server.tokens["reader"])) as store:
        links = {a.name: a.digest for a in store.artifacts.for_run(answer["run_id"])}
        assert links["report.html"] == digest_of(b"<p>report</p>")
        out = io.BytesIO()
        store.client.get_blob(links["report.html"], out)
        assert out.getvalue() == b"<p>report</p>"
        assert store.models.resolve("churn").version >= 1


def test_a_missing_blob_is_a_404(server):
    assert server.get(f"/api/v1/blobs/{digest_of(b'never sent')}", "reader").status_code == 404


@pytest.mark.parametrize(("location", "message"), [
    ("nosuch://bucket/x", "knows no protocol 'nosuch'"),
])
def test_init_refuses_an_unknown_filesystem_in_one_line(tmp_path, location, message):
    done = mlops(tmp_path / "home", "init", "--db", f"sqlite:///{tmp_path}/t.db",
                 "--artifacts", location, check=False)
    assert done.returncode == 1 and message in done.stderr
    assert done.stderr.strip().count("\n") == 0
    with pytest.raises(InvalidInput, match="knows no protocol"):
        check_location(location)


def test_the_store_keeps_only_verified_bytes_and_never_a_temporary():
    store = FsspecArtifactStore(f"memory://unit-{os.getpid()}/store/")
    incoming = store.receive()
    for start in range(0, len(BIG), 1 << 20):
        incoming.write(BIG[start:start + (1 << 20)])
    assert incoming.finish(digest_of(BIG)) is True
    assert store.read_bytes(digest_of(BIG)) == BIG
    assert store.stored_size(digest_of(BIG)) == len(BIG)
    wrong = store.receive()
    wrong.write(b"other bytes")
    with pytest.raises(IntegrityError):
        wrong.finish(digest_of(b"claimed"))
    assert store.stored_size(digest_of(b"claimed")) is None
    assert store.fs.ls(f"{store._path}/tmp") == []
    with pytest.raises(NotFound):
        store.open(digest_of(b"claimed"))
    with pytest.raises(InvalidInput):
        store.stored_size("blake3:../../etc")
