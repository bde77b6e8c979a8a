"""The side panel's pure TypeScript logic, tested with vitest (run through jlpm)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXTENSION = Path(__file__).parent.parent / "extension"


def test_frontend_unit_tests_pass() -> None:
    jlpm = shutil.which("jlpm", path=str(Path(sys.executable).parent)) or shutil.which("jlpm")
    if not (EXTENSION / "node_modules").is_dir() or jlpm is None:
        if os.environ.get("CI"):
            pytest.fail("extension/node_modules is missing: `pip install -e .` builds it")
        pytest.skip("the extension's node_modules are not installed (pip install -e . does it)")
    result = subprocess.run([jlpm, "test"], cwd=EXTENSION, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "passed" in result.stdout
