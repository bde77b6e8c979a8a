"""Issue 9, point 16: deep or long filters are a FilterSyntaxError with a caret at
every door (the Python API, `mlops runs ls`, `%mlops runs`, the JupyterLab route), never a
RecursionError, a traceback or a 500."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import tornado.httpclient

import jupyter_mlops as mlops
from jupyter_mlops.errors import FilterSyntaxError
from jupyter_mlops.store.filters import MAX_DEPTH, MAX_LENGTH

pytest_plugins = ("pytest_jupyter.jupyter_server",)

# The inputs that crashed before the bounds: 660 parentheses, 490 `not`s, and more.
HOSTILE = {
    "parentheses": "(" * 660 + "metrics.acc > 0" + ")" * 660,
    "nots": "not " * 490 + "metrics.acc > 0",
    "unclosed": "(" * 5000,
    "mixed": "(not " * 400 + "id = 1" + ")" * 400,
    "long": " or ".join(["metrics.acc > 0"] * 400),
}


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"jupyter_mlops.lab": True}}}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_search_runs_refuses_with_a_caret(store_with_runs, kind: str) -> None:
    expression = HOSTILE[kind]
    with pytest.raises(FilterSyntaxError) as info:
        mlops.search_runs(expression)
    message = str(info.value)
    first, shown, caret = message.split("\n")
    assert first.startswith("bad filter: ")
    assert (f"more than {MAX_LENGTH}" if kind in ("long", "unclosed")
            else f"nested more than {MAX_DEPTH} deep") in first
    assert len(shown) < 100 and caret.strip() == "^"
    assert shown[caret.index("^")] == expression[info.value.position]


def test_the_limits_leave_room_for_real_filters(store_with_runs) -> None:
    nested = "(" * MAX_DEPTH + "metrics.acc > 0.85" + ")" * MAX_DEPTH
    negated = "not " * (MAX_DEPTH - 1) + "not status = 'failed'"
    assert [r.name for r in mlops.search_runs(nested)] == ["run-2", "run-1"]
    assert [r.name for r in mlops.search_runs(negated)] == ["run-2"]


@pytest.mark.parametrize("kind", ["parentheses", "nots", "long"])
def test_cli_prints_one_error_without_a_traceback(store_with_runs, project, kind: str) -> None:
    result = subprocess.run([sys.executable, "-m", "jupyter_mlops.cli.main", "runs", "ls",
                             "--filter", HOSTILE[kind]], capture_output=True, text=True,
                            timeout=120, cwd=project.root)
    assert result.returncode in (1, 2)
    assert "Traceback" not in result.stderr and "RecursionError" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith("mlops: error: bad filter: ")
    assert len(lines) == 3 and lines[2].strip() == "^"  # the excerpt and its caret
    assert len(result.stderr) < 400


@pytest.mark.parametrize("kind", ["parentheses", "nots"])
def test_magic_raises_a_usage_error(ipython, store_with_runs, kind: str) -> None:
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match=f"nested more than {MAX_DEPTH} deep"):
        ipython.run_line_magic("mlops", f'runs --static --filter "{HOSTILE[kind]}"')


@pytest.mark.parametrize("kind", ["parentheses", "nots", "mixed"])
async def test_lab_route_answers_400_with_a_message(jp_fetch, store_with_runs,
                                                    kind: str) -> None:
    with pytest.raises(tornado.httpclient.HTTPClientError) as info:
        await jp_fetch("jupyter-mlops", "api", "runs", params={"filter": HOSTILE[kind]},
                       method="GET")
    assert info.value.code == 400
    message = json.loads(info.value.response.body)["message"]
    assert message.startswith("bad filter: ") and f"more than {MAX_DEPTH} deep" in message
