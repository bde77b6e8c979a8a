"""The JupyterLab routes' artifact downloads against hostile names and a damaged store
(issue 9, points 8 and 15), in a real Jupyter server (pytest-jupyter's jp_fetch).

Names with a newline, quotes, Unicode or header syntax are written straight into
`run_artifacts` with sqlite, as an old store or an attacker with write access
would have them (the folder walk now refuses them at logging time). Each must
download as an opaque, sandboxed attachment; a corrupted blob is a 409, a
missing one a 404, and no reply of these routes names a server path.
"""

from __future__ import annotations

import json
import re
import sqlite3
from urllib.parse import quote

import pytest
import tornado.httpclient

from jupyter_mlops.artifacts import ArtifactStore

pytest_plugins = ("pytest_jupyter.jupyter_server",)

HOSTILE_NAMES = [
    "folder/nl\nx",
    "folder/cr\rlf.txt",
    'folder/quo"te.txt',
    "folder/back\\slash.txt",
    "folder/semi;colon=1; filename=evil.exe",
    "folder/ünïcødé ✓ 模型.txt",
    "folder/%41%2F..%2F.txt",
    "folder/tab\tx",
    "folder/<script>alert(1)</script>.html",
]
PAGE = b'<html><meta http-equiv="refresh" content="0;url=https://evil.example/">'
# An absolute path in a message: a "/" starting a token, followed by a name.
ABSOLUTE_PATH = re.compile(r"(^|[\s'\"=(])/[\w.~-]")


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"jupyter_mlops.lab": True}}}


@pytest.fixture
def logged(tracker, project):
    """Run 1 with a page, `a.bin` and `b.bin` (distinct blobs), and the hostile names."""
    files = {"page.html": PAGE, "a.bin": b"bytes of a", "b.bin": b"bytes of b"}
    with tracker.start_run("downloads") as run:
        for name, data in files.items():
            (project.root / name).write_bytes(data)
            run.log_artifact(project.root / name, name=f"folder/{name}")
    with sqlite3.connect(project.db_path) as conn:
        digest = conn.execute("SELECT digest FROM run_artifacts WHERE name = ?",
                              ("folder/page.html",)).fetchone()[0]
        conn.executemany("INSERT INTO run_artifacts (run_id, name, digest, kind) "
                         "VALUES (1, ?, ?, 'artifact')",
                         [(name, digest) for name in HOSTILE_NAMES])
    conn.close()
    return project


async def fetch(jp_fetch, name: str, run_id: str = "1"):
    """GET artifacts/RUN/NAME (jp_fetch percent-encodes the name), errors returned too."""
    try:
        return await jp_fetch("jupyter-mlops", "api", "artifacts", run_id, name, method="GET")
    except tornado.httpclient.HTTPClientError as error:
        return error.response


def assert_no_server_path(message: str, project) -> None:
    assert str(project.root) not in message and "/tmp" not in message, message
    assert not ABSOLUTE_PATH.search(message), message


async def test_hostile_names_download_as_sandboxed_attachments(jp_fetch, logged) -> None:
    for name in [*HOSTILE_NAMES, "folder/page.html"]:
        response = await fetch(jp_fetch, name)
        assert response.code == 200, (name, response.code, response.body[:200])
        assert response.body == PAGE
        headers = response.headers
        assert headers["Content-Type"] == "application/octet-stream"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in headers["Content-Security-Policy"]
        disposition = headers["Content-Disposition"]
        base = name.rsplit("/", 1)[-1]
        assert disposition.startswith('attachment; filename="'), disposition
        assert f"filename*=UTF-8''{quote(base, safe='')}" in disposition
        fallback = disposition.split('filename="', 1)[1].split('"', 1)[0]
        assert all(32 <= ord(c) < 127 and c not in '"\\;' for c in fallback), fallback
        assert len(headers.get_list("Content-Disposition")) == 1


async def test_a_corrupted_blob_is_409_and_a_missing_one_404(jp_fetch, logged) -> None:
    store = ArtifactStore(logged.artifacts_dir)
    with sqlite3.connect(logged.db_path) as conn:
        digests = dict(conn.execute("SELECT name, digest FROM run_artifacts WHERE name IN "
                                    "('folder/a.bin', 'folder/b.bin')").fetchall())
    conn.close()
    corrupted = store.path_for(digests["folder/a.bin"])
    corrupted.chmod(0o600)
    corrupted.write_bytes(b"bytes of A")
    store.path_for(digests["folder/b.bin"]).unlink()

    response = await fetch(jp_fetch, "folder/a.bin")
    message = json.loads(response.body)["message"]
    assert response.code == 409, message
    assert "corrupted" in message and "folder/a.bin" in message and "mlops verify" in message
    assert_no_server_path(message, logged)

    response = await fetch(jp_fetch, "folder/b.bin")
    message = json.loads(response.body)["message"]
    assert response.code == 404, message
    assert "missing" in message and "folder/b.bin" in message
    assert_no_server_path(message, logged)

    response = await fetch(jp_fetch, "folder/never logged\n")
    assert response.code == 404
    assert "no artifact 'folder/never logged\\n'" in json.loads(response.body)["message"]


async def test_error_replies_carry_no_server_path(jp_fetch, logged, tmp_path,
                                                  monkeypatch) -> None:
    async def message_of(path: str, **params: str) -> tuple[int, str]:
        try:
            await jp_fetch("jupyter-mlops", "api", path, params=params, method="GET")
        except tornado.httpclient.HTTPClientError as error:
            return error.code, json.loads(error.response.body)["message"]
        pytest.fail(f"{path} {params} was answered 200")

    status, message = await message_of("runs", filter="metrics.acc >",
                                       notebook="notebooks/train.ipynb")
    assert status == 400 and "bad filter" in message and "notebook" not in message
    assert_no_server_path(message, logged)

    nowhere = tmp_path / "not-a-project"
    nowhere.mkdir()
    monkeypatch.setenv("MLOPS_HOME", str(nowhere))
    for path in ("runs", "runs/1", "models", "artifacts/1/folder/a.bin"):
        status, message = await message_of(path)
        assert status == 404 and "mlops init" in message, (path, message)
        assert_no_server_path(message, logged)


async def test_odd_requests_are_4xx_never_500(jp_serverapp, http_server_client, jp_auth_header,
                                              logged) -> None:
    base = f"{jp_serverapp.base_url}jupyter-mlops/api/"
    for path in ("artifacts/1/%ff%fe", "artifacts/1/folder/%00", "artifacts/1/" + "a/" * 2000,
                 "runs?notebook=%00", "runs?limit=%ff", "runs?notebook=" + "x" * 5000,
                 "compare?runs=1,%EF%BC%91", "runs/000000000001"):
        response = await http_server_client.fetch(base + path, headers=jp_auth_header,
                                                  raise_error=False)
        assert response.code != 500 and response.code != 599, (path, response.code)
        if response.code >= 400 and response.body:
            assert_no_server_path(json.loads(response.body).get("message", ""), logged)
