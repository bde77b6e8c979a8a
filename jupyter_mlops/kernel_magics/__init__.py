"""The `%mlops` magics: one small module per subcommand, dispatched from `magics.COMMANDS`."""

from __future__ import annotations


def register(ipython) -> None:  # noqa: ANN001 - IPython's InteractiveShell
    from .magics import MlopsMagics

    magics = MlopsMagics(shell=ipython)
    ipython.register_magics(magics)
    ipython.events.register("post_run_cell", magics.after_cell)


def unregister(ipython) -> None:  # noqa: ANN001
    """`%unload_ext jupyter_mlops`: the magics stop reacting to cells, and autolog (if on)
    stops patching scikit-learn, as `%mlops autolog --off` would."""
    from .autolog_cmd import stop_autolog

    stop_autolog()
    magics = ipython.magics_manager.registry.get("MlopsMagics")
    if magics is not None:
        try:
            ipython.events.unregister("post_run_cell", magics.after_cell)
        except ValueError:
            pass
