"""Is this checkout slower than an older revision on the paths that must stay fast?

    python benchmarks/ab.py REV [--rounds 10]

Checks REV out into benchmarks/.data/rev-REV (a git worktree), then runs each
figure alternately with the old code (PYTHONPATH=the worktree) and this
checkout's, so that both see the same machine load, and prints medians:

- `import jupyter_mlops.cli.main` in a fresh process (what every `mlops`
  command pays before it starts);
- `mlops pipeline run pipelines/train.yaml` with every step cached (the
  example project, one project per side, trained once before timing).

For log_metric, digests and search, run `benchmarks/run.py` in each tree:
those figures carry their own same-process baselines.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATA = HERE / ".data"


def worktree(rev: str) -> Path:
    path = DATA / f"rev-{rev}"
    if not path.exists():
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-f", str(path),
                        rev], check=True, capture_output=True)
    return path


def mlops(project: Path, code: Path | None, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLOPS_HOME": str(project)}
    if code is not None:
        env["PYTHONPATH"] = str(code)
    return subprocess.run([sys.executable, "-m", "jupyter_mlops.cli.main", *args], cwd=project,
                          env=env, capture_output=True, text=True)


def example_project(name: str, code: Path | None) -> Path:
    root = DATA / name
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    for folder in ("data", "notebooks", "pipelines"):
        shutil.copytree(REPO / folder, root / folder)
    for args in (("init",), ("pipeline", "run", "pipelines/train.yaml")):
        done = mlops(root, code, *args)
        if done.returncode != 0:
            raise SystemExit(f"{name}: mlops {' '.join(args)} failed:\n{done.stderr}")
    return root


def timed(fn, *args: object) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rev", help="the older revision to compare with (e.g. a commit)")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    old = worktree(args.rev)
    sides = {"old": old, "new": None}
    projects = {side: example_project(f"ab-{side}", code) for side, code in sides.items()}
    samples: dict[str, dict[str, list[float]]] = {"import": {}, "cached": {}}

    def import_cli(code: Path | None) -> None:
        env = dict(os.environ)
        if code is not None:
            env["PYTHONPATH"] = str(code)
        subprocess.run([sys.executable, "-c", "import jupyter_mlops.cli.main"], env=env,
                       cwd=DATA, check=True)

    def cached_run(side: str) -> None:
        done = mlops(projects[side], sides[side], "pipeline", "run", "pipelines/train.yaml")
        if done.returncode != 0 or "cached" not in done.stdout:
            raise SystemExit(f"{side}: the cached run did not run cached:\n{done.stdout}")

    for _ in range(args.rounds):
        for side, code in sides.items():
            samples["import"].setdefault(side, []).append(timed(import_cli, code))
            samples["cached"].setdefault(side, []).append(timed(cached_run, side))
    for figure, by_side in samples.items():
        old_s, new_s = statistics.median(by_side["old"]), statistics.median(by_side["new"])
        print(f"{figure:8s} old {old_s * 1000:7.1f} ms  new {new_s * 1000:7.1f} ms  "
              f"ratio {new_s / old_s:.2f}  (median of {args.rounds}, alternating)")


if __name__ == "__main__":
    main()
