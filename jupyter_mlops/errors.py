"""The exceptions jupyter-mlops raises: one root, a few categories.

Adapters map them once at the boundary: a `UsageError` in the magics, a
non-zero exit with one line on stderr in the CLI.
"""

from __future__ import annotations


class MlopsError(Exception):
    """Root of every error this package raises on purpose."""


class NotFound(MlopsError):
    """A project, run, dataset, artifact or model version does not exist."""


class ProjectNotFound(NotFound):
    """No `.mlops/` folder was found from the working directory upwards."""

    def __init__(self, start: str) -> None:
        self.start = start
        super().__init__(
            f"no jupyter-mlops project found in {start} or any parent folder; "
            "run `mlops init` (shell) or `%mlops init` (notebook) in the project's root"
        )


class InvalidInput(MlopsError):
    """A value given by the user is malformed or refused."""


class FilterSyntaxError(InvalidInput):
    """A run filter expression could not be parsed."""

    # Characters of the expression shown on each side of the caret: a long
    # expression is cut around the place, so the message stays a few lines.
    CONTEXT = 40

    def __init__(self, expression: str, position: int, problem: str) -> None:
        self.expression = expression
        self.position = position
        self.problem = problem
        start = max(0, position - self.CONTEXT)
        end = min(len(expression), position + self.CONTEXT)
        before = "..." if start else ""
        excerpt = "".join(" " if c < " " else c for c in expression[start:end])  # one line
        shown = before + excerpt + ("..." if end < len(expression) else "")
        pointer = " " * (len(before) + position - start) + "^"
        super().__init__(f"bad filter: {problem} at position {position}\n  {shown}\n  {pointer}")


class StoreUnavailable(MlopsError):
    """The store's database refused a write: disk full, read-only, locked too long."""


class Conflict(MlopsError):
    """The request contradicts what is already recorded (e.g. a param logged twice)."""


class PermissionDenied(MlopsError):
    """The acting user may not do this (a role is missing, or it is their own request)."""


class NoActiveRun(MlopsError):
    """A logging call was made while no run was started."""

    def __init__(self) -> None:
        super().__init__("no active run: start one with `%mlops start` or `mlops.start_run()`")


class IntegrityError(MlopsError):
    """Stored bytes no longer match their recorded digest."""

    def __init__(self, what: str, expected: str, actual: str) -> None:
        self.what = what
        self.expected = expected
        self.actual = actual
        super().__init__(f"{what} is corrupted: expected {expected}, found {actual}")


class UntrustedModel(MlopsError):
    """A model file holds types that are not on the trusted list."""

    def __init__(self, types: list[str]) -> None:
        self.types = types
        super().__init__(
            "refusing to load a model holding untrusted types: "
            + ", ".join(types)
            + "; if you trust this file, pass them explicitly: load_model(..., trusted=[...])"
        )


def describe_exception(exc: BaseException) -> str:
    """`TypeName: first line of the message` (at most 200 characters), for one-line errors."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__
