"""jupyter-mlops: track, automate, govern and deploy models that start in notebooks.

    import jupyter_mlops as mlops
    with mlops.start_run(name="baseline") as run:
        run.log_params({"C": 0.5})
        run.log_metric("acc", 0.91)

In a notebook: `%load_ext jupyter_mlops`, then `%mlops help`.
Importing this package opens nothing and loads no heavy dependency.
"""

from __future__ import annotations

from .api import (
    active_run,
    autolog,
    compare,
    end_run,
    get_run,
    init,
    load_model,
    log_artifact,
    log_dataset,
    log_metric,
    log_metrics,
    log_model,
    log_param,
    log_params,
    log_predictions,
    search_runs,
    set_tags,
    show_run,
    start_run,
    tracker,
    use_tracker,
)
from .errors import (
    Conflict,
    FilterSyntaxError,
    IntegrityError,
    InvalidInput,
    MlopsError,
    NoActiveRun,
    NotFound,
    ProjectNotFound,
    UntrustedModel,
)
from .tracking import ActiveRun, Tracker

__version__ = "0.1.0"

__all__ = [
    "ActiveRun", "Conflict", "FilterSyntaxError", "IntegrityError", "InvalidInput",
    "MlopsError", "NoActiveRun", "NotFound", "ProjectNotFound", "Tracker", "UntrustedModel",
    "active_run", "autolog", "compare", "end_run", "get_run", "init", "load_ipython_extension",
    "load_model", "log_artifact", "log_dataset", "log_metric", "log_metrics", "log_model",
    "log_param", "log_params", "log_predictions", "search_runs", "set_tags", "show_run",
    "start_run", "tracker", "use_tracker",
]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "jupyter-mlops"}]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "jupyter_mlops.lab"}]


def load_ipython_extension(ipython) -> None:  # noqa: ANN001 - IPython's shell
    """`%load_ext jupyter_mlops`: register the `%mlops` magics."""
    from .kernel_magics import register

    register(ipython)


def unload_ipython_extension(ipython) -> None:  # noqa: ANN001
    from .kernel_magics import unregister

    unregister(ipython)
