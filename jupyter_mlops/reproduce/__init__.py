"""Reproducing and explaining runs from their record: `mlops reproduce` (run.py, with
inputs.py, execute.py and compare.py), `mlops pipeline reproduce` (pipeline.py), `mlops
runs diff` (diff.py), a run's environment as requirements (environment.py), and whether
a run can be re-executed at all (readiness.py)."""
