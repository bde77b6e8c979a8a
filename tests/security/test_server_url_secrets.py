"""A server URL carrying a token (`?token=mlops_...`, `#mlops_...`) is refused without
repeating the token: the message lands in terminals, CI logs and notebooks."""

from __future__ import annotations

import pytest

from jupyter_mlops.config import check_server_url
from jupyter_mlops.errors import InvalidInput

SECRET = "mlops_" + "S" * 43


@pytest.mark.parametrize("url", [f"https://mlops.example.org/?token={SECRET}",
                                 f"https://mlops.example.org:8765#{SECRET}",
                                 f"http://{SECRET}@127.0.0.1:8765"])
def test_a_url_holding_a_token_is_refused_without_repeating_it(url):
    with pytest.raises(InvalidInput) as refused:
        check_server_url(url)
    assert "S" * 10 not in str(refused.value)
    assert "mlops.example.org" in str(refused.value) or "127.0.0.1" in str(refused.value)
