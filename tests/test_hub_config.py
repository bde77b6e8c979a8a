"""The parts of Hub mode that need no Hub: server.toml's [hub] section, roles from groups,
and which URLs a kernel's JUPYTERHUB_API_TOKEN may be sent to."""

from __future__ import annotations

import re

import pytest

from jupyter_mlops.errors import InvalidInput, StoreUnavailable
from jupyter_mlops.remote.credentials import hub_token_for, token_for
from jupyter_mlops.team_protocol import AuthenticationFailed
from jupyter_mlops.teamserver.home import ServerHome
from jupyter_mlops.teamserver.hub import HubConfig, HubIdentity, parse_hub_section

from .helpers import free_port
from .team import mlops

KERNEL = {"JUPYTERHUB_API_TOKEN": "0123abcd" * 4, "JUPYTERHUB_BASE_URL": "/",
          "JUPYTERHUB_PUBLIC_URL": "https://hub.example.org/user/bob/",
          "JUPYTERHUB_PUBLIC_HUB_URL": "https://hub.example.org/hub/",
          "JUPYTERHUB_API_URL": "http://127.0.0.1:8081/hub/api"}


def test_roles_are_the_default_plus_every_role_naming_the_user_or_a_group() -> None:
    config = parse_hub_section({"roles": {"reviewer": ["group:ml-reviewers"],
                                          "admin": ["user:root-admin", "group:ml-admins"]}},
                               "server.toml")
    assert config.roles_of("bob", []) == ("writer",)
    assert config.roles_of("alice", ["ml-reviewers", "other"]) == ("writer", "reviewer")
    assert config.roles_of("root-admin", []) == ("writer", "admin")
    closed = parse_hub_section({"default_roles": [], "roles": {"reader": ["group:x"]}}, "f")
    assert closed.roles_of("bob", []) == () and closed.roles_of("bob", ["x"]) == ("reader",)


@pytest.mark.parametrize("section, message", [
    ({"default_roles": ["boss"]}, "'boss' is not a role"),
    ({"roles": {"reviewer": "group:x"}}, "[hub.roles] reviewer must be a list"),
    ({"roles": {"reviewer": ["team:x"]}}, "\"group:NAME\" or \"user:NAME\""),
    ({"roles": {"king": ["group:x"]}}, "'king' is not a role"),
    ({"default_role": ["writer"]}, "unknown keys default_role"),
    ({"cache_seconds": -1}, "cache_seconds must be 0 to 3600"),
])
def test_a_bad_hub_section_is_one_clear_error(section, message) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)):
        parse_hub_section(section, "server.toml")


def test_the_hub_section_survives_init_again_and_needs_the_hubs_environment(tmp_path) -> None:
    home = tmp_path / "home"
    args = ("--db", f"sqlite:///{tmp_path / 'team.db'}", "--artifacts", str(tmp_path / "a"))
    mlops(home, "init", *args)
    with (home / "server.toml").open("a") as toml:
        toml.write('[hub]\n[hub.roles]\nreviewer = ["group:ml-reviewers"]\n')
    mlops(home, "init", *args)  # rewrites server.toml: [hub] is kept
    config = ServerHome(home).config.hub
    assert config == HubConfig(roles={"reviewer": ("group:ml-reviewers",)})
    with pytest.raises(InvalidInput, match="JUPYTERHUB_API_TOKEN, JUPYTERHUB_API_URL is not"):
        HubIdentity(config, {})


@pytest.mark.parametrize("url", ["https://hub.example.org/services/mlops",
                                 "http://127.0.0.1:8081/services/mlops"])
def test_a_kernel_sends_its_hub_token_to_the_hubs_own_services(url, tmp_path) -> None:
    assert hub_token_for(url, KERNEL) == KERNEL["JUPYTERHUB_API_TOKEN"]
    kernel = {**KERNEL, "XDG_CONFIG_HOME": str(tmp_path)}  # no `mlops login` file
    assert token_for(url, kernel) == KERNEL["JUPYTERHUB_API_TOKEN"]


@pytest.mark.parametrize("url", ["https://evil.example.org/services/mlops",
                                 "http://hub.example.org/services/mlops",  # scheme differs
                                 "https://hub.example.org:8443/services/mlops",
                                 "https://hub.example.org/services",
                                 "https://hub.example.org/user/bob/mlops"])
def test_the_hub_token_goes_nowhere_else(url, tmp_path) -> None:
    assert hub_token_for(url, KERNEL) is None
    with pytest.raises(AuthenticationFailed, match="no token for"):
        token_for(url, {**KERNEL, "XDG_CONFIG_HOME": str(tmp_path)})


def test_a_hub_under_a_base_url_and_explicit_tokens_first(tmp_path) -> None:
    kernel = {**KERNEL, "JUPYTERHUB_BASE_URL": "/jh/"}
    assert hub_token_for("https://hub.example.org/jh/services/mlops", kernel)
    assert hub_token_for("https://hub.example.org/services/mlops", kernel) is None
    assert token_for("https://hub.example.org/jh/services/mlops",
                     {**kernel, "MLOPS_TOKEN": "mlops_given"}) == "mlops_given"


def test_a_hub_that_does_not_answer_is_a_503_not_a_401() -> None:
    import asyncio

    identity = HubIdentity(HubConfig(), {
        "JUPYTERHUB_API_TOKEN": "service-token", "JUPYTERHUB_SERVICE_NAME": "mlops",
        "JUPYTERHUB_API_URL": f"http://127.0.0.1:{free_port()}/hub/api"})
    with pytest.raises(StoreUnavailable, match="the JupyterHub did not answer"):
        asyncio.run(identity.token_for("0123abcd" * 4))
