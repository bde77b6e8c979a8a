"""Every API call is safe from any thread, and from several processes at once.

Notebooks use threads (callbacks, joblib's threading backend, progress hooks):
four threads logging into one run of this process while four other processes
log into the same store must store every row, with no error.
"""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

import jupyter_mlops as mlops

pytestmark = pytest.mark.both_backends

THREADS = PROCESSES = 4
METRICS = 5000

WRITER = f"""
import sys
import jupyter_mlops as mlops
run = mlops.start_run(name=sys.argv[1])
for step in range({METRICS}):
    mlops.log_metric("loss", float(step), step=step)
mlops.end_run()
print(run.id)
"""


@pytest.mark.sqlite_only("the processes open the project's store from its config, which "
                         "is the SQLite file; test_store_postgres.py runs threads and "
                         "processes on PostgreSQL")
def test_threads_and_processes_logging_at_once_store_every_row(tracker) -> None:
    processes = [subprocess.Popen([sys.executable, "-c", WRITER, f"process-{i}"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for i in range(PROCESSES)]
    run = mlops.start_run(name="threads")
    errors: list[BaseException] = []

    def log(thread: int) -> None:
        try:
            for step in range(METRICS):
                mlops.log_metric(f"thread{thread}", float(step), step=step)
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            errors.append(exc)

    threads = [threading.Thread(target=log, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    mlops.end_run()
    outputs = [p.communicate(timeout=600) for p in processes]

    assert not errors, errors[:3]
    assert all(p.returncode == 0 for p in processes), [err for _, err in outputs]
    store = tracker.store
    for thread in range(THREADS):
        history = store.runs.metric_history(run.id, f"thread{thread}")
        assert [point.step for point in history] == list(range(METRICS))
    for out, _ in outputs:
        history = store.runs.metric_history(int(out), "loss")
        assert [point.step for point in history] == list(range(METRICS))


def test_a_second_thread_writes_while_the_first_holds_a_transaction(store) -> None:
    """The write lock is per connection: a thread's BEGIN waits for the other's COMMIT."""
    from jupyter_mlops.store.connection import write

    inside, release = threading.Event(), threading.Event()

    def hold() -> None:
        with write(store._conn) as conn:
            conn.execute("SELECT count(*) FROM runs")  # a statement inside the transaction
            inside.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    inside.wait(10)
    finished = threading.Event()

    def second() -> None:
        with write(store._conn):
            finished.set()

    other = threading.Thread(target=second)
    other.start()
    assert not finished.wait(0.3)  # queued behind the first transaction, not failing
    release.set()
    holder.join()
    other.join()
    assert finished.is_set()
