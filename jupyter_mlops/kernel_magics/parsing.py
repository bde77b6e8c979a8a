"""Argument parsing for magics: errors become `UsageError`, `--help` never exits."""

from __future__ import annotations

import argparse
import ast
from collections.abc import Mapping
from typing import Any, NoReturn

from IPython.core.error import UsageError


class HelpShown(Exception):  # noqa: N818 - control flow, not an error
    """Raised after `--help` printed its text, instead of exiting the kernel."""


class MagicParser(argparse.ArgumentParser):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("add_help", True)
        super().__init__(**kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see `{self.prog} --help`)")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            print(message)
        raise HelpShown()


_MISSING = object()
_NON_FINITE = {"nan", "inf", "infinity"}


def resolve_value(text: str, namespace: Mapping[str, Any]) -> Any:
    """A Python literal (`0.5`, `[1, 2]`, also `nan`, `inf`, `-inf`), else a variable of
    the user's namespace, else text."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        pass
    if text.lower().lstrip("+-") in _NON_FINITE:
        return float(text)
    if text.isidentifier():
        value = namespace.get(text, _MISSING)
        if value is not _MISSING:
            return value
    return text


def split_assignments(items: list[str], namespace: Mapping[str, Any]) -> dict[str, Any]:
    """`C=0.5 acc` -> {"C": 0.5, "acc": <value of variable acc>}."""
    values: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        name = name.strip()
        if not name:
            raise UsageError(f"{item!r}: expected NAME=VALUE or a variable name")
        if sep:
            values[name] = resolve_value(raw.strip(), namespace)
        else:
            if not name.isidentifier() or name not in namespace:
                raise UsageError(f"{name!r} is not a variable of this notebook; "
                                 f"write {name}=VALUE to give the value")
            values[name] = namespace[name]
    return values
