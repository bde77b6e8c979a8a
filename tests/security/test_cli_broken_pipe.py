"""`mlops ... | head -1` (a script keeping the token `mlops server token create` prints
first): the reader leaving early is not an error, and no traceback is printed. The
`except BrokenPipeError` of `cli.main` came after `except Exception`, so it was
never reached."""

from __future__ import annotations

import subprocess
import sys


def test_a_reader_gone_early_is_not_a_traceback(tmp_path):
    home = tmp_path / "home"
    init = subprocess.run([sys.executable, "-m", "jupyter_mlops.cli.main", "server", "--home",
                           str(home), "init", "--db", f"sqlite:///{tmp_path / 't.db'}",
                           "--artifacts", str(tmp_path / "artifacts")],
                          capture_output=True, text=True, timeout=120)
    assert init.returncode == 0, init.stderr
    proc = subprocess.Popen([sys.executable, "-m", "jupyter_mlops.cli.main", "server",
                             "--home", str(home), "token", "create", "ci", "--role", "runner"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before anything is written
    _, err = proc.communicate(timeout=120)
    assert b"Traceback" not in err, err.decode(errors="replace")
    assert proc.returncode == 0
