"""Headers for handing stored bytes to a browser without letting them act as a page.

An artifact is whatever a run stored: an HTML file, an SVG with script, a
`<meta refresh>`. Served inline on the dashboard's or Jupyter's origin it would
run with that origin's cookies. So every download is an attachment, typed as
opaque bytes, never sniffed, and sandboxed should a browser render it anyway.
"""

from __future__ import annotations

from urllib.parse import quote

SANDBOX_CSP = "sandbox; default-src 'none'"


def content_disposition(name: str) -> str:
    """`attachment` with an ASCII fallback and the exact name per RFC 6266 / RFC 5987.

    Only the last path segment is used; quotes, backslashes and control or
    non-ASCII characters never reach the quoted fallback.
    """
    base = name.rsplit("/", 1)[-1] or "download"
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\%;' else "_" for c in base)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(base, safe='')}"


def download_headers(name: str) -> dict[str, str]:
    """Every header a download route sets for stored bytes named `name`."""
    return {
        "Content-Type": "application/octet-stream",
        "Content-Disposition": content_disposition(name),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": SANDBOX_CSP,
        "Cache-Control": "private, no-store",
    }
