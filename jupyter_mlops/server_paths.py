"""Messages that never reveal where things live on the server.

Core errors name files to help the person at the terminal (`artifact ... is
missing from /home/ana/proj/.mlops/artifacts`, `MLOPS_HOME='/srv/x' holds no
.mlops/`). Over HTTP (the JupyterLab routes, the dashboard's pages) that is a map
of the server for whoever reads the reply, so paths under a root the reader knows
are shown relative to it and any other absolute path is replaced by `<server path>`.
"""

from __future__ import annotations

import re
from pathlib import Path

SERVER_PATH = "<server path>"

# A quoted absolute path, whole (it may hold spaces: messages quote paths with repr), or
# a "/" that starts a token (not inside a relative name, URL or number) and what follows
# up to a space, quote or bracket.
_ABSOLUTE = re.compile(r"""(?P<quote>['"])(?P<quoted>/[^'"]*)(?P=quote)"""
                       r"|(?<![\w.:/~%-])/[^\s'\"`<>()\[\]{}]+")


def without_server_paths(message: str, root_dir: str) -> str:
    """`message` with absolute paths made relative to `root_dir`, or hidden."""
    root = str(Path(root_dir).resolve())

    def relative(path: str) -> str:
        if path in (root, root_dir):
            return "."
        for prefix in (root, root_dir.rstrip("/")):
            if path.startswith(prefix + "/"):
                return path[len(prefix) + 1:]
        return SERVER_PATH

    def shown(match: re.Match[str]) -> str:
        if match.group("quoted") is not None:
            quote = match.group("quote")
            return quote + relative(match.group("quoted")) + quote
        path = match.group(0).rstrip(".,;:")
        return relative(path) + match.group(0)[len(path):]

    return _ABSOLUTE.sub(shown, message)
