"""Behind a proxy (`--behind-proxy`) the rate limit counts wrong tokens per the last
X-Forwarded-For entry, the one the proxy appends. X-Real-Ip, and the entries a client
wrote before the proxy's, are never read: a client that could choose its address would
guess without limit or lock someone else out. The README's nginx site appends it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests

from ..team import team_server

README = Path(__file__).resolve().parents[2] / "README.md"
WRONG = "Bearer mlops_" + "B" * 43


@pytest.fixture(scope="module")
def team(request, tmp_path_factory):
    return team_server(request, tmp_path_factory, "sqlite", "--behind-proxy")


def whoami(team, token: str, **headers: str) -> int:
    return requests.get(team.url + "/api/v1/whoami", timeout=30,
                        headers={"Authorization": token, **headers}).status_code


def test_the_counted_address_is_the_last_forwarded_entry(team):
    answers = [whoami(team, WRONG, **{"X-Forwarded-For": f"10.1.{i}.1, 10.0.0.7"})
               for i in range(21)]
    assert answers[-1] == 429  # the forged first entries changed nothing
    victim = whoami(team, f"Bearer {team.tokens['reader']}",
                    **{"X-Forwarded-For": "10.0.0.7"})
    assert victim == 429
    other = whoami(team, f"Bearer {team.tokens['reader']}",
                   **{"X-Forwarded-For": "10.0.0.8"})
    assert other == 200


def test_x_real_ip_is_not_read(team):
    answers = [whoami(team, WRONG, **{"X-Real-Ip": f"10.2.{i}.1",
                                      "X-Forwarded-For": "10.0.0.9"}) for i in range(21)]
    assert answers[-1] == 429  # a new X-Real-Ip per guess did not dodge the limit


def test_the_readmes_proxy_appends_the_client_address():
    site = re.search(r"```nginx\n(.*?)```", README.read_text(), re.S)
    assert site is not None
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in site.group(1)
    assert "X-Real-IP" not in site.group(1)
