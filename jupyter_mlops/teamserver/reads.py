"""POST /api/v1/read: the store's read queries, run by the server for a client.

A client in team mode holds a `remote.store.RemoteStore`, whose repositories
have the same read methods as `Store`'s; each call becomes
`{"call": "runs.search", "args": [...], "kwargs": {...}}` and is answered by
the very same repository method on the server's database, so a query has one
implementation whichever side asks. Only the methods in `READ_CALLS` can be
called: nothing here writes, and a write through this route is impossible
rather than refused. Arguments and results travel through `store.codec`.
"""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any

from ..errors import InvalidInput
from ..store import Store, codec
from ..store.ids import storable
from ..team_protocol import READ_CALLS

MAX_ARGS = 16


def check_call(body: object) -> tuple[str, str, list[Any], dict[str, Any]]:
    """(repository, method, args, kwargs) of a read request. Raises `InvalidInput`
    naming what is wrong: an unknown call, arguments that aren't a list and an
    object, or arguments the method does not take."""
    if not isinstance(body, dict) or not isinstance(body.get("call"), str):
        raise InvalidInput('the body must be {"call": "runs.search", "args": [...], '
                           '"kwargs": {...}}')
    repository, _, method = body["call"].partition(".")
    if method not in READ_CALLS.get(repository, ()):
        raise InvalidInput(f"{body['call'][:80]!r} is not a read this server answers; "
                           f"reads: {', '.join(_all_calls())}")
    args, kwargs = body.get("args", []), body.get("kwargs", {})
    if not isinstance(args, list) or not isinstance(kwargs, dict) or \
            len(args) + len(kwargs) > MAX_ARGS:
        raise InvalidInput("args must be a list and kwargs an object, "
                           f"{MAX_ARGS} arguments at most")
    return repository, method, codec.decode(args), codec.decode(kwargs)


def run_read(store: Store, repository: str, method: str, args: list[Any],
             kwargs: dict[str, Any]) -> Any:
    """The encoded result of `store.<repository>.<method>(*args, **kwargs)`."""
    bound = getattr(getattr(store, repository), method)
    try:
        given = inspect.signature(bound).bind(*args, **kwargs).arguments
    except TypeError as exc:
        raise InvalidInput(f"{repository}.{method}: {exc}") from None
    hints = typing.get_type_hints(bound)
    for name, value in given.items():
        if not _fits(value, hints.get(name, Any)):
            raise InvalidInput(f"{repository}.{method}: {name} must be "
                               f"{_spoken(hints[name])}, got {str(value)[:60]!r}")
    return codec.encode(bound(*args, **kwargs))


def _fits(value: Any, hint: Any) -> bool:
    """Whether a decoded argument is of the read method's annotated type. The store's
    queries bind what they are given: a list where a str belongs, or a number too big
    for an INTEGER column, would be the database driver's error (a 500), not the
    client's (a 422)."""
    if hint is Any:
        return True
    if hint is None or hint is type(None):
        return value is None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, option) for option in typing.get_args(hint))
    if origin is tuple:
        items = typing.get_args(hint)
        return isinstance(value, tuple) and len(value) == len(items) and all(
            _fits(item, kind) for item, kind in zip(value, items, strict=True))
    if hint is int:
        return type(value) is int and storable(value)
    if hint is float:
        return type(value) in (int, float) and (type(value) is float or storable(value))
    return type(value) is hint


def _spoken(hint: Any) -> str:
    """A type annotation as the error message says it: `int | None`, `str`."""
    return getattr(hint, "__name__", None) or str(hint).replace("NoneType", "None")


def _all_calls() -> list[str]:
    return [f"{repository}.{method}" for repository, methods in READ_CALLS.items()
            for method in sorted(methods)]
