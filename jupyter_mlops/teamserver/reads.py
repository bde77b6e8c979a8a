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
from typing import Any

from ..errors import InvalidInput
from ..store import Store, codec, shapes
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
    hints = shapes.read_hints(repository, method)
    for name, value in given.items():
        if not shapes.fits(value, hints.get(name, Any)):
            raise InvalidInput(f"{repository}.{method}: {name} must be "
                               f"{shapes.spoken(hints[name])}, got {shapes.described(value)}")
    return codec.encode(bound(*args, **kwargs))


def _all_calls() -> list[str]:
    return [f"{repository}.{method}" for repository, methods in READ_CALLS.items()
            for method in sorted(methods)]
