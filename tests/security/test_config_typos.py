"""Issue 9 (review): a typo in `.mlops/config.toml` is refused when the file is read, in one
line naming the file, the setting and the type expected; never a traceback, a hang, or a
wrong value silently in force (`protected_aliases = "production"` used to protect every
alias whose name is a letter of "production").

Each case writes a real config file and runs the real `mlops` command.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from jupyter_mlops.config import DEFAULT_CONFIG_TEXT
from jupyter_mlops.errors import InvalidInput
from jupyter_mlops.project import Project, find_project

HANG = 120  # seconds: only turns a hang (a FIFO as the config) into a failure


def mlops(project: Project, *args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([sys.executable, "-m", "jupyter_mlops.cli.main", *args],
                              capture_output=True, text=True, cwd=project.root, timeout=HANG,
                              env={**os.environ, "MLOPS_HOME": str(project.root)})
    except subprocess.TimeoutExpired:
        pytest.fail(f"`mlops {' '.join(args)}` hung reading the config")


def refused(project: Project, message: str) -> None:
    result = mlops(project, "runs", "ls")
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert str(project.home / "config.toml") in result.stderr, result.stderr
    assert message in result.stderr, result.stderr


CASES = [
    ('[registry]\nprotected_aliases = "production"',
     "[registry] protected_aliases must be a list of alias names, got 'production' (a string)"),
    ('[registry]\nprotected_aliases = ["production", 3]',
     "[registry] protected_aliases must be a list of alias names"),
    ('[registry]\nprotected_aliases = ["Production "]',
     "[registry] protected_aliases: alias 'Production ' refused"),
    ('[registry]\nevaluation_data = ""', "[registry] evaluation_data must be a path"),
    ("[registry]\nevaluation_target = 1", "[registry] evaluation_target must be a column name"),
    ("[registry]\nprotected = ['production']", "unknown setting 'protected' in [registry]"),
    ('[[gates]]\ncheck = "accuracy >= 0.9"\nmodels = "churn"',
     "[[gates]] #1 models must be a list of model names, got 'churn' (a string)"),
    ('[[gates]]\ncheck = "accuracy >= 0.9"\n[[gates]]\ncheck = "f1 >= 0.5"\nmodels = ["../x"]',
     "[[gates]] #2 models: model name '../x' refused"),
    ('[[gates]]\nmodels = ["churn"]', "[[gates]] #1 needs a check"),
    ("[[gates]]\ncheck = 0.9", "[[gates]] #1 check must be a gate"),
    ('[[gates]]\ncheck = "accuracy >= 0.9"\nmodel = ["churn"]', "unknown setting 'model' in"),
    ('gates = "accuracy >= 0.9"', "gates must be a list of [[gates]] tables"),
    ('[gates]\ncheck = "accuracy >= 0.9"', "gates must be a list of [[gates]] tables, got a"),
    ('[monitoring]\nmin_rows = "abc"',
     "[monitoring] min_rows must be a whole number >= 1, got 'abc' (a string)"),
    ("[monitoring]\nmin_rows = 2.5", "[monitoring] min_rows must be a whole number"),
    ("[monitoring]\nmin_rows = true", "[monitoring] min_rows must be a whole number"),
    ("[monitoring]\nmax_error_rate = nan",
     "[monitoring] max_error_rate must be a finite number >= 0 and <= 1, got nan"),
    ("[monitoring]\nmax_latency_p95_ms = inf", "[monitoring] max_latency_p95_ms must be a fin"),
    ("[monitoring]\nalpha = -inf", "[monitoring] alpha must be a finite number"),
    ('[monitoring]\nmin_accuracy = "0.9"', "[monitoring] min_accuracy must be a finite number"),
    ("[monitoring]\nmax_ece = true", "[monitoring] max_ece must be a finite number"),
    ("[monitoring]\npsi = 0.2", "unknown setting 'psi' in [monitoring]"),
    ("[tracking]\nheartbeat_seconds = nan",
     "[tracking] heartbeat_seconds must be a finite number > 0, got nan (a number)"),
    ("[tracking]\nstale_after_seconds = inf", "[tracking] stale_after_seconds must be a finite"),
    ('[tracking]\nheartbeat_seconds = "30"', "[tracking] heartbeat_seconds must be a finite"),
    ("[tracking]\nheartbeat_seconds = 200", "need 0 < heartbeat_seconds < stale_after_seconds"),
    ("[tracking]\nheartbeat = 60", "unknown setting 'heartbeat' in [tracking]"),
    ('[store]\ngroup_shared = "true"', "[store] group_shared must be true or false"),
    ("[store]\nallow_network_fs = 1", "[store] allow_network_fs must be true or false"),
    ("[audit]\nkey_file = 5", "[audit] key_file must be a path"),
    ('audit = "x"', "[audit] must be a table, got 'x' (a string)"),
    ('[users.bob]\nroles = "reviewer"', "[users.bob] roles must be a list of roles"),
    ('[users.bob]\nroles = ["boss"]', "[users.bob] roles: unknown role 'boss'"),
    ('[users.bob]\nrole = ["reviewer"]', "unknown setting 'role' in [users.bob]"),
    ('[users]\nbob = "reviewer"', "[users.bob] must be a table, got 'reviewer'"),
    ("[registy]\nprotected_aliases = []", "unknown section [registy]"),
]


@pytest.mark.parametrize(("text", "message"), CASES, ids=[c[0][:40] for c in CASES])
def test_a_typo_is_refused_naming_file_setting_and_type(project: Project, text: str,
                                                        message: str) -> None:
    (project.home / "config.toml").write_text(text + "\n")
    refused(project, message)
    with pytest.raises(InvalidInput, match="config.toml"):
        find_project(project.root)


@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_a_config_that_is_not_a_file_is_refused(project: Project, kind: str) -> None:
    config = project.home / "config.toml"
    config.unlink()
    config.mkdir() if kind == "folder" else os.mkfifo(config, 0o600)
    refused(project, "is not a regular file")
    init = mlops(project, "init")
    assert init.returncode == 1 and "is not a regular file" in init.stderr


def test_a_config_that_is_not_utf8_is_refused(project: Project) -> None:
    (project.home / "config.toml").write_bytes(b"[registry]\nevaluation_target = '\xff'\n")
    refused(project, "not UTF-8")


def test_a_config_nested_absurdly_deep_is_refused(project: Project) -> None:
    (project.home / "config.toml").write_text("a = " + "[" * 100_000 + "]" * 100_000 + "\n")
    refused(project, "nested too deep")


def test_the_default_config_and_every_documented_setting_load(project: Project) -> None:
    """What `mlops init` writes, with every commented-out example switched on, loads."""
    lines = [line[2:] if line.startswith(("# [", "# check", "# models", "# min_accuracy",
                                          "# evaluation", "# roles", "# group_shared",
                                          "# allow_network", "# key_file")) else line
             for line in DEFAULT_CONFIG_TEXT.splitlines()]
    (project.home / "config.toml").write_text("\n".join(lines) + "\n")
    loaded = find_project(project.root)
    assert loaded.registry.protected_aliases == ("production",)
    assert [g.models for g in loaded.registry.gates] == [(), (), ("churn",)]
    assert loaded.registry.roles == {"alice": ("reviewer",)}
    assert loaded.monitoring.min_accuracy == 0.9 and loaded.monitoring.min_rows == 30
    assert loaded.store.audit_key_file == "/etc/jupyter-mlops/audit.key"
    assert mlops(project, "runs", "ls").returncode == 0
