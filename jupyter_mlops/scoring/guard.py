"""What the scoring service refuses before a request reaches the model.

A model server on loopback is still reachable from every page a browser opens:
by DNS rebinding (a foreign name made to resolve to 127.0.0.1, visible in
`Host`), by a cross-site "simple" POST (`text/plain`, sent without a CORS
preflight), and by bodies built to exhaust memory or the JSON parser. Each rule
here is a pure function of a header or of the body's bytes, so the Tornado
handlers stay thin and the rules are tested without a server.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..errors import InvalidInput
from ..hosts import allowed_hosts, host_allowed

MIB = 1 << 20
DEFAULT_MAX_BODY_MB = 10.0
MAX_DEPTH = 32  # a request is 3 levels deep: {"instances": [{feature: value}]}
DRAIN_FACTOR = 2  # bodies up to this many times the limit are read and dropped (see drain)

_QUOTE = ord('"')
_NOT_STRUCTURE = bytes(sorted(set(range(256)) - set(b'"[]{}')))  # deleted before the scan


@dataclass(frozen=True)
class Refusal:
    """A request refused at the door: the HTTP status and a message for the client."""

    status: int
    message: str


@dataclass(frozen=True)
class RequestPolicy:
    """The names, origins and sizes one `mlops serve` process accepts."""

    hosts: frozenset[str]
    cors_origins: frozenset[str] = frozenset()
    max_body_bytes: int = int(DEFAULT_MAX_BODY_MB * MIB)
    max_depth: int = MAX_DEPTH

    @classmethod
    def build(cls, address: str, allow_hosts: Iterable[str] = (),
              cors_origins: Iterable[str] = (),
              max_body_mb: float = DEFAULT_MAX_BODY_MB) -> RequestPolicy:
        """The policy for a server bound to `address`; raises `InvalidInput` on a bad option."""
        if not 0 < max_body_mb <= 1024:
            raise InvalidInput(f"--max-body-mb must be more than 0 and at most 1024, "
                               f"got {max_body_mb:g}")
        extra = [check_host_name(name) for name in allow_hosts]
        return cls(hosts=allowed_hosts(address, extra),
                   cors_origins=frozenset(normalize_origin(o) for o in cors_origins),
                   max_body_bytes=int(max_body_mb * MIB))

    @property
    def drain_limit(self) -> int:
        """Largest body read (and dropped) so the client can read its 413.

        Closing a connection whose client is still sending makes the kernel reset
        it, and the client then never sees the answer; a body much larger than
        the limit is refused from its headers alone and the connection closed.
        """
        return DRAIN_FACTOR * self.max_body_bytes

    def check_host(self, host: str | None) -> Refusal | None:
        """403 unless `Host` names this server (the defence against DNS rebinding)."""
        if host_allowed(host, self.hosts):
            return None
        allowed = ", ".join(sorted(self.hosts))
        if not host:
            return Refusal(403, f"a request without a Host header is refused; send one of: "
                                f"{allowed}")
        return Refusal(403, f"Host {host[:100]!r} is not a name this server answers to "
                            f"(allowed: {allowed}); to serve under another name, start "
                            f"`mlops serve ... --allow-host NAME`")

    def check_origin(self, origin: str | None) -> Refusal | None:
        """403 for a browser request from a page on another host, unless `--cors-origin`."""
        if origin is None or self.cors_allows(origin):
            return None
        try:
            host = urlsplit(origin.strip()).hostname
        except ValueError:
            host = None
        if origin.strip() != "null" and host is not None and host_allowed(host, self.hosts):
            return None
        return Refusal(403, f"cross-origin request from Origin {origin[:100]!r} refused; to "
                            f"let pages on that origin call this service, start "
                            f"`mlops serve ... --cors-origin ORIGIN` (scheme://host[:port])")

    def cors_allows(self, origin: str | None) -> bool:
        """Whether `origin` is exactly one of the `--cors-origin` values."""
        if not origin or not self.cors_origins:
            return False
        try:
            return normalize_origin(origin) in self.cors_origins
        except InvalidInput:
            return False

    def check_content_type(self, content_type: str | None) -> Refusal | None:
        """415 unless the body is declared `application/json` (UTF-8).

        `text/plain`, form encodings and a missing type are what a page on any
        site can send without a CORS preflight; JSON is not.
        """
        media, _, parameters = (content_type or "").partition(";")
        if media.strip().lower() == "application/json":
            charset = _parameter(parameters, "charset")
            if charset is None or charset.lower() in ("utf-8", "utf8"):
                return None
            return Refusal(415, f"JSON bodies are UTF-8, got charset {charset[:40]!r}; send "
                                f"Content-Type: application/json")
        shown = repr(content_type[:80]) if content_type else "none"
        return Refusal(415, f"POST /predict takes Content-Type: application/json, got "
                            f"{shown}; send the JSON body with that header")

    def check_length(self, content_length: str | None) -> Refusal | None:
        """413 when the declared body is over the limit (before any of it is read)."""
        if content_length is None:
            return None
        try:
            declared = int(content_length.split(",")[0])
        except ValueError:
            return Refusal(400, f"Content-Length {content_length[:40]!r} is not a number")
        return self.too_large(declared) if declared > self.max_body_bytes else None

    def too_large(self, size: int, *, more: bool = False) -> Refusal:
        """The 413 for a body of `size` bytes (`more`: at least that, still arriving)."""
        amount = f"more than {size}" if more else str(size)
        return Refusal(413, f"body of {amount} bytes is over the limit of "
                            f"{self.max_body_bytes / MIB:g} MiB; send fewer instances per "
                            f"request, or start `mlops serve ... --max-body-mb N`")

    def check_expect(self, expect: str | None) -> Refusal | None:
        """417 for an `Expect` other than `100-continue`, the one expectation HTTP defines.

        With `100-continue` a refusal is answered from the headers alone, so the
        client never sends a body that would be dropped.
        """
        if expect is None or expect.strip().lower() == "100-continue":
            return None
        return Refusal(417, f"Expect {expect[:60]!r} is not supported; this service meets "
                            "only Expect: 100-continue (or send the request without Expect)")

    def check_depth(self, body: bytes) -> Refusal | None:
        """400 when the JSON nests deeper than `max_depth` (before it is parsed)."""
        if not nesting_exceeds(body, self.max_depth):
            return None
        return Refusal(400, f"body: JSON nested deeper than {self.max_depth} levels refused; "
                            "send {\"instances\": [{feature: value, ...}]}")


def check_encoding(body: bytes) -> Refusal | None:
    """415 for a body in UTF-16 or UTF-32, told by its byte-order mark or NUL bytes.

    JSON exchanged between systems is UTF-8 (RFC 8259, section 8.1), and so is
    `application/json`; Python's `json.loads` would also read UTF-16 and
    UTF-32, so such a body is named and refused rather than guessed. A JSON
    text starts with an ASCII character, so its first bytes tell (as
    `json.detect_encoding` reads them); a UTF-8 body passes on two byte tests.
    """
    head = body[:4]
    if 0 not in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return None
    encoding = json.detect_encoding(head)
    if not encoding.startswith(("utf-16", "utf-32")):
        return None
    name = encoding.upper().replace("-BE", "").replace("-LE", "")
    return Refusal(415, f"body: this looks like {name}; JSON bodies must be UTF-8 "
                        "(RFC 8259): encode the body as UTF-8")


def not_utf8(body: bytes, error: UnicodeDecodeError) -> Refusal:
    """The 400 for a body that does not decode as UTF-8 (`error` says where)."""
    return Refusal(400, f"body: byte 0x{body[error.start]:02x} at offset {error.start} is not "
                        "UTF-8; JSON bodies must be UTF-8 (RFC 8259): encode the body as "
                        "UTF-8")


def check_unicode(text: str, value: object) -> Refusal | None:
    """400 when a string of the parsed body holds an unpaired UTF-16 surrogate.

    JSON lets `\\ud800` be written alone, but such a string is not Unicode text:
    it cannot be encoded to UTF-8, and so cannot be stored in the prediction
    log or printed. A strict UTF-8 decode already refused raw surrogate bytes,
    so one can only come from a `\\u` escape: a body without one (nearly
    every request) is passed by one substring search of `text`.
    """
    if "\\u" not in text:
        return None
    where = _surrogate_at(value, "")
    if where is None:
        return None
    return Refusal(400, f"{where}: holds an unpaired UTF-16 surrogate (a \\uD800-\\uDFFF "
                        "escape without its other half), which is not text; send valid "
                        "Unicode, each character outside the BMP as a surrogate pair or as "
                        "UTF-8")


_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _has_surrogate(text: str) -> bool:
    return not text.isascii() and _SURROGATE.search(text) is not None


def _surrogate_at(value: object, where: str) -> str | None:
    """Where in `value` (parsed JSON) a key or string holds a surrogate, or None.

    `json` joins a valid escaped pair into one character, so any surrogate
    left in a string is unpaired.
    """
    if isinstance(value, str):
        return (where or "body") if _has_surrogate(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            if _has_surrogate(key):
                return f"a key of {where or 'the body'}"
            found = _surrogate_at(item, f"{where}.{key[:40]}" if where else key[:40])
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _surrogate_at(item, f"{where or 'body'}[{index}]")
            if found is not None:
                return found
    return None


def nesting_exceeds(body: bytes, limit: int) -> bool:
    """Whether brackets outside JSON strings in `body` nest deeper than `limit`.

    Python's `json` parser recurses once per level and raises `RecursionError`
    near 1,000 levels, so depth is read off the bytes before parsing. A body
    with no more than `limit` opening brackets in all (every single-row
    request) is answered by two `bytes.count` calls; any other is scanned in
    numpy, strings left out, in time linear in its size.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    return _deeper_than(body, limit)


def _deeper_than(body: bytes, limit: int, chunk: int = MIB) -> bool:
    """The scan of `nesting_exceeds`: quote parity marks strings, brackets outside count.

    In JSON a backslash only occurs inside a string, as an escape: removing
    escaped backslashes, then escaped quotes, leaves exactly the quotes that
    open and close strings. Everything but quotes and brackets is then
    dropped (`bytes.translate`), and the rest is scanned chunk by chunk,
    carrying the depth and whether the chunk starts inside a string.
    """
    import numpy as np

    text = body.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOT_STRUCTURE)
    depth, inside = 0, 0
    for start in range(0, len(text), chunk):
        part = np.frombuffer(text, np.uint8, min(chunk, len(text) - start), start)
        is_quote = part == _QUOTE
        quotes = np.cumsum(is_quote, dtype=np.int32) + inside
        brackets = part[((quotes & 1) == 0) & ~is_quote]
        if brackets.size:
            # "[" and "{" have bit 1 set, "]" and "}" do not: +1 or -1 per bracket.
            running = np.cumsum((brackets & 2).astype(np.int32) - 1) + depth
            if running.max() > limit:
                return True
            depth = int(running[-1])
        inside = int(quotes[-1]) & 1
    return False


def normalize_origin(origin: str) -> str:
    """`scheme://host[:port]` in lowercase without a default port; `InvalidInput` otherwise."""
    text = origin.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        parts, port = None, None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.hostname \
            or parts.path not in ("", "/") or parts.query or parts.fragment \
            or parts.username is not None or "*" in text:
        raise InvalidInput(f"--cors-origin {origin[:100]!r} refused: give one exact origin, "
                           "scheme://host[:port] like https://app.example.com (no path, no "
                           "wildcard)")
    scheme = parts.scheme.lower()
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}[scheme]
    return f"{scheme}://{host}" + (f":{port}" if port not in (None, default) else "")


def check_host_name(name: str) -> str:
    """An `--allow-host` value: a bare host name or address, no scheme, path or port."""
    text = name.strip()
    if not text or len(text) > 253 or not re.fullmatch(r"\[?[A-Za-z0-9.\-:]+\]?", text) \
            or text.count(":") == 1 or text in ("*", "0.0.0.0", "::"):
        raise InvalidInput(f"--allow-host {name[:100]!r} refused: give a host name or address "
                           "(like models.internal or 10.0.0.5), without scheme, port or "
                           "wildcard")
    return text


def _parameter(parameters: str, name: str) -> str | None:
    for item in parameters.split(";"):
        key, _, value = item.partition("=")
        if key.strip().lower() == name:
            return value.strip().strip('"')
    return None
