"""Log lines of a long-running command (a service, a server, the dashboard) on stderr."""

from __future__ import annotations

import logging
import sys


def send_to_stderr(logger: logging.Logger, line_format: str) -> None:
    """Write `logger`'s INFO lines and above to stderr as `line_format` says, and only
    there (not through the root logger); once per process, later calls change nothing."""
    if logger.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(line_format))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
