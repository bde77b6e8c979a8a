"""The reversible patch of scikit-learn's training methods.

While autolog is on, the methods named in `TRAINING_METHODS` (and `score`) of
every estimator class are replaced by a thin wrapper that hands the call to a
`handler`. The mechanism, in full:

- `Patches.apply()` walks `sklearn.base.BaseEstimator` and its subclasses
  loaded so far (`__subclasses__`, recursively), plus the mixins of
  `sklearn.base` (`TransformerMixin.fit_transform`, ...), and replaces each
  method a class defines itself (`cls.__dict__`), keeping the original. An
  inherited method is reached through the class that defines it. A method
  behind sklearn's `available_if` descriptor keeps its descriptor: only the
  descriptor's function is wrapped, so `hasattr(pipe, "fit_predict")` says
  what it said before.
- The public metric functions of `sklearn.metrics` (`accuracy_score`, ...) are
  replaced as attributes of that module, to see the predictions of an
  autologged model being scored.
- Classes defined later (a module imported after `%mlops autolog`) are patched
  when they are created, with the classes they inherit from (mixins), by an
  `__init_subclass__` added to `BaseEstimator` for the time autolog is on.
  Nothing imports the rest of scikit-learn.
- `Patches.restore()` puts every original back and removes the hook. When
  something else wrapped our wrapper in the meantime (scikit-learn's
  `set_output` wraps `fit_transform` of a class created while autolog is on,
  keeping ours in its closure and as `__wrapped__`), the original goes back
  into that closure, so the class ends exactly as if autolog had never been on.
  A wrapper we can't reach that way stays, and since its switch is off it calls
  the original at once.

Every wrapper checks its `Switch` first, so a wrapper left anywhere costs one
attribute read once autolog is off.
"""

from __future__ import annotations

import copy
import functools
import types
from collections.abc import Callable
from typing import Any

TRAINING_METHODS = ("fit", "fit_transform", "fit_predict", "partial_fit")
EVALUATION_METHODS = ("score", "predict", "predict_proba", "decision_function")
PATCHED_METHODS = TRAINING_METHODS + EVALUATION_METHODS
MARK = "__mlops_autolog__"

# handler(estimator, method name, original function, args, kwargs) -> the method's result
Handler = Callable[[Any, str, Callable[..., Any], tuple, dict], Any]


class Switch:
    """Whether the wrappers of one `Patches` hand calls to their handler."""

    def __init__(self) -> None:
        self.on = True


class Patches:
    """The methods one autolog session replaced, and how to put them back."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self.switch = Switch()
        self._replaced: list[tuple[Any, str, Any, Any]] = []  # (class or module, name, old, new)
        self._hook: tuple[type, Any] | None = None  # (BaseEstimator, its own __init_subclass__)
        self._seen: set[type] = set()  # classes patched (or found with nothing to patch)
        self._metrics_patched = False

    @property
    def count(self) -> int:
        """How many methods are replaced (for tests and `%mlops autolog`'s message)."""
        return len(self._replaced)

    def apply(self) -> None:
        """Patch every estimator class loaded now, and those created until `restore()`."""
        import sklearn.base

        base = sklearn.base.BaseEstimator
        pending = [base, *(value for value in vars(sklearn.base).values()
                           if isinstance(value, type) and value.__module__ == "sklearn.base")]
        while pending:
            cls = pending.pop()
            if cls not in self._seen:
                self.patch_class(cls)
                pending.extend(cls.__subclasses__())
        self._install_hook(base)

    def patch_new_class(self, cls: type) -> None:
        """Patch a class just created, and the classes it inherits from that were not
        patched yet (a mixin imported with it, e.g. `LinearClassifierMixin.predict`)."""
        for klass in cls.__mro__:
            if klass not in self._seen:
                self.patch_class(klass)

    def patch_class(self, cls: type) -> None:
        self._seen.add(cls)
        for name in PATCHED_METHODS:
            current = cls.__dict__.get(name)
            if current is None:
                continue
            replacement = self._wrapped(current, name)
            if replacement is not None:
                setattr(cls, name, replacement)
                self._replaced.append((cls, name, current, replacement))

    def _wrapped(self, current: Any, name: str) -> Any:
        """A replacement for `current`, or None when it is not something we can wrap."""
        if isinstance(current, types.FunctionType):
            return None if getattr(current, MARK, None) is self.switch else \
                _wrapper(current, name, self._handler, self.switch)
        function = getattr(current, "fn", None)  # sklearn's available_if descriptor
        if isinstance(function, types.FunctionType) and getattr(function, MARK, None) \
                is not self.switch:
            descriptor = copy.copy(current)
            descriptor.fn = _wrapper(function, name, self._handler, self.switch)
            return descriptor
        return None

    def patch_metric_functions(self) -> None:
        """Wrap the public `sklearn.metrics.*_score`, `*_error` and `*_loss` functions, as
        attributes of `sklearn.metrics` (a name imported from it before autolog started
        keeps the original); the handler gets them with `estimator=None`. Once."""
        if self._metrics_patched:
            return
        self._metrics_patched = True
        import sklearn.metrics

        for name in getattr(sklearn.metrics, "__all__", ()):
            current = getattr(sklearn.metrics, name, None)
            if not isinstance(current, types.FunctionType) or \
                    not name.endswith(("_score", "_error", "_loss")) or \
                    getattr(current, MARK, None) is self.switch:
                continue
            replacement = _function_wrapper(current, name, self._handler, self.switch)
            setattr(sklearn.metrics, name, replacement)
            self._replaced.append((sklearn.metrics, name, current, replacement))  # type: ignore[arg-type]

    def _install_hook(self, base: type) -> None:
        own = base.__dict__.get("__init_subclass__")
        patches = self

        def __init_subclass__(cls: type, **kwargs: Any) -> None:  # noqa: N807
            if own is not None:
                own.__get__(None, cls)(**kwargs)
            else:
                super(base, cls).__init_subclass__(**kwargs)
            if patches.switch.on:
                patches.patch_new_class(cls)

        base.__init_subclass__ = classmethod(__init_subclass__)  # type: ignore[assignment]
        self._hook = (base, own)

    def restore(self) -> None:
        """Put every original method back; idempotent."""
        self.switch.on = False
        if self._hook is not None:
            base, own = self._hook
            if own is None:
                del base.__init_subclass__
            else:
                base.__init_subclass__ = own  # type: ignore[assignment]
            self._hook = None
        for owner, name, original, replacement in reversed(self._replaced):
            current = vars(owner).get(name)
            if current is replacement:
                setattr(owner, name, original)
            else:
                _unwrap_inside(current, replacement, original)
        self._replaced.clear()
        self._seen.clear()
        self._metrics_patched = False


def _unwrap_inside(outer: Any, replacement: Any, original: Any) -> None:
    """Put `original` where `replacement` sits inside a decorator `outer` put around it
    (a `functools.wraps` wrapper: `__wrapped__`, a closure variable, and our mark that
    `functools.wraps` copied along with the rest of the wrapped function's `__dict__`)."""
    function = getattr(outer, "fn", outer)  # sklearn's available_if descriptor
    if getattr(function, "__wrapped__", None) is not replacement:
        return
    cells = [cell for cell in function.__closure__ or ()
             if _cell_value(cell) is replacement]
    if len(cells) == 1:
        cells[0].cell_contents = original
        function.__wrapped__ = original
        vars(function).pop(MARK, None)


def _cell_value(cell: Any) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # a closure variable not assigned yet
        return None


def _wrapper(original: Callable[..., Any], name: str, handler: Handler,
             switch: Switch) -> Callable[..., Any]:
    @functools.wraps(original)
    def patched(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not switch.on:
            return original(self, *args, **kwargs)
        return handler(self, name, original, args, kwargs)

    setattr(patched, MARK, switch)
    return patched


def _function_wrapper(original: Callable[..., Any], name: str, handler: Handler,
                      switch: Switch) -> Callable[..., Any]:
    @functools.wraps(original)
    def patched(*args: Any, **kwargs: Any) -> Any:
        if not switch.on:
            return original(*args, **kwargs)
        return handler(None, name, original, args, kwargs)

    setattr(patched, MARK, switch)
    return patched
