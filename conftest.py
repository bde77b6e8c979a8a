"""Root pytest configuration: every test session gets its own throwaway project.

MLOPS_HOME points at it so that nothing a test (or the nbval run of
notebooks/train.ipynb) records can land in a real project. Tests that need a
project of their own build one with the `project` fixture.
"""

from __future__ import annotations

import os
import tempfile

collect_ignore_glob = ["tests/notebooks/*", "notebooks/outputs/*"]


def pytest_configure(config) -> None:  # noqa: ANN001
    from jupyter_mlops.api import init

    root = tempfile.mkdtemp(prefix="mlops-test-session-")
    init(root)
    os.environ["MLOPS_HOME"] = root
