"""Autolog overhead beside `mlflow.sklearn.autolog()`, on the same fits, in one run.

    python benchmarks/autolog.py [--quick] [--json autolog-results.json]

Two fits (issue 14): `LogisticRegression().fit` on a 1,000 x 20 DataFrame, and a
5-fold `GridSearchCV` of it over 6 values of C. For each, the figure is the
overhead of one recorded fit: the median, over repeats interleaved with plain
fits, of (fit with autolog) - (the same fit without), in the same process.

Ours (this process, a throwaway project in benchmarks/.data/autolog-ours, a clean
git repository of its own: a run reads its git state, as a user's would):
- `bare run`: `start_run().end()` with nothing logged, what any run costs;
- `into run`: autolog records into a run the user started;
- `own run`: autolog starts a run named after the estimator and ends it (as
  at the end of the notebook cell), with git state, environment and source;
- `full`: own run, plus `model_name` (the model saved with skops, signature,
  reference profile) and, for the search, 5 child runs.

MLflow (this same script, run by the Python of MLflow's own virtual environment,
benchmarks/.data/mlflow-venv, made on first use with `pip install mlflow
scikit-learn==<ours>`; never a dependency of ours), tracking into SQLite:
- `defaults`: `mlflow.sklearn.autolog()` (model, datasets, 5 child runs for a
  search, post-training metrics);
- `light`: `log_models=False, max_tuning_runs=0`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlflow_venv import mlflow_python, sklearn_pin

HERE = Path(__file__).resolve().parent
DATA = HERE / ".data"
FITS = ("logistic_regression", "grid_search")


def make_data() -> tuple[Any, Any]:
    """The same 1,000 x 20 frame in both processes (same scikit-learn, same seed)."""
    import pandas as pd
    from sklearn.datasets import make_classification

    X, y = make_classification(1000, 20, n_informative=8, random_state=0)
    return pd.DataFrame(X, columns=[f"f{i}" for i in range(20)]), pd.Series(y, name="target")


def make_fit(name: str, X: Any, y: Any) -> Callable[[], Any]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    if name == "logistic_regression":
        return lambda: LogisticRegression().fit(X, y)
    return lambda: GridSearchCV(LogisticRegression(), {"C": [0.01, 0.1, 0.3, 1, 3, 10]},
                                cv=5).fit(X, y)


def paired_overhead(fit: Callable[[], Any], switch_on: Callable[[], None],
                    switch_off: Callable[[], None], recorded: Callable[[], Any],
                    repeats: int, inside: Callable[[], float] | None = None
                    ) -> dict[str, float]:
    """Median of (recorded fit - plain fit), interleaved; `recorded` runs the fit with
    whatever ends its run. With `inside` (the seconds the last recorded call spent in
    the fit itself), also the median of (recorded call - its own fit): the time the
    user waits beyond the fit, free of the fit's own noise."""
    plain, logged, beyond = [], [], []
    for _ in range(2):  # warm both paths: imports, first connections, migrations
        switch_off()
        fit()
        switch_on()
        recorded()
    for _ in range(repeats):
        switch_off()
        start = time.perf_counter()
        fit()
        plain.append(time.perf_counter() - start)
        switch_on()
        start = time.perf_counter()
        recorded()
        logged.append(time.perf_counter() - start)
        if inside is not None:
            beyond.append(logged[-1] - inside())
    switch_off()
    differences = [b - a for a, b in zip(plain, logged, strict=True)]
    figures = {"overhead_ms": statistics.median(differences) * 1e3,
               "fit_ms": statistics.median(plain) * 1e3,
               "recorded_fit_ms": statistics.median(logged) * 1e3, "repeats": repeats}
    if beyond:
        figures["beyond_fit_ms"] = statistics.median(beyond) * 1e3
    return figures


# -- ours ----------------------------------------------------------------------------------

def ours(repeats: int) -> dict[str, Any]:
    import jupyter_mlops as mlops

    folder = DATA / "autolog-ours"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    # The project is a git repository of its own, clean, with one commit, as a user's
    # would be: a run reads its git state, and none of this work tree's changes.
    subprocess.run(["git", "init", "-q", str(folder)], check=True)
    subprocess.run(["git", "-C", str(folder), "-c", "user.name=bench", "-c",
                    "user.email=bench@localhost", "commit", "-q", "--allow-empty", "-m", "init"],
                   check=True)
    tracker = mlops.Tracker(mlops.init(folder))
    mlops.use_tracker(tracker)
    X, y = make_data()
    # A user's project was not made a second ago: the tracker reuses what it learned of
    # git's index and the installed packages only once their times are 2 s old.
    time.sleep(2.5)
    results: dict[str, Any] = {}
    start = time.perf_counter()
    mlops.autolog()
    results["autolog_on_ms"] = (time.perf_counter() - start) * 1e3
    mlops.autolog(off=True)
    lifecycle = []
    for _ in range(repeats + 2):  # what any run costs: git state, environment, source
        start = time.perf_counter()
        mlops.start_run("bare").end()
        lifecycle.append(time.perf_counter() - start)
    results["bare_run_ms"] = statistics.median(lifecycle[2:]) * 1e3
    for name in FITS:
        fit = make_fit(name, X, y)
        figures: dict[str, Any] = {}
        options: dict[str, Any] = {}

        def on() -> None:
            mlops.autolog(**options)  # noqa: B023 - read at call time, on purpose

        def off() -> None:
            mlops.autolog(off=True)

        def inside() -> float:
            return mlops.api.autolog_session().last_fit_seconds

        run = mlops.start_run(f"bench-{name}")
        figures["into_run"] = paired_overhead(fit, on, off, fit, repeats, inside)
        run.end()

        def own_run(fit: Callable[[], Any] = fit) -> None:
            fit()
            mlops.api.autolog_session().cell_finished()  # the cell ends

        figures["own_run"] = paired_overhead(fit, on, off, own_run, repeats, inside)
        options = {"model_name": "bench", "children": 5 if name == "grid_search" else 0}
        figures["full"] = paired_overhead(fit, on, off, own_run, repeats, inside)
        results[name] = figures
    tracker.close()
    return results


# -- MLflow's side (run by MLflow's Python) --------------------------------------------------

def mlflow_side(folder: Path, repeats: int) -> dict[str, Any]:
    import mlflow

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.chdir(folder)  # MLflow's artifacts go to ./mlruns
    mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
    mlflow.set_experiment("bench-autolog")
    X, y = make_data()
    results: dict[str, Any] = {"mlflow": mlflow.__version__}
    start = time.perf_counter()
    mlflow.sklearn.autolog()
    results["autolog_on_ms"] = (time.perf_counter() - start) * 1e3
    mlflow.sklearn.autolog(disable=True)
    for name in FITS:
        fit = make_fit(name, X, y)
        figures: dict[str, Any] = {}
        for label, options in (("defaults", {}),
                               ("light", {"log_models": False, "max_tuning_runs": 0})):
            def on(options: dict[str, Any] = options) -> None:
                mlflow.sklearn.autolog(silent=True, **options)

            def off() -> None:
                mlflow.sklearn.autolog(disable=True)

            figures[label] = paired_overhead(fit, on, off, fit, repeats)
        results[name] = figures
    return results


def run_mlflow(repeats: int) -> dict[str, Any]:
    done = subprocess.run([str(mlflow_python(sklearn_pin())), __file__, "--mlflow-side",
                           "--repeats", str(repeats)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"MLflow's side failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(results: dict[str, Any]) -> None:
    ours_, theirs = results["ours"], results["mlflow"]
    print(f"switching autolog on: ours {ours_['autolog_on_ms']:.1f} ms, "
          f"MLflow {theirs['autolog_on_ms']:.1f} ms")
    print(f"a bare run of ours, started and ended: {ours_['bare_run_ms']:.1f} ms")
    for name in FITS:
        print(f"{name}: plain fit {ours_[name]['into_run']['fit_ms']:.1f} ms")
        for label, figure in ours_[name].items():
            print(f"  ours {label:9s} {figure['overhead_ms']:8.1f} ms per recorded fit "
                  f"(beyond the fit itself: {figure['beyond_fit_ms']:.1f} ms)")
        for label, figure in theirs[name].items():
            print(f"  MLflow {label:7s} {figure['overhead_ms']:8.1f} ms per recorded fit")
        light, defaults = theirs[name]["light"], theirs[name]["defaults"]
        print(f"  like for like: MLflow light / ours own run "
              f"{light['overhead_ms'] / ours_[name]['own_run']['overhead_ms']:.0f}x, "
              f"MLflow defaults / ours full "
              f"{defaults['overhead_ms'] / ours_[name]['full']['overhead_ms']:.0f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 repeats instead of 20")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--repeats", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--mlflow-side", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    repeats = args.repeats or (5 if args.quick else 20)
    DATA.mkdir(exist_ok=True)
    if args.mlflow_side:
        print(json.dumps(mlflow_side(DATA / "autolog-mlflow", repeats)))
        return
    import sklearn

    results = {"ours": ours(repeats), "mlflow": run_mlflow(repeats),
               "scikit_learn": sklearn.__version__, "python": sys.version.split()[0]}
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
