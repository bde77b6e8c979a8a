"""A real JupyterLab for browser tests, loading THIS tree's built panel (not an older
copy installed in the environment). The panel must have been built (`jlpm build:prod`
in extension/)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import jupyter_mlops

from .helpers import free_port, wait_until_serving


@contextlib.contextmanager
def running_lab(root: Path, token: str, tmp_path_factory) -> Iterator[str]:
    """JupyterLab on `root` (bound to 127.0.0.1) until the block ends; yields its URL."""
    built = Path(jupyter_mlops.__file__).parent / "labextension"
    if not (built / "package.json").exists():
        pytest.fail(f"the panel is not built at {built}: run `jlpm build:prod` in extension/")
    extensions = tmp_path_factory.mktemp("labextensions")
    (extensions / "jupyter-mlops").symlink_to(built)
    settings = tmp_path_factory.mktemp("lab-settings")
    port = free_port()
    log = (settings / "lab.log").open("w")  # a file: a full pipe would stall the server
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}",
         "--ip=127.0.0.1", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={root}", f"--LabApp.user_settings_dir={settings}",
         f"--LabApp.workspaces_dir={settings}", "--allow-root",
         f"--LabApp.extra_labextensions_path={extensions}"],
        cwd=root, env={**os.environ, "MLOPS_HOME": str(root)},
        stdout=log, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_until_serving(f"{base}/api/status?token={token}", server)
        except BaseException:
            print((settings / "lab.log").read_text())
            raise
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
