"""Where step notebooks execute: threads of this process, or a Dask cluster.

Either way the coordinating process alone writes the store; an executor only
turns a `StepTask` into a `StepResult`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from ..errors import MlopsError
from .execution import KernelRegistry, StepResult, StepTask, run_step_task


class Executor(Protocol):
    name: str
    remote: bool  # True: files come back as bytes, not through a shared folder

    def prepare(self, root: Path, env_digest: str, notebooks: Iterable[Path],
                modules: Iterable[str] = ()) -> None: ...
    def execute(self, task: StepTask) -> StepResult: ...
    def interrupt(self) -> None: ...
    def close(self) -> None: ...


class LocalExecutor:
    """Runs each step's kernel from a thread of this process (`--jobs` of them).

    Kernels are forked from a template process that already imported what the
    notebooks import (warm.py), unless `cold` says why not (`--cold`); a step whose
    kernel can't be forked safely starts cold, the reason in its result.
    """

    name = "local"
    remote = False

    def __init__(self, cold: str | None = None) -> None:
        from .warm import WarmStart

        self.kernels = KernelRegistry()
        self.warm = WarmStart(cold)

    def prepare(self, root: Path, env_digest: str, notebooks: Iterable[Path],
                modules: Iterable[str] = ()) -> None:
        """Start (or keep, or replace) the template for this project and environment,
        then import papermill while the template imports: here, in one thread, because
        step threads and the report thread importing it at once can see a
        half-initialized module. Call it before the first `execute`."""
        self.warm.prepare(root, env_digest, notebooks, modules)
        import papermill  # noqa: F401

    def execute(self, task: StepTask) -> StepResult:
        return run_step_task(task, self.kernels,
                             self.warm.start(task.env_digest, Path(task.notebook)))

    def interrupt(self) -> None:
        """Kill the steps' kernels, and any still starting; later steps get new ones."""
        kernels, self.kernels = self.kernels, KernelRegistry()
        kernels.kill_all()

    def close(self) -> None:
        self.interrupt()
        self.warm.close()


class DaskExecutor:
    """Submits each step to a Dask distributed scheduler (a `LocalCluster` by default).

    Workers need the project's notebooks and data at the same path (a shared or
    identical folder); what a step produces comes back in its `StepResult`.
    """

    name = "dask"
    remote = True

    def __init__(self, scheduler: str | None = None, workers: int = 2) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise MlopsError("--executor dask needs Dask distributed: "
                             "pip install 'jupyter-mlops[dask]'") from None
        self._cluster = None
        if scheduler:
            try:
                self._client = Client(scheduler, timeout="10s")
            except OSError as exc:
                raise MlopsError(f"cannot reach the Dask scheduler at {scheduler}: {exc}"
                                 ) from None
        else:
            self._cluster = LocalCluster(n_workers=workers, threads_per_worker=1,
                                         processes=True, host="127.0.0.1",
                                         dashboard_address=None)
            self._client = Client(self._cluster)
        self._futures: set = set()

    def prepare(self, root: Path, env_digest: str, notebooks: Iterable[Path],
                modules: Iterable[str] = ()) -> None:
        """Nothing to prepare: workers start their kernels cold."""

    def execute(self, task: StepTask) -> StepResult:
        future = self._client.submit(run_step_task, task, pure=False, key=f"step-{task.step}-"
                                     f"{id(task)}")
        self._futures.add(future)
        try:
            result = future.result()
        finally:
            self._futures.discard(future)
        result.kernel_start = ("cold: the Dask executor runs steps in its workers' "
                               "processes, where no template is kept")
        return result

    def interrupt(self) -> None:
        for future in list(self._futures):
            future.cancel()

    def close(self) -> None:
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()
