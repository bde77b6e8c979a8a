"""The jupyter_server extension behind the JupyterLab side panel."""

from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "jupyter_mlops.lab"}]


def _load_jupyter_server_extension(server_app: Any) -> None:
    from .routes import setup_routes

    setup_routes(server_app.web_app, server_app.root_dir)
    server_app.log.info("jupyter-mlops: routes under /jupyter-mlops/api")
