"""One autolog session: the patches it applied, the run it opened, the models it saw.

`%mlops autolog` and `mlops.autolog()` make one session (and `--off` stops it).
For each outermost training call it decides where the records go:

- a run the user started is active: into it;
- else a run named after the estimator is started (for a search, on a thread
  while it fits: `RunStarter`), and ended when the
  notebook's cell finishes (IPython's `post_run_cell`) or at the next
  autologged fit, as `mlflow.sklearn.autolog()` does; `partial_fit` on the same
  estimator keeps adding to that run, one metric step per call.

Only the outermost call records: while one is being recorded, every fit it
makes (a Pipeline's steps, a search's candidates and refit) runs untouched.
Recording never breaks the user's code: an error of ours is one warning
(each different cause once), and the fit's result is returned unchanged.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
import warnings
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidInput
from ..recorders import OUTBOX_ENV
from ..validation import check_model_name
from . import record
from .patching import Patches

PREDICTION_METHODS = ("predict", "predict_proba", "decision_function")
KEPT_PREDICTIONS = 32  # the latest predictions of autologged models a metric may be given


@dataclass(frozen=True)
class AutologOptions:
    """What a session records; see `jupyter_mlops.autolog()`."""

    model_name: str | None = None
    children: int = 0
    exclude_params: tuple[str, ...] = ()
    exclude_metrics: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.model_name is not None:
            check_model_name(self.model_name)
        if isinstance(self.children, bool) or not isinstance(self.children, int) \
                or self.children < 0:
            raise InvalidInput(f"children must be a whole number >= 0, got {self.children!r}")
        for field in ("exclude_params", "exclude_metrics"):
            patterns = getattr(self, field)
            if isinstance(patterns, str) or not all(isinstance(p, str) for p in patterns):
                raise InvalidInput(f"{field} must be a list of names or patterns, "
                                   f"got {patterns!r}")


class AutologSession:
    """Patches scikit-learn while started; records each outermost fit through `tracker`."""

    def __init__(self, tracker: Any, options: AutologOptions | None = None,
                 shell: Any = None) -> None:
        self.tracker = tracker
        self.options = options or AutologOptions()
        self.shell = shell  # IPython's shell: cell ends, and the names of the user's data
        self._patches = Patches(self._handle)
        self._lock = threading.Lock()
        self._busy = False
        self._owned: Any = None  # the run this session started and has not ended yet
        self._owned_estimator: weakref.ref | None = None
        self._partial_steps = 0
        # id(model) -> (weak reference to it, its run): by id, as a model need not be
        # hashable (an estimator defining __eq__ has no hash)
        self._models: dict[int, tuple[weakref.ref, Any]] = {}
        self._warned: set[str] = set()
        # id(predictions) -> (weak reference to them, the model's run, X's variable name)
        self._predictions: dict[int, tuple[weakref.ref, Any, str | None]] = {}
        self.recorded = 0  # outermost fits recorded (for tests and messages)
        self.last_fit_seconds = 0.0  # time inside the last recorded fit (for benchmarks)

    # -- on and off ----------------------------------------------------------------

    @property
    def patched(self) -> int:
        return self._patches.count

    def start(self) -> None:
        self._patches.apply()
        if "sklearn.metrics" in sys.modules:  # else at the first recorded fit (80 ms import)
            self._patches.patch_metric_functions()
        if self.shell is not None:
            self.shell.events.register("post_run_cell", self.cell_finished)

    def stop(self) -> None:
        """Restore the original methods and end the run this session opened."""
        self._patches.restore()
        if self.shell is not None:
            try:
                self.shell.events.unregister("post_run_cell", self.cell_finished)
            except ValueError:
                pass
        self._end_owned()

    def cell_finished(self, result: Any = None) -> None:
        """IPython's `post_run_cell`: the run autolog opened in this cell ends with it."""
        self._end_owned()

    # -- the patched calls ------------------------------------------------------------

    def _handle(self, estimator: Any, method: str, original: Callable[..., Any],
                args: tuple, kwargs: dict) -> Any:
        if not self._claim():
            if estimator is None:  # a metric function
                return original(*args, **kwargs)
            return original(estimator, *args, **kwargs)
        try:
            if estimator is None:
                return self._metric(method, original, args, kwargs)
            if method == "score":
                return self._score(estimator, original, args, kwargs)
            if method in PREDICTION_METHODS:
                return self._predict(estimator, original, args, kwargs)
            return self._fit(estimator, method, original, args, kwargs)
        finally:
            self._busy = False

    def _claim(self) -> bool:
        """True for the outermost call: nothing else is being recorded, in any thread."""
        with self._lock:
            if self._busy:
                return False
            self._busy = True
            return True

    def _fit(self, estimator: Any, method: str, original: Callable[..., Any],
             args: tuple, kwargs: dict) -> Any:
        target: Any = None
        step = None
        try:
            target, step = self._target_for(estimator, method)
        except Exception as exc:
            self._warn("could not start a run for this fit", exc)
        started = time.perf_counter()
        try:
            result = original(estimator, *args, **kwargs)
        except BaseException as exc:
            run = self._resolve(target, estimator)
            if run is not None and run is self._owned:
                self._end_owned("killed" if isinstance(exc, KeyboardInterrupt) else "failed",
                                "".join(traceback.format_exception_only(exc)).strip())
            raise
        self.last_fit_seconds = seconds = time.perf_counter() - started
        run = self._resolve(target, estimator)
        if run is not None:
            try:
                self._record(run, estimator, args, kwargs, seconds, step)
            except Exception as exc:
                self._warn(f"{type(estimator).__name__}.{method} was not fully recorded", exc)
            except BaseException:  # Ctrl-C while recording: the run says it is incomplete
                if run is self._owned:
                    self._end_owned("killed", "interrupted while autolog recorded the fit")
                raise
        return result

    def _record(self, run: Any, estimator: Any, args: tuple, kwargs: dict,
                seconds: float, step: int | None) -> None:
        X, y = _data_arguments(args, kwargs)
        options = self.options
        record.record_fit(run, estimator, X, y, seconds,
                          exclude_params=options.exclude_params,
                          exclude_metrics=options.exclude_metrics,
                          model_name=options.model_name, step=step, namer=self.name_of)
        self._remember_model(estimator, run)
        self.recorded += 1
        self._patches.patch_metric_functions()  # its predictions may be scored from now on
        if options.children and record.is_search(estimator) and step is None:
            if run.id is None:
                self._warn("child runs are not recorded inside a pipeline step",
                           "the step's records all belong to the step's run")
            else:
                record.record_children(self.tracker, run, estimator, options.children,
                                       options.exclude_params)

    def _target_for(self, estimator: Any, method: str) -> tuple[Any, int | None]:
        """The run to record into, or the `RunStarter` of a run of its own; and the
        metric step (`partial_fit` only)."""
        owned = self._owned
        if owned is not None and owned.ended:
            owned = self._owned = None
        if method == "partial_fit" and owned is not None and self._owned_estimator is not None \
                and self._owned_estimator() is estimator:
            self._partial_steps += 1
            return owned, self._partial_steps
        self._end_owned()
        active = self.tracker.active_run
        if active is not None and not active.ended:
            return active, None
        tags = {"autolog": "sklearn", "estimator_class": _class_path(estimator)}
        # On a thread only for a search: its first candidate's fit hides the start. Behind a
        # single fit of a few ms the thread only contends for the GIL (a 2 ms fit: 10.3 ms
        # of overhead with the thread, 8.8 ms without; benchmarks/autolog.py).
        background = record.searches(estimator) and not os.environ.get(OUTBOX_ENV)
        starter = RunStarter(lambda: self.tracker.start_run(type(estimator).__name__, tags=tags),
                             background=background)
        return starter, (0 if method == "partial_fit" else None)

    def _resolve(self, target: Any, estimator: Any) -> Any:
        """The run `target` is or has started (None, warned, when it could not start)."""
        if not isinstance(target, RunStarter):
            return target
        try:
            run = target.result()
        except Exception as exc:
            self._warn("could not start a run for this fit", exc)
            return None
        except BaseException:  # Ctrl-C while waiting (for a locked store, say)
            target.abandon()
            raise
        run.ends_when_replaced = True  # the user's own start_run ends it, as the cell would
        self._owned = run
        self._owned_estimator = weakref.ref(estimator)
        self._partial_steps = 0
        return run

    def _end_owned(self, status: str = "finished", error: str | None = None) -> None:
        owned, self._owned, self._owned_estimator = self._owned, None, None
        if owned is None or owned.ended:
            return
        try:
            owned.end(status, error)
        except Exception as exc:
            self._warn(f"could not end run {owned.id}", exc)

    def _score(self, estimator: Any, original: Callable[..., Any], args: tuple,
               kwargs: dict) -> Any:
        value = original(estimator, *args, **kwargs)
        run = self._model_run(estimator)
        if run is not None:
            try:
                X, y = _data_arguments(args, kwargs)
                record.record_evaluation(run, value, X, y, self.name_of)
            except Exception as exc:
                self._warn(f"{type(estimator).__name__}.score was not recorded", exc)
        return value

    def _predict(self, estimator: Any, original: Callable[..., Any], args: tuple,
                 kwargs: dict) -> Any:
        """Remember the predictions of an autologged model, for `_metric`."""
        value = original(estimator, *args, **kwargs)
        run = self._model_run(estimator)
        if run is not None:
            try:
                X, _ = _data_arguments(args, kwargs)
                self._predictions[id(value)] = (weakref.ref(value), run, self.name_of(X))
                while len(self._predictions) > KEPT_PREDICTIONS:
                    del self._predictions[next(iter(self._predictions))]
            except TypeError:  # an output that can't be weakly referenced
                pass
        return value

    def _metric(self, name: str, original: Callable[..., Any], args: tuple,
                kwargs: dict) -> Any:
        """A `sklearn.metrics` function called on an autologged model's predictions:
        metric `<function>_<X's variable>` in the run that fitted the model."""
        value = original(*args, **kwargs)
        predicted = args[1] if len(args) > 1 else next(
            (kwargs[k] for k in ("y_pred", "y_score", "y_proba", "y_prob", "probas_pred")
             if k in kwargs), None)
        entry = self._predictions.get(id(predicted))
        if entry is not None and entry[0]() is predicted:
            _, run, x_name = entry
            try:
                record.record_metric(run, f"{name}_{x_name or 'eval'}", value)
            except Exception as exc:
                self._warn(f"{name} was not recorded", exc)
        return value

    def _remember_model(self, estimator: Any, run: Any) -> None:
        """Note the run that fitted `estimator`, for its later evaluations; forgotten when
        the estimator is."""
        key = id(estimator)
        models = self._models

        def forget(reference: weakref.ref) -> None:
            if models.get(key, (None,))[0] is reference:
                del models[key]

        try:
            models[key] = (weakref.ref(estimator, forget), run)
        except TypeError:  # an object that can't be weakly referenced: no evaluations
            pass

    def _model_run(self, estimator: Any) -> Any:
        entry = self._models.get(id(estimator))
        return entry[1] if entry is not None and entry[0]() is estimator else None

    # -- helpers ---------------------------------------------------------------------

    def name_of(self, value: Any) -> str | None:
        """The notebook variable holding `value` (`X_train`), to name its dataset."""
        if self.shell is None or value is None:
            return None
        namespace: Mapping[str, Any] = self.shell.user_ns
        for name, held in namespace.items():
            if held is value and not name.startswith("_"):
                return name
        return None

    def _warn(self, what: str, exc: object) -> None:
        """One warning per cause: a broken store fails every estimator class the same
        way, and one line says it (the first fit it failed names `what`)."""
        cause = f"{type(exc).__name__}: {exc}"
        if cause in self._warned:
            return
        self._warned.add(cause)
        message = f"jupyter-mlops autolog: {what}: {exc}"
        warnings.warn(message, RuntimeWarning, stacklevel=_caller_level())


class RunStarter:
    """Starts a run, on a thread while the fit computes (`background`) or at once.

    Starting a run reads the git state (a `git status`, about 1.5 ms of waiting) and
    the environment: on a thread, that wait overlaps a long fit instead of adding to
    it. At once for a short fit (the thread would only contend with it for the GIL)
    and inside a pipeline step, where the run's glued record belongs to the caller's
    thread.
    """

    def __init__(self, start: Callable[[], Any], background: bool = True) -> None:
        self._run: Any = None
        self._error: Exception | None = None
        self._lock = threading.Lock()
        self._abandoned = False
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._start, args=(start,),
                                            name="mlops-autolog-start", daemon=True)
            self._thread.start()
        else:
            self._start(start)

    def _start(self, start: Callable[[], Any]) -> None:
        try:
            run = start()
        except Exception as exc:  # raised again by result(), on the caller's thread
            self._error = exc
            return
        with self._lock:
            self._run, abandoned = run, self._abandoned
        if abandoned:
            _end_abandoned(run)

    def abandon(self) -> None:
        """The caller stopped waiting (Ctrl-C): the run, now or when it has started, ends
        `killed` at once, instead of staying `running` as the tracker's active run and
        taking the records of later fits."""
        with self._lock:
            self._abandoned, run = True, self._run
        if run is not None:
            _end_abandoned(run)

    def result(self) -> Any:
        """The started run; raises what starting it raised."""
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error
        return self._run


def _end_abandoned(run: Any) -> None:
    try:
        run.end("killed", "interrupted while autolog started this run")
    except Exception:  # noqa: BLE001 - on a thread nobody waits for; the store's stale-run
        pass           # timeout marks it later


def _caller_level() -> int:
    """The `stacklevel` that names the user's line: the first frame outside this package
    and scikit-learn (a fit may be called from inside a Pipeline or a search)."""
    ours = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sklearn = os.path.dirname(getattr(sys.modules.get("sklearn"), "__file__", "") or "") or None
    frame = sys._getframe(2)  # the caller of `_warn`
    level = 2  # stacklevel 1 is `_warn` itself
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith(ours) and not (sklearn and filename.startswith(sklearn)):
            return level
        frame = frame.f_back
        level += 1
    return 2


def _data_arguments(args: tuple, kwargs: dict) -> tuple[Any, Any]:
    """X and y of `fit(X, y=None, ...)` as the caller gave them."""
    X = args[0] if args else kwargs.get("X")
    y = args[1] if len(args) > 1 else kwargs.get("y", kwargs.get("Y"))
    return X, y


def _class_path(estimator: Any) -> str:
    cls = type(estimator)
    return f"{cls.__module__}.{cls.__qualname__}"


def ipython_shell() -> Any:
    """The running IPython shell, without importing IPython when it isn't loaded."""
    module = sys.modules.get("IPython")
    return None if module is None else module.get_ipython()
