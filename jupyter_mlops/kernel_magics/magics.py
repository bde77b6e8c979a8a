"""`%mlops SUBCOMMAND ...`: the magics class, its options, and the dispatch table."""

from __future__ import annotations

import shlex
import traceback
from types import ModuleType
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from traitlets import Bool, Int

from ..errors import MlopsError
from . import (
    artifact_cmd,
    autolog_cmd,
    compare_cmd,
    data_cmd,
    diff_cmd,
    end_cmd,
    init_cmd,
    log_cmd,
    model_cmd,
    param_cmd,
    reproduce_cmd,
    runs_cmd,
    show_cmd,
    start_cmd,
    tag_cmd,
)
from .parsing import HelpShown

COMMANDS: dict[str, ModuleType] = {
    "init": init_cmd, "start": start_cmd, "end": end_cmd, "param": param_cmd,
    "log": log_cmd, "tag": tag_cmd, "data": data_cmd, "artifact": artifact_cmd,
    "model": model_cmd, "runs": runs_cmd, "show": show_cmd, "compare": compare_cmd,
    "diff": diff_cmd, "reproduce": reproduce_cmd, "autolog": autolog_cmd,
}


class Rendered:
    """A result shown as HTML by notebook frontends and as text elsewhere."""

    def __init__(self, text: str, html: str) -> None:
        self.text = text
        self.html = html

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return self.text


@magics_class
class MlopsMagics(Magics):
    """Record runs from a notebook. `%mlops help` lists the subcommands.

    Options (`%config MlopsMagics.<option> = ...`) are traitlets: `Magics` is a
    `Configurable`.
    """

    max_rows = Int(20, help="Rows shown by `%mlops runs` by default.").tag(config=True)
    widgets = Bool(True, help="Show `%mlops runs` as an interactive ipywidgets view when the "
                              "frontend can render widgets.").tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        from ..api import tracker

        self.tracker = tracker()
        self.tracker.history = self._history

    # -- hooks -------------------------------------------------------------------

    def after_cell(self, result: Any) -> None:
        """Remember whether the last cell raised: a run left open at exit ends as failed."""
        error = getattr(result, "error_in_exec", None)
        self.tracker.last_error = (
            None if error is None else "".join(traceback.format_exception_only(error)).strip())

    def _history(self) -> str:
        cells = self.shell.user_ns.get("In", []) if self.shell is not None else []
        return "\n\n".join(cell for cell in cells if cell)

    @property
    def user_ns(self) -> dict[str, Any]:
        return self.shell.user_ns if self.shell is not None else {}

    def show(self, text: str, html: str | None = None) -> None:
        from IPython.display import display

        if html is None:
            html = f"<pre>{_esc(text)}</pre>"
        display(Rendered(text, html))

    def widgets_available(self) -> bool:
        if not self.widgets or self.shell is None:
            return False
        if type(self.shell).__name__ != "ZMQInteractiveShell":
            return False
        try:
            import ipywidgets  # noqa: F401
        except ImportError:
            return False
        return True

    # -- the magic -------------------------------------------------------------------

    @line_magic
    def mlops(self, line: str) -> Any:
        """Track runs: `%mlops help` lists subcommands, `%mlops CMD --help` explains one."""
        try:
            words = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"%mlops: cannot parse the line: {exc}") from None
        if not words or words[0] in ("help", "-h", "--help"):
            if len(words) > 1 and words[1] in COMMANDS:
                words = [words[1], "--help"]
            else:
                self.show(help_text())
                return None
        name, rest = words[0], words[1:]
        command = COMMANDS.get(name)
        if command is None:
            raise UsageError(f"%mlops: unknown subcommand {name!r}; "
                             f"known: {', '.join(COMMANDS)} (`%mlops help`)")
        try:
            args = command.parser().parse_args(rest)
            return command.run(self, args)
        except HelpShown:
            return None
        except MlopsError as exc:
            raise UsageError(f"%mlops {name}: {exc}") from None


def help_text() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = ["%mlops SUBCOMMAND [options]  (`%mlops SUBCOMMAND --help` for details)", ""]
    lines += [f"  {name.ljust(width)}  {module.HELP}" for name, module in COMMANDS.items()]
    return "\n".join(lines)


def _esc(text: str) -> str:
    import html

    return html.escape(text)
