"""MLflow's own virtual environment, shared by the benchmarks that run it beside us.

MLflow is never a dependency of ours: it is installed into
benchmarks/.data/mlflow-venv on first use. Each benchmark names what else it needs
there (scikit-learn at our version to load the same models, a PostgreSQL driver);
what was installed is noted beside the environment, so pip runs again only for a
requirement not installed yet, whichever benchmark made the environment.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

MLFLOW_VENV = Path(__file__).resolve().parent / ".data" / "mlflow-venv"
_INSTALLED = MLFLOW_VENV / "installed-by-benchmarks.txt"


def mlflow_python(*requirements: str) -> Path:
    """The environment's Python, with `mlflow` and `requirements` installed."""
    python = MLFLOW_VENV / "bin" / "python"
    if not python.exists():
        print("making MLflow's virtual environment (once)...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(MLFLOW_VENV)], check=True)
    done = set(_INSTALLED.read_text().split()) if _INSTALLED.exists() else set()
    wanted = ["mlflow", *requirements]
    missing = [r for r in wanted if r not in done]
    if missing:
        print(f"installing {' '.join(missing)} into MLflow's environment...", flush=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *missing], check=True)
        _INSTALLED.write_text("\n".join(sorted(done | set(missing))) + "\n")
    return python


def sklearn_pin() -> str:
    """Our scikit-learn version, for MLflow's side to load and fit the same models."""
    import sklearn

    return f"scikit-learn=={sklearn.__version__}"
