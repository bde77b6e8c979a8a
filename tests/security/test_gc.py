"""Issue 9, point 10: `mlops gc` removes what killed writers left, never a temporary a
live writer holds, and deletes only unreferenced blobs, even while others record.

Writers are real processes: killed with SIGKILL in the middle of writing a blob,
or recording artifacts while a gc process deletes in a loop.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from jupyter_mlops.artifacts import ArtifactStore
from jupyter_mlops.cli.gc import parse_age
from jupyter_mlops.cli.main import main
from jupyter_mlops.errors import InvalidInput
from jupyter_mlops.project import Project

# A writer that stores a blob through the real temporary-file path (mkstemp, flock,
# write), says "writing" after 8 MiB, then waits for GO before finishing.
WRITER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from jupyter_mlops.artifacts import ArtifactStore

    store, go = ArtifactStore(sys.argv[1]), Path(sys.argv[2])
    chunk = os.urandom(1 << 20)

    def write(out, hasher):
        for _ in range(8):
            hasher.update(chunk)
            out.write(chunk)
        out.flush()
        print("writing", flush=True)
        while not go.exists():
            time.sleep(0.02)
        hasher.update(b"end")
        out.write(b"end")
        return 8 * len(chunk) + 3

    print(store._store(write)[0], flush=True)
""")


def start_writer(project: Project, go: Path) -> subprocess.Popen:
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(project.artifacts_dir),
                               str(go)], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "writing"
    return writer


def temporaries(project: Project) -> list[Path]:
    return sorted((project.artifacts_dir / "tmp").iterdir())


def test_gc_removes_what_killed_writers_left_but_not_a_live_writers_file(
        project: Project, tmp_path: Path, capsys) -> None:
    never = tmp_path / "never"
    for writer in [start_writer(project, never) for _ in range(20)]:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    left = temporaries(project)
    assert len(left) == 20 and all(p.stat().st_size >= 8 << 20 for p in left)

    assert main(["gc"]) == 0  # default: only temporaries older than an hour
    assert "removed 0" in capsys.readouterr().out and len(temporaries(project)) == 20

    go = tmp_path / "go"
    live = start_writer(project, go)
    assert main(["gc", "--older-than", "0"]) == 0
    out = capsys.readouterr().out
    assert "removed 20 (160.0 MiB)" in out and "kept 1" in out
    [held] = temporaries(project)
    go.touch()
    digest = live.stdout.readline().strip()
    assert live.wait() == 0
    assert temporaries(project) == [] and not held.exists()
    assert ArtifactStore(project.artifacts_dir).check(digest) is None


def test_delete_removes_unreferenced_blobs_and_never_a_referenced_one(project: Project,
                                                                      tracker, capsys) -> None:
    (project.root / "kept.txt").write_text("referenced by a run")
    run = tracker.start_run("gc")
    [kept] = run.log_artifact(project.root / "kept.txt")
    run.end()
    orphan, size = tracker.artifacts.put_bytes(b"stored, then its writer died before linking")
    orphan_path = tracker.artifacts.path_for(orphan)

    assert main(["gc", "--older-than", "0"]) == 0
    out = capsys.readouterr().out
    assert f"unreferenced blobs: 1 ({size} bytes)" in out and "--delete" in out
    assert orphan_path.exists()  # reported, not deleted

    assert main(["gc", "--delete"]) == 0  # an orphan younger than an hour is spared
    assert orphan_path.exists() and "deleted: 0" in capsys.readouterr().out

    assert main(["gc", "--delete", "--older-than", "0"]) == 0
    assert "deleted: 1" in capsys.readouterr().out
    assert not orphan_path.exists()
    assert tracker.artifacts.read_bytes(kept.digest) == b"referenced by a run"
    assert main(["verify", "-q"]) == 0


def test_a_blob_deleted_between_put_and_link_is_stored_again(project: Project, tracker,
                                                             monkeypatch) -> None:
    """The race a concurrent writer has with gc: its blob is on disk but its row is not
    yet committed when a gc process (a real one) deletes unreferenced blobs."""
    run = tracker.start_run("race")
    real_link = tracker.store.artifacts.link
    collected = []

    def link_after_gc(*args, **kwargs):
        done = subprocess.run([sys.executable, "-m", "jupyter_mlops.cli.main", "gc",
                               "--delete", "--older-than", "0"], capture_output=True,
                              text=True, cwd=project.root)
        collected.append(done.stdout)
        return real_link(*args, **kwargs)

    monkeypatch.setattr(tracker.store.artifacts, "link", link_after_gc)
    (project.root / "r.txt").write_text("raced")
    [link] = run.log_artifact(project.root / "r.txt")
    run.end()
    assert "deleted: 1" in collected[0]  # gc did remove the not-yet-linked blob ...
    assert tracker.artifacts.read_bytes(link.digest) == b"raced"  # ... and it is back


CONCURRENT_WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from jupyter_mlops.tracking import Tracker

    root, index = Path(sys.argv[1]), int(sys.argv[2])
    tracker = Tracker()
    run = tracker.start_run(f"writer-{index}")
    for i in range(40):
        path = root / f"w{index}-{i}.txt"
        path.write_text(f"shared content {i % 5}")  # the same bytes again and again
        run.log_artifact(path)
    run.end()
    tracker.close()
""")

GC_LOOP = textwrap.dedent("""
    import sys
    from pathlib import Path
    from jupyter_mlops.tracking import Tracker

    stop, rounds = Path(sys.argv[1]), 0
    tracker = Tracker()
    while not stop.exists() or rounds < 3:
        tracker.collect_garbage(older_than=0, delete=True)
        rounds += 1
    tracker.close()
    print(rounds)
""")


def test_gc_deleting_in_a_loop_while_writers_record_loses_nothing(project: Project,
                                                                  tracker) -> None:
    stop = project.root / "stop"
    env = {**os.environ, "MLOPS_HOME": str(project.root)}
    gc = subprocess.Popen([sys.executable, "-c", GC_LOOP, str(stop)], env=env,
                          stdout=subprocess.PIPE, text=True)
    writers = [subprocess.Popen([sys.executable, "-c", CONCURRENT_WRITER,
                                 str(project.root), str(i)], env=env) for i in range(3)]
    try:
        assert [w.wait(timeout=300) for w in writers] == [0, 0, 0]
    finally:
        stop.touch()
        assert gc.wait(timeout=300) == 0
    assert int(gc.stdout.read()) >= 3
    links = [link for run in tracker.search_runs() for link in
             tracker.store.artifacts.for_run(run.id)]
    assert len([link for link in links if link.kind == "artifact"]) == 120
    assert tracker.verify() == []  # every referenced blob is present and intact


@pytest.mark.parametrize("text, seconds", [("0", 0), ("90", 90), ("30s", 30), ("10m", 600),
                                           ("1h", 3600), ("2d", 172800), ("1w", 604800)])
def test_ages(text: str, seconds: float) -> None:
    assert parse_age(text) == seconds


@pytest.mark.parametrize("text", ["", "-1h", "soon", "1y", "nan", "inf"])
def test_bad_ages_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput, match="--older-than"):
        parse_age(text)


PREDICTION_WRITER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from jupyter_mlops.artifacts import locked_temporary

    folder, go = Path(sys.argv[1]), Path(sys.argv[2])
    fd, name = locked_temporary(folder, ".batch-", ".tmp")  # as PredictionLog writes
    os.write(fd, b"PAR1" + os.urandom(1 << 20))
    print("writing", flush=True)
    while not go.exists():
        time.sleep(0.02)
    os.replace(name, folder / "batch.parquet")
""")


def test_gc_removes_half_written_prediction_batches_of_killed_writers(
        project: Project, tmp_path: Path, capsys) -> None:
    folder = project.home / "predictions" / "m"
    folder.mkdir(parents=True)

    def writer(go: Path) -> subprocess.Popen:
        process = subprocess.Popen([sys.executable, "-c", PREDICTION_WRITER, str(folder),
                                    str(go)], stdout=subprocess.PIPE, text=True)
        assert process.stdout.readline().strip() == "writing"
        return process

    killed = writer(tmp_path / "never")
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    live = writer(tmp_path / "go")
    assert len(list(folder.glob("*.tmp"))) == 2
    assert main(["gc", "--older-than", "0"]) == 0
    assert "removed 1" in capsys.readouterr().out
    (tmp_path / "go").touch()
    assert live.wait() == 0
    assert [p.name for p in folder.iterdir()] == ["batch.parquet"]
