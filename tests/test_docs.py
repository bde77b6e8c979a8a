"""Every magic subcommand and CLI command is documented in the README (sqlite-utils' way)."""

from __future__ import annotations

from pathlib import Path

import pytest

from jupyter_mlops.cli.main import build_parser
from jupyter_mlops.kernel_magics.magics import COMMANDS

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")


def _cli_commands() -> list[str]:
    commands = []
    top = build_parser()._subparsers._group_actions[0].choices
    for name, parser in top.items():
        subs = parser._subparsers._group_actions[0].choices if parser._subparsers else None
        commands += [f"mlops {name} {sub}" for sub in subs] if subs else [f"mlops {name}"]
    return commands


@pytest.mark.parametrize("name", list(COMMANDS))
def test_magic_subcommand_is_documented(name: str) -> None:
    assert f"%mlops {name}" in README
    assert COMMANDS[name].HELP


@pytest.mark.parametrize("command", _cli_commands())
def test_cli_command_is_documented(command: str) -> None:
    assert command in README


def test_readme_starts_with_the_two_commands() -> None:
    blocks = README.split("```bash\n")[1:3]
    assert blocks[0].startswith(
        "pip install -e . && mlops init && mlops pipeline run pipelines/train.yaml")
    assert blocks[1].startswith("pip install -e '.[test]' && pytest")
