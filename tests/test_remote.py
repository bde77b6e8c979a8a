"""Team mode, client side, without a server: URLs, credentials, the spool, an unreachable
server (a real closed port). The tests against a real `mlops server` are in
test_remote_server.py."""

from __future__ import annotations

import json
import socket
import stat
import warnings
from pathlib import Path

import pytest

from jupyter_mlops.cli.main import main
from jupyter_mlops.config import check_server_url
from jupyter_mlops.errors import InvalidInput
from jupyter_mlops.project import find_project
from jupyter_mlops.remote import credentials
from jupyter_mlops.remote.client import Client
from jupyter_mlops.remote.queue import RecordQueue, TeamServerWarning
from jupyter_mlops.remote.spool import Batch, Spool
from jupyter_mlops.team_protocol import AuthenticationFailed, ServerUnreachable


def closed_port() -> int:
    """A port on 127.0.0.1 nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(("url", "expected"), [
    ("https://mlops.example.org:8765/", "https://mlops.example.org:8765"),
    ("http://localhost:8765", "http://localhost:8765"),
    ("http://127.0.0.1:9/mlops/", "http://127.0.0.1:9/mlops"),
    ("http://[::1]:3", "http://[::1]:3"),
    ("HTTPS://Example.ORG", "https://example.org"),
])
def test_good_server_urls_are_normalized(url: str, expected: str) -> None:
    assert check_server_url(url) == expected


@pytest.mark.parametrize(("url", "message"), [
    ("http://example.org", "plain http to another machine"),
    ("ftp://example.org", "must start with https://"),
    ("file:///etc/passwd", "must start with https://"),
    ("https://alice:secret@example.org", "holds a user name or password"),
    ("https://", "names no host"),
    ("https://../", "is not a host name"),
    ("https://<script>alert(1)</script>", "is not a host name"),
    ("https://example.org/?next=evil", "query or fragment"),
    ("https://example.org:99999", "malformed"),
    ("https://exa mple.org", "spaces or control characters"),
    ("https://example.org/\n", "spaces or control characters"),
    ("", "non-empty string"),
    (42, "non-empty string"),
    ("https://" + "a" * 5000 + ".org", "too long"),
])
def test_bad_server_urls_are_refused_with_the_reason(url: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        check_server_url(url)


def test_plain_http_elsewhere_needs_allow_insecure() -> None:
    assert check_server_url("http://10.0.0.5:8765", allow_insecure=True) == \
        "http://10.0.0.5:8765"


def test_team_mode_comes_from_the_config_or_mlops_url(project, monkeypatch) -> None:
    config = project.home / "config.toml"
    assert project.server_url({}) is None
    config.write_text('[store]\nurl = "https://mlops.example.org/"\n')
    found = find_project()
    assert found.server_url({}) == "https://mlops.example.org"
    assert found.server_url({"MLOPS_URL": "http://localhost:1"}) == "http://localhost:1"
    with pytest.raises(InvalidInput, match="MLOPS_URL: .*plain http"):
        found.server_url({"MLOPS_URL": "http://example.org"})
    config.write_text('[store]\nurl = "http://example.org"\n')
    with pytest.raises(InvalidInput, match=r"config.toml: \[store\] url: .*plain http"):
        find_project()
    config.write_text('[store]\nurl = "http://example.org"\nallow_insecure = true\n'
                      'ack_timeout_seconds = 5\n')
    assert find_project().store.ack_timeout_seconds == 5
    config.write_text('[store]\nurl = 7\n')
    with pytest.raises(InvalidInput, match="url must be a server URL"):
        find_project()
    config.write_text('[store]\nack_timeout_seconds = -1\n')
    with pytest.raises(InvalidInput, match="ack_timeout_seconds must be"):
        find_project()


# -- credentials ----------------------------------------------------------------------------

@pytest.fixture
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    monkeypatch.delenv("MLOPS_TOKEN", raising=False)
    return home


def test_credentials_are_private_and_keyed_by_url(config_home: Path) -> None:
    path = credentials.credentials_path()
    assert path == config_home / "jupyter-mlops" / "credentials.json"
    credentials.store_token("https://a.example", "mlops_one")
    credentials.store_token("https://b.example", "mlops_two")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert credentials.token_for("https://a.example") == "mlops_one"
    assert credentials.token_for("https://b.example", {"MLOPS_TOKEN": "mlops_ci"}) == "mlops_ci"
    assert credentials.forget("https://a.example") == ["https://a.example"]
    with pytest.raises(AuthenticationFailed, match="run `mlops login https://a.example`"):
        credentials.token_for("https://a.example")
    assert [p.name for p in path.parent.iterdir()] == ["credentials.json"]  # no temporaries


@pytest.mark.parametrize(("content", "mode", "message"), [
    (b"{not json", 0o600, "not valid JSON"),
    (b'{"version": 1, "servers": {"https://a": {"token": 5}}}', 0o600, "version 1 credentials"),
    (b'[1, 2]', 0o600, "version 1 credentials"),
    (b'{"version": 1, "servers": {}}', 0o644, "mode 0644: others may have read"),
    (b'{"version": 1, "servers": {}}', 0o640, "chmod 600"),
    (b"[" * 100_000, 0o600, "not valid JSON"),
])
def test_a_bad_credentials_file_is_a_clear_error(config_home: Path, content: bytes, mode: int,
                                                 message: str) -> None:
    path = credentials.credentials_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    path.chmod(mode)
    with pytest.raises(InvalidInput, match=message):
        credentials.token_for("https://a")
    assert path.read_bytes() == content  # nothing lost


def test_a_linked_credentials_file_is_refused(config_home: Path, tmp_path: Path) -> None:
    path = credentials.credentials_path()
    path.parent.mkdir(parents=True)
    target = tmp_path / "elsewhere.json"
    target.write_text('{"version": 1, "servers": {}}')
    target.chmod(0o600)
    path.symlink_to(target)
    with pytest.raises(InvalidInput, match="a link is refused"):
        credentials.load(path)


@pytest.mark.parametrize("token", ["", "   ", "mlops_a b", "mlops_\x00", "é" * 3, "x" * 5000])
def test_bad_tokens_are_refused(token: str) -> None:
    with pytest.raises(InvalidInput, match="token"):
        credentials.check_token(token)


def test_login_to_a_server_that_is_down_is_one_line(config_home: Path, capsys,
                                                    monkeypatch) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("mlops_whatever\n"))
    assert main(["login", url, "--token-stdin"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"team server {url} did not answer" in err
    assert not credentials.credentials_path().exists()  # nothing stored


# -- the spool ------------------------------------------------------------------------------

def batch(stream: str, first: int, count: int) -> Batch:
    return Batch(stream, [{"version": 1, "op": "params", "params": {"k": str(n)}, "seq": n}
                          for n in range(first, first + count)])


def test_a_half_written_line_is_never_read_as_a_batch(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.append([batch("a", 1, 2)])
    with open(spool.pending_path, "ab") as out:  # a writer killed mid-line
        out.write(batch("a", 3, 2).line()[:30])
    batches, bad = spool.read()
    assert [b.last_seq for b in batches] == [2] and len(bad) == 1
    spool.append([batch("a", 5, 1)])  # the next append starts a fresh line
    batches, bad = spool.read()
    assert [b.last_seq for b in batches] == [2, 5] and len(bad) == 1
    sent: list[int] = []
    report = spool.drain(lambda b: sent.append(b.last_seq), lambda exc: True)
    assert sent == [2, 5] and report.left == 0
    assert spool.read() == ([], [])
    [aside] = spool.rejected_path.read_text().splitlines()
    assert "unfinished line" in json.loads(aside)["reason"]


def test_drain_keeps_order_and_what_the_server_did_not_take(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.append([batch("a", 1, 1), batch("b", 1, 1), batch("a", 2, 1), batch("c", 1, 1)])

    def send(b: Batch) -> None:
        if b.stream == "b":
            raise InvalidInput("params: refused")  # a 4xx: set aside
        if b.stream == "c":
            raise ServerUnreachable("down")

    report = spool.drain(send, lambda exc: isinstance(exc, ServerUnreachable))
    assert [b.stream for b in report.sent] == ["a", "a"]
    assert [b.stream for b, _ in report.rejected] == ["b"]
    assert report.left == 1 and isinstance(report.stopped_by, ServerUnreachable)
    assert [b.stream for b in spool.read()[0]] == ["c"]
    assert "params: refused" in spool.rejected_path.read_text()


def test_records_spool_when_the_server_is_down_and_the_user_is_told_once(tmp_path: Path
                                                                         ) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    spool = Spool(tmp_path / "spool")
    queue = RecordQueue(Client(url, "mlops_x", timeout=5), spool, interval=0.05)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for n in range(1, 2501):
                queue.put("run-a", {"version": 1, "op": "metrics", "seq": n,
                                    "points": [["loss", 1.0 / n, n, 0.0]]})
            assert not queue.flush(timeout=0.5)
        told = [w for w in caught if issubclass(w.category, TeamServerWarning)]
        assert len(told) == 1 and url in str(told[0].message)
        assert "mlops sync" in str(told[0].message)
        batches, bad = spool.read()
        seqs = [r["seq"] for b in batches for r in b.records]
        assert seqs == list(range(1, 2501)) and not bad  # each once, in order
        assert max(len(b.records) for b in batches) <= 1000
        assert queue.pending("run-a") == 2500
    finally:
        queue.stop()


def test_points_join_only_a_record_no_sender_has_taken(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    spool = Spool(tmp_path / "spool")
    queue = RecordQueue(Client(url, "mlops_x", timeout=5), spool, interval=3600)
    try:
        first = {"version": 1, "op": "metrics", "seq": 1, "points": [["a", 1.0, 0, 0.0]]}
        queue.put("run-a", first, open_points=True)
        assert queue.extend_tail(first, [["a", 2.0, 1, 0.0]], limit=3)
        assert not queue.extend_tail(first, [["a", 3.0, 2, 0.0], ["a", 4.0, 3, 0.0]], limit=3)
        params = {"version": 1, "op": "params", "seq": 2, "params": {"C": "1"}}
        queue.put("run-a", params)
        assert not queue.extend_tail(first, [["a", 3.0, 2, 0.0]], limit=1000)  # not the tail
        second = {"version": 1, "op": "metrics", "seq": 3, "points": [["a", 3.0, 2, 0.0]]}
        queue.put("run-a", second, open_points=True)
        queue.flush()  # taken (and spooled: the server is down): sealed
        assert not queue.extend_tail(second, [["a", 4.0, 3, 0.0]], limit=1000)
        batches, _ = spool.read()
        records = [r for b in batches for r in b.records]
        assert [r["seq"] for r in records] == [1, 2, 3]
        assert [p[1] for r in records if r["op"] == "metrics" for p in r["points"]] == [
            1.0, 2.0, 3.0]
    finally:
        queue.stop()


def test_status_and_sync_with_the_server_down(project, config_home: Path, capsys) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    (project.home / "config.toml").write_text(f'[store]\nurl = "{url}"\n')
    credentials.store_token(url, "mlops_x")
    Spool.for_project(project).append([batch("a" * 32, 1, 3)])
    assert main(["status"]) == 1
    out = capsys.readouterr().out
    assert f"server: {url}" in out and "did not answer" in out
    assert f"pending: 3 records of run {'a' * 32}" in out
    assert main(["sync"]) == 1
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "did not answer" in captured.err
    assert len(Spool.for_project(project).read()[0]) == 1  # kept


def test_team_mode_without_a_login_says_what_to_do(project, config_home: Path,
                                                   capsys) -> None:
    (project.home / "config.toml").write_text('[store]\nurl = "https://mlops.example.org"\n')
    assert main(["status"]) == 1
    assert "run `mlops login https://mlops.example.org`" in capsys.readouterr().err


@pytest.mark.parametrize(("status", "kind", "kept"), [
    (500, "server", True), (503, "unavailable", True), (502, None, True),
    (401, "authentication", True), (426, "version", True), (429, "rate_limited", True),
    (403, "permission", False), (404, "not_found", False), (413, "too_large", False),
    (422, "invalid", False), (409, "conflict", False),
])
def test_which_answers_keep_a_batch_for_later(status: int, kind: str | None,
                                              kept: bool) -> None:
    from jupyter_mlops.remote.client import SequenceGap, retryable
    from jupyter_mlops.team_protocol import error_from

    body = {"error": {"kind": kind, "message": "no"}} if kind else "<html>Bad gateway</html>"
    exc = error_from(status, body)
    exc.status = status
    assert retryable(exc) is kept
    assert retryable(SequenceGap("gap", 3)) and retryable(ServerUnreachable("down"))


def test_lines_that_are_not_batches_are_set_aside_the_rest_sent(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.append([batch("a", 1, 1)])
    with open(spool.pending_path, "ab") as out:
        out.write(b'<script>alert(1)</script>\n{"stream": 5, "records": []}\n'
                  b'{"stream": "a", "records": [1, 2]}\n\xff\xfe\x00garbage\n[]\n')
    spool.append([batch("a", 2, 1)])
    sent: list[int] = []
    report = spool.drain(lambda b: sent.append(b.last_seq), lambda exc: True)
    assert sent == [1, 2] and report.left == 0
    assert len(spool.rejected_path.read_text().splitlines()) == 5


def test_a_spool_that_is_a_link_or_a_folder_is_a_clear_error(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.folder.mkdir()
    (tmp_path / "elsewhere").write_text("")
    spool.pending_path.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(InvalidInput, match="a link is refused"):
        spool.read()
    spool.pending_path.unlink()
    spool.pending_path.mkdir()
    with pytest.raises(InvalidInput, match="not a regular file"):
        spool.read()


def test_records_stay_in_memory_when_the_spool_cannot_be_written(tmp_path: Path) -> None:
    from jupyter_mlops.errors import StoreUnavailable

    spool = Spool(tmp_path / "spool")
    spool.folder.mkdir()
    spool.pending_path.mkdir()  # in the way: no append can work
    queue = RecordQueue(Client(f"http://127.0.0.1:{closed_port()}", "mlops_x", timeout=5),
                        spool, interval=3600)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for n in range(1, 11):
                queue.put("s", {"version": 1, "op": "params", "params": {}, "seq": n})
            with pytest.raises(StoreUnavailable, match="cannot write the spool .*mlops sync"):
                queue.flush()
            assert [r["seq"] for _, r in queue._items] == list(range(1, 11))  # none lost
            spool.pending_path.rmdir()
            assert not queue.flush()
        assert [r["seq"] for b in spool.read()[0] for r in b.records] == list(range(1, 11))
    finally:
        queue.stop()


def test_a_credentials_folder_or_huge_file_is_a_clear_error(config_home: Path) -> None:
    path = credentials.credentials_path()
    path.mkdir(parents=True)
    with pytest.raises(InvalidInput, match="not a regular file"):
        credentials.token_for("https://a")
    path.rmdir()
    path.write_bytes(b" " * (credentials.MAX_FILE_SIZE + 10))
    path.chmod(0o600)
    with pytest.raises(InvalidInput, match="not a credentials file"):
        credentials.token_for("https://a")
    with pytest.raises(InvalidInput, match="not a credentials file"):
        credentials.store_token("https://a", "mlops_x")  # login refuses to overwrite it
