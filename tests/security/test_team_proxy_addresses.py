"""Behind a proxy (`--behind-proxy`) the rate limit counts wrong tokens per the address
in X-Real-Ip: a client that could send its own would pick it, guessing without limit
or locking someone else out. The README's nginx site must overwrite it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests

from ..team import team_server

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(scope="module")
def team(request, tmp_path_factory):
    return team_server(request, tmp_path_factory, "sqlite", "--behind-proxy")


def test_the_counted_address_is_the_x_real_ip_header(team):
    wrong = {"Authorization": "Bearer mlops_" + "B" * 43, "X-Real-Ip": "10.0.0.7"}
    answers = [requests.get(team.url + "/api/v1/whoami", headers=wrong, timeout=30)
               for _ in range(21)]
    assert answers[-1].status_code == 429
    victim = requests.get(team.url + "/api/v1/whoami", timeout=30, headers={
        "Authorization": f"Bearer {team.tokens['reader']}", "X-Real-Ip": "10.0.0.7"})
    assert victim.status_code == 429  # why the proxy must set the header itself


def test_the_readmes_proxy_sets_x_real_ip_itself():
    site = re.search(r"```nginx\n(.*?)```", README.read_text(), re.S)
    assert site is not None
    assert "proxy_set_header X-Real-IP $remote_addr;" in site.group(1)
