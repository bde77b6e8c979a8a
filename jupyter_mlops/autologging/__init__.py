"""Autolog for scikit-learn: every `fit` records its params, metrics, data and model.

`patching` replaces the training methods reversibly, `session` decides which
run a fit records into, `record` says what is recorded, `metrics` computes the
training metrics. Importing this package imports nothing of scikit-learn.
(Not named `autolog`: importing `jupyter_mlops.autolog` would replace the
function `jupyter_mlops.autolog` with the package.)
"""

from __future__ import annotations

from .session import AutologOptions, AutologSession

__all__ = ["AutologOptions", "AutologSession"]
