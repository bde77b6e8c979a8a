"""Issue 9, point 15: the dashboard serves stored artifacts as sandboxed
attachments, never as pages on its own origin; a corrupted blob is a 409 and a
missing one a 404, and no error message carries a server path.

One real `mlops dashboard` process, a signed-in client over real HTTP.
"""

from __future__ import annotations

import http.client
import json
import re
from urllib.parse import quote, urlencode

import pytest

import jupyter_mlops as mlops
from jupyter_mlops.artifacts import ArtifactStore
from jupyter_mlops.dashboard.credentials import add_user

from ..helpers import running_dashboard

PAGE = (b'<html><meta http-equiv="refresh" content="0;url=https://evil.example/">'
        b"<script>alert(document.cookie)</script></html>")


def _get(port: int, path: str, cookie: str = "") -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", path, headers={"Cookie": cookie} if cookie else {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def _sign_in(port: int) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", "/login")
    page = conn.getresponse()
    xsrf = next(h for h in page.headers.get_all("Set-Cookie") if h.startswith("_xsrf="))
    xsrf = xsrf.split(";", 1)[0]
    token = re.search(r'name="_xsrf" value="([^"]+)"', page.read().decode()).group(1)
    conn.request("POST", "/login", urlencode({"_xsrf": token, "username": "alice",
                                              "password": "alice-password"}),
                 {"Cookie": xsrf, "Content-Type": "application/x-www-form-urlencoded"})
    signed_in = conn.getresponse()
    signed_in.read()
    conn.close()
    assert signed_in.status == 302
    session = next(h for h in signed_in.headers.get_all("Set-Cookie")
                   if h.startswith("mlops_session="))
    return session.split(";", 1)[0]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(port, project, session cookie, ArtifactStore) of a running, signed-in dashboard."""
    root = tmp_path_factory.mktemp("artifacts")
    project = mlops.init(root)
    creds = root / "credentials.json"
    add_user(creds, "alice", "alice-password")
    with running_dashboard(root, "--auth", str(creds)) as (port, log):
        yield port, project, _sign_in(port), ArtifactStore(project.artifacts_dir), log


def _no_server_path(body: bytes, project: mlops.Project) -> None:
    text = body.decode("utf-8", "replace")
    assert "/tmp" not in text and str(project.root) not in text and ".mlops" not in text
    assert "Traceback" not in text


def test_an_html_artifact_is_a_sandboxed_attachment(served) -> None:
    port, _, cookie, store, _ = served
    digest, _ = store.put_bytes(PAGE)
    status, headers, body = _get(port, f"/artifact/{digest}?name=report.html", cookie)
    assert status == 200 and body == PAGE
    assert headers["Content-Disposition"].startswith("attachment;")
    assert 'filename="report.html"' in headers["Content-Disposition"]
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in headers["Content-Security-Policy"]


@pytest.mark.parametrize("name", ["../../etc/passwd", "a\nb", "/abs", "x" * 300, "..", ""])
def test_a_hostile_download_name_falls_back_to_the_digest(served, name: str) -> None:
    port, _, cookie, store, _ = served
    digest, _ = store.put_bytes(PAGE)
    status, headers, _ = _get(port, f"/artifact/{digest}?name={quote(name)}", cookie)
    assert status == 200
    assert f'filename="artifact-{digest[7:23]}"' in headers["Content-Disposition"]


def test_a_corrupted_blob_is_a_409_without_server_paths(served) -> None:
    port, project, cookie, store, _ = served
    digest, _ = store.put_bytes(b"<html>evidence</html>" * 10)
    blob = store.path_for(digest)
    blob.chmod(0o600)
    blob.write_bytes(b"<html>tampered</html>" * 10)
    status, headers, body = _get(port, f"/artifact/{digest}", cookie)
    assert status == 409
    assert headers["Content-Type"] == "application/json"
    assert "corrupted" in json.loads(body)["message"]
    assert b"tampered" not in body
    _no_server_path(body, project)


def test_a_missing_blob_is_a_404_without_server_paths(served) -> None:
    port, project, cookie, _, _ = served
    status, _, body = _get(port, "/artifact/blake3:" + "ab" * 32, cookie)
    assert status == 404 and "not in this project's store" in json.loads(body)["message"]
    _no_server_path(body, project)


@pytest.mark.parametrize("digest", ["blake3:xyz", "sha256:" + "0" * 64, "blake3:" + "0" * 65,
                                    "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "blake3:" + "A" * 64,
                                    "%00", "blake3:%0a" + "0" * 62])
def test_a_malformed_digest_is_a_400(served, digest: str) -> None:
    port, project, cookie, _, _ = served
    status, _, body = _get(port, f"/artifact/{digest}", cookie)
    assert status == 400 and "not an artifact digest" in json.loads(body)["message"]
    _no_server_path(body, project)


def test_artifacts_need_a_session(served) -> None:
    port, project, _, store, _ = served
    digest, _ = store.put_bytes(PAGE)
    for cookie in ("", "mlops_session=forged", "user=alice"):
        status, _, body = _get(port, f"/artifact/{digest}", cookie)
        assert status == 403 and PAGE not in body
        _no_server_path(body, project)


def test_no_traceback_in_the_log(served) -> None:
    *_, log = served
    assert "Traceback" not in log.read_text()
