"""Reproducing runs from their record: the environment a run was recorded in, and how
today's differs (issue 13 builds `mlops reproduce` and `mlops runs diff` here)."""
