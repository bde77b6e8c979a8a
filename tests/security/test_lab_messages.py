"""Error replies of the lab routes never reveal where things live on the server."""

from __future__ import annotations

import pytest

from jupyter_mlops.lab.messages import SERVER_PATH, without_server_paths

ROOT = "/srv/jupyter root"


@pytest.mark.parametrize(("message", "shown"), [
    ("missing from '/home/ana/my project/.mlops/artifacts'", f"missing from '{SERVER_PATH}'"),
    ('missing from "/home/ana/my project/x"', f'missing from "{SERVER_PATH}"'),
    ("file '/srv/jupyter root/data/my file.csv' changed", "file 'data/my file.csv' changed"),
    ("see /etc/passwd.", f"see {SERVER_PATH}."),
    ("MLOPS_HOME='/srv/x' holds no .mlops/", f"MLOPS_HOME='{SERVER_PATH}' holds no .mlops/"),
    ("see https://x.org/a/b, 3/4 and data/a.csv", "see https://x.org/a/b, 3/4 and data/a.csv"),
])
def test_paths_are_relative_to_the_root_or_hidden(message: str, shown: str) -> None:
    assert without_server_paths(message, ROOT) == shown


def test_no_part_of_a_quoted_path_with_spaces_leaks() -> None:
    message = without_server_paths("cannot read '/home/ana/secret project/key file'", ROOT)
    assert "secret" not in message and "key file" not in message
