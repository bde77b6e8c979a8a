"""Which `Host` a local web server answers: the defence against DNS rebinding.

A page on `evil.example` whose name is made to resolve to 127.0.0.1 reaches a
server bound to loopback with `Host: evil.example`. Answering only the names
the server was started for (the bound address, the loopback names, and what
the admin adds with `--allow-host`) closes that door. The dashboard and
`mlops serve` both check every request and websocket with these functions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from .errors import InvalidInput

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
_HOST_NAME = re.compile(r"\[?[A-Za-z0-9.\-:]+\]?")
WILDCARDS = ("*", "0.0.0.0", "::")


def allowed_hosts(bind_address: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """Host names (lowercase, no port, IPv6 without brackets) a server answers."""
    names = {*LOOPBACK_NAMES, _bare(bind_address)}
    names.update(_bare(name) for name in extra)
    names.discard("")
    names.discard("0.0.0.0")  # a wildcard bind is not a name anyone should send
    names.discard("::")
    return frozenset(names)


def check_host_name(name: str, option: str = "--allow-host") -> str:
    """An `--allow-host` value: a bare host name or address, no scheme, path, port or wildcard.

    Raises `InvalidInput` naming the value: a wildcard (`*`, `*.example.com`,
    `0.0.0.0`) would turn the Host check (and Bokeh's websocket origin list,
    where `*` matches anything) off.
    """
    text = name.strip()
    if not text or len(text) > 253 or not _HOST_NAME.fullmatch(text) \
            or text.count(":") == 1 or _bare(text) in WILDCARDS:
        raise InvalidInput(f"{option} {name[:100]!r} refused: give a host name or address "
                           "(like models.internal or 10.0.0.5), without scheme, port or "
                           "wildcard")
    return text


def host_allowed(host_header: str | None, allowed: frozenset[str]) -> bool:
    """Whether a request's `Host` header (with or without a port) names this server."""
    if not host_header:
        return False
    return _bare(_strip_port(host_header.strip())) in allowed


def origin_host(origin: str | None) -> str | None:
    """The host name of an `Origin` header, or None when absent or `null`."""
    if not origin or origin == "null":
        return None
    try:
        host = urlsplit(origin).hostname
    except ValueError:
        return None
    return host.lower() if host else None


def _strip_port(host: str) -> str:
    if host.startswith("["):  # [::1]:8080
        return host[: host.find("]") + 1] if "]" in host else host
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


def _bare(name: str) -> str:
    return name.strip().lower().removeprefix("[").removesuffix("]").rstrip(".")


def cannot_listen(error: OSError, address: str, port: int) -> InvalidInput:
    """The one-line error of a server that could not bind `address:port`."""
    import errno

    where = f"{address}:{port}"
    if error.errno == errno.EADDRINUSE:
        return InvalidInput(f"port {port} is in use on {address}: stop what listens there "
                            "or pick another with --port")
    if error.errno == errno.EADDRNOTAVAIL:
        return InvalidInput(f"cannot listen on {where}: this machine has no such address "
                            "(see --address)")
    if error.errno == errno.EACCES:
        return InvalidInput(f"cannot listen on {where}: permission denied (ports below "
                            "1024 need privileges)")
    return InvalidInput(f"cannot listen on {where}: {error.strerror or error}")
