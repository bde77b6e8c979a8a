"""Attacks on Hub mode (issue 12): hostile Hub user names and tokens against a real Hub,
the kernel's Hub token aimed elsewhere, a Hub that is slow or hands out cached answers,
and the failed-token limit through the Hub's proxy with forged client addresses."""

from __future__ import annotations

import asyncio
import re
import socket

import pytest
import requests

from jupyter_mlops.errors import InvalidInput, StoreUnavailable
from jupyter_mlops.remote.credentials import hub_token_for, token_for
from jupyter_mlops.team_protocol import AuthenticationFailed
from jupyter_mlops.teamserver.hub import HubConfig, HubIdentity, parse_hub_section

from ..helpers import free_port
from ..hub import Hub, hub_fixture

KERNEL = {"JUPYTERHUB_API_TOKEN": "0123abcd" * 4, "JUPYTERHUB_BASE_URL": "/",
          "JUPYTERHUB_PUBLIC_URL": "https://hub.example.org/user/bob/",
          "JUPYTERHUB_API_URL": "http://127.0.0.1:8081/hub/api"}


@pytest.mark.parametrize("url", [
    "https://hub.example.org/services/../user/eve/proxy/9000",   # nginx in front resolves ..
    "https://hub.example.org/services/mlops/../../user/eve/",
    "https://hub.example.org/services/%2e%2e/user/eve/",
    "https://hub.example.org/services/mlops/%2F..%2F..%2Fuser/eve",
    "https://hub.example.org/services/./mlops",
    "https://hub.example.org/services//evil",
])
def test_the_hub_token_does_not_leave_the_services_path_by_dot_segments(url) -> None:
    assert hub_token_for(url, KERNEL) is None


def test_the_hub_token_goes_only_to_the_service_the_admin_names() -> None:
    # bob's server token opens bob's server (access:servers!server): a project config
    # naming another service of the same Hub must not hand it to that service
    kernel = {**KERNEL, "MLOPS_HUB_SERVICE": "mlops"}
    assert hub_token_for("https://hub.example.org/services/eve-notes/", kernel) is None
    assert hub_token_for("https://hub.example.org/services/mlopsx", kernel) is None
    assert hub_token_for("https://hub.example.org/services/mlops/", kernel)
    assert hub_token_for("https://hub.example.org/services/eve-notes/", KERNEL)  # unset: any


def test_a_hub_without_public_url_says_so_instead_of_asking_for_mlops_login(tmp_path) -> None:
    # the README's project config names https://hub.example.org/services/mlops; a Hub
    # without c.JupyterHub.public_url tells the kernel only its internal API address
    kernel = {"JUPYTERHUB_API_TOKEN": "0123abcd" * 4, "XDG_CONFIG_HOME": str(tmp_path),
              "JUPYTERHUB_API_URL": "http://127.0.0.1:8081/hub/api"}
    with pytest.raises(AuthenticationFailed, match="sets c.JupyterHub.public_url"):
        token_for("https://hub.example.org/services/mlops", kernel)
    with pytest.raises(AuthenticationFailed, match=r"only to the Hub's own address, under "
                                                   r"/services/mlops"):
        token_for("https://evil.example/services/mlops",
                  {**kernel, **KERNEL, "MLOPS_HUB_SERVICE": "mlops"})


@pytest.mark.parametrize("member, message", [
    ("user:Alice", "names no user"),              # the Hub lowercases: this is no one
    ("user:\u0430lice", "names no user"),         # a Cyrillic look-alike of alice
    ("user:../alice", "names no user"),
    ("group:ml-reviewers ", "names no group"),    # a trailing space never matches
    ("group: ml-reviewers", "names no group"),
    ("group:ml\nreviewers", "names no group"),
    ("group:" + "g" * 256, "names no group"),
])
def test_a_role_member_that_can_never_match_is_an_error_not_a_silent_403(member,
                                                                          message) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)):
        parse_hub_section({"roles": {"reviewer": [member]}}, "server.toml")
    assert parse_hub_section({"roles": {"reviewer": ["group:ML Reviewers"]}}, "f").roles


def identity(api_url: str, config: HubConfig | None = None, **kwargs) -> HubIdentity:
    return HubIdentity(config or HubConfig(), {"JUPYTERHUB_API_TOKEN": "service-token",
                                "JUPYTERHUB_SERVICE_NAME": "mlops",
                                "JUPYTERHUB_API_URL": api_url}, **kwargs)


def test_a_servers_own_token_never_goes_to_the_hub() -> None:
    # `Authorization: token mlops_...` (or a wrong mlops_ token) is not the Hub's to see:
    # this Hub does not answer, so asking it would be a 503 instead of a plain "unknown"
    hub = identity(f"http://127.0.0.1:{free_port()}/hub/api")
    assert asyncio.run(hub.token_for("mlops_" + "A" * 43)) is None


def test_a_hub_that_accepts_and_never_answers_is_a_503_in_one_line() -> None:
    with socket.socket() as silent:  # the kernel accepts connections; no one reads them
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        hub = identity(f"http://127.0.0.1:{silent.getsockname()[1]}/hub/api", timeout=0.5)

        async def ask() -> None:  # without a timeout of its own HubAuth waits 300 s
            await asyncio.wait_for(hub.token_for("0123abcd" * 4), 30)

        with pytest.raises(StoreUnavailable, match=r"did not answer within 0\.5 s") as err:
            asyncio.run(ask())
    assert "\n" not in str(err.value)


def test_a_redirect_from_the_service_does_not_carry_the_hub_token_along() -> None:
    import http.server
    import threading

    from jupyter_mlops.errors import MlopsError
    from jupyter_mlops.remote.client import Client

    seen: list[str | None] = []
    asked: list[str] = []

    class Elsewhere(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            seen.append(self.headers.get("Authorization"))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    class Redirecting(Elsewhere):
        def do_GET(self) -> None:  # noqa: N802
            asked.append(self.path)
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{other.server_port}/steal")
            self.send_header("Content-Length", "0")
            self.end_headers()

    other = http.server.HTTPServer(("127.0.0.1", 0), Elsewhere)
    service = http.server.HTTPServer(("127.0.0.1", 0), Redirecting)
    for server in (other, service):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(MlopsError):
            Client(f"http://127.0.0.1:{service.server_port}/services/mlops",
                   KERNEL["JUPYTERHUB_API_TOKEN"], timeout=10).whoami()
    finally:
        for server in (other, service):
            server.shutdown()
            server.server_close()
    assert asked and seen == []  # the service was asked; the redirect was not followed


@pytest.fixture(scope="module")
def hub(request, tmp_path_factory) -> Hub:
    return hub_fixture(request, tmp_path_factory)


def whoami(hub: Hub, token: str, scheme: str = "Bearer", **headers: str) -> requests.Response:
    return requests.get(hub.service_url + "/api/v1/whoami", timeout=60,
                        headers={"Authorization": f"{scheme} {token}", **headers})


def test_hostile_hub_user_names_get_no_role_even_in_an_allowed_group(hub) -> None:
    names = ["a" * 100, "\u0430lice", "al\u200bice"]  # the Hub refuses ../x and <script>
    answer = hub.api("POST", "/users", json={"usernames": names})
    assert answer.status_code in (201, 409), answer.text
    assert hub.api("POST", "/groups/ml-reviewers/users",
                   json={"users": names}).status_code == 200
    for name in names:
        answer = whoami(hub, hub.token_for(name))
        assert answer.status_code == 403, (name, answer.text)
        assert "can't be a user here" in answer.json()["error"]["message"]
    assert hub.api("DELETE", "/groups/ml-reviewers/users",
                   json={"users": names}).status_code == 200


def test_tokens_without_the_access_scope_or_of_a_service_get_nothing(hub) -> None:
    narrow = hub.api("POST", "/users/alice/tokens",
                     json={"scopes": ["read:users:name!user=alice"]}).json()["token"]
    answer = whoami(hub, narrow)  # alice's own, but without access:services
    assert answer.status_code == 403 and "access:services" in answer.text, answer.text
    assert whoami(hub, hub.admin_token).status_code == 401  # another service's token


def test_a_hub_admin_passes_the_hubs_check_but_gets_no_admin_role_here(hub) -> None:
    answer = whoami(hub, hub.token_for("dave"))  # Hub admin: access:services, no group
    assert answer.status_code == 200 and answer.json()["roles"] == ["writer"], answer.text


@pytest.mark.parametrize("seconds", [0, 300])
def test_a_group_change_reaches_the_roles_within_cache_seconds_and_no_later(hub,
                                                                            seconds) -> None:
    # ml-leads grants a role only: alice keeps access:services through ml-reviewers
    assert hub.api("POST", "/groups/ml-leads").status_code in (201, 409)
    assert hub.api("POST", "/groups/ml-leads/users",
                   json={"users": ["alice"]}).status_code == 200
    resolver = identity(f"{hub.url}/hub/api", HubConfig(roles={
        "admin": ("group:ml-leads",)}, cache_seconds=seconds))
    token = hub.token_for("alice")
    assert "admin" in asyncio.run(resolver.token_for(token)).roles
    assert hub.api("DELETE", "/groups/ml-leads/users",
                   json={"users": ["alice"]}).status_code == 200
    roles = asyncio.run(resolver.token_for(token)).roles
    # 0 asks the Hub every time (HubAuth's own 0 would cache forever); 300 may answer
    # from the cache for up to the documented 300 s
    assert ("admin" in roles) == (seconds > 0), roles


def test_forged_client_addresses_through_the_hubs_proxy_still_hit_the_limit(hub) -> None:
    # last in this module: it locks 127.0.0.1 out of the service for 30 s
    codes = [whoami(hub, f"{i:032x}", **{"X-Real-IP": f"10.0.{i}.1",
                                         "X-Forwarded-For": f"10.1.{i}.1"}).status_code
             for i in range(30)]
    assert 429 in codes and set(codes[codes.index(429):]) == {429}, codes  # 20 free
    locked = whoami(hub, hub.token_for("alice"))
    assert locked.status_code == 429 and "127.0.0.1" in locked.text, locked.text
