"""Issue 9, point 8: one check per kind of value (names, digests, folder paths),
the same at every door: the API, the folder walk, the blob store."""

from __future__ import annotations

import re

import pytest

from jupyter_mlops.artifacts import ArtifactStore, check_artifact_name
from jupyter_mlops.errors import InvalidInput
from jupyter_mlops.hashing import digest_folder, split_digest
from jupyter_mlops.project import Project
from jupyter_mlops.validation import (
    InvalidDigest,
    check_dataset_source,
    check_digest,
    check_model_name,
    check_name,
)

GOOD_DIGEST = "blake3:" + "0123456789abcdef" * 4


@pytest.mark.parametrize("name", ["model.skops", "report/fit.html", "a b/c-d_e.txt", "é/ü.csv"])
def test_safe_names_pass(name: str) -> None:
    assert check_name(name) == name == check_artifact_name(name)


@pytest.mark.parametrize("name, problem", [
    ("nl\nx", "control"), ("tab\tx", "control"), ("del\x7f", "control"),
    ("../etc/passwd", "segment"), ("a/../../b", "segment"), ("a//b", "segment"),
    ("./a", "segment"), ("a/", "segment"), ("/etc/passwd", "absolute"), ("C:/x", "absolute"),
    ("a\\b", "backslash"), ("x" * 256, "longer"), ("", "non-empty"), ("   ", "non-empty"),
    (None, "non-empty"), (3, "non-empty"),
])
def test_unsafe_names_are_refused_with_the_reason(name: object, problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem):
        check_name(name)


@pytest.mark.parametrize("digest", [
    "../../../etc/passwd", "blake3:../../../etc/passwd", "blake3:" + "0" * 63,
    "blake3:" + "0" * 65, "blake3:" + "A" * 64, "sha256:" + "0" * 64, "blake3:" + "g" * 64,
    GOOD_DIGEST + "\n", " " + GOOD_DIGEST, "BLAKE3:" + "0" * 64, "", None, 12,
    "blake3:" + "0" * 16,
])
def test_digests_are_strict(digest: object) -> None:
    with pytest.raises(InvalidDigest, match="64 lowercase hex"):
        check_digest(digest)
    with pytest.raises(ValueError):  # the old contract of hashing.split_digest
        split_digest(digest)
    with pytest.raises(InvalidInput):
        ArtifactStore("/nonexistent").path_for(digest)  # type: ignore[arg-type]


def test_a_good_digest_passes_everywhere() -> None:
    assert check_digest(GOOD_DIGEST) == GOOD_DIGEST
    assert split_digest(GOOD_DIGEST) == ("blake3", "0123456789abcdef" * 4)


def test_a_file_named_with_a_newline_in_a_logged_folder_is_refused(project: Project,
                                                                    tracker) -> None:
    folder = project.root / "results"
    folder.mkdir()
    (folder / "fine.txt").write_text("ok")
    (folder / "nl\nx").write_text("sneaky")
    run = tracker.start_run("names")
    with pytest.raises(InvalidInput) as refused:
        run.log_artifact(folder)
    assert "'nl\\nx'" in str(refused.value) and "rename" in str(refused.value)
    with pytest.raises(InvalidInput, match="control"):
        run.log_dataset(folder)
    run.end()
    names = [a.name for a in tracker.store.artifacts.for_run(run.id)]
    assert not any(name.startswith("results/") for name in names)


def test_a_file_name_whose_bytes_are_not_utf8_is_refused(project: Project, tracker) -> None:
    import os

    folder = project.root / "raw"
    folder.mkdir()
    with open(os.path.join(os.fsencode(folder), b"bad\xffname"), "w") as f:
        f.write("x")
    run = tracker.start_run("bytes")
    for log in (run.log_artifact, run.log_dataset):
        with pytest.raises(InvalidInput, match="not valid UTF-8"):
            log(folder)
    run.end()
    logged = [a.name for a in tracker.store.artifacts.for_run(run.id)]
    assert [name for name in logged if not name.startswith("source/")] == []  # the end's
    # source snapshot aside (under `python -m pytest`, pytest's __main__.py), nothing


def test_a_folder_named_badly_inside_a_logged_folder_is_refused(project: Project) -> None:
    folder = project.root / "data"
    (folder / "sub\rdir").mkdir(parents=True)
    (folder / "sub\rdir" / "x.csv").write_text("a\n1\n")
    with pytest.raises(InvalidInput, match="control"):
        digest_folder(folder)


def test_artifact_names_from_the_api_are_checked(project: Project, tracker) -> None:
    (project.root / "a.txt").write_text("x")
    run = tracker.start_run("api")
    for bad in ("../../outside.txt", "x\ny", "/abs"):
        with pytest.raises(InvalidInput):
            run.log_artifact(project.root / "a.txt", name=bad)
    with pytest.raises(InvalidInput, match="model name"):
        run.log_model(object(), "../evil")
    run.end()
    assert tracker.store.artifacts.for_run(run.id) == [] or all(
        "a.txt" not in a.name for a in tracker.store.artifacts.for_run(run.id))


# Characters that display as something else: C1 controls, line separators and
# bidirectional controls ("invoice\u202eslx.exe" shows as "invoiceexe.xls").
SPOOFING = ["\x80", "\x85", "\x9b", "\x9f", "\u2028", "\u2029", "\u202a", "\u202b", "\u202c",
            "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069", "\u200e", "\u200f",
            "\u061c"]


@pytest.mark.parametrize("char", SPOOFING)
def test_names_that_display_as_something_else_are_refused_naming_the_code_point(
        char: str) -> None:
    code_point = re.escape(f"U+{ord(char):04X}")
    for name in (f"invoice{char}slx.exe", f"reports/{char}a.txt"):
        with pytest.raises(InvalidInput, match=code_point):
            check_name(name)
    with pytest.raises(InvalidInput, match="model name"):
        check_model_name(f"churn{char}")
    with pytest.raises(InvalidInput, match=code_point):
        check_dataset_source(f"data/train{char}.csv")


def test_the_doors_refuse_spoofing_names(project: Project, tracker) -> None:
    folder = project.root / "results"
    folder.mkdir()
    (folder / "fine.txt").write_text("ok")
    (folder / "invoice\u202eslx.exe").write_text("not a spreadsheet")
    (project.root / "a.csv").write_text("a\n1\n")
    run = tracker.start_run("spoof")
    with pytest.raises(InvalidInput, match="U\\+202E") as refused:
        run.log_artifact(folder)
    assert "rename" in str(refused.value)
    with pytest.raises(InvalidInput, match="U\\+202E"):
        run.log_dataset(folder)
    with pytest.raises(InvalidInput, match="U\\+2028"):
        run.log_artifact(project.root / "a.csv", name="a\u2028b.csv")
    with pytest.raises(InvalidInput, match="U\\+0085"):
        run.log_dataset(project.root / "a.csv", name="train\x85.csv")
    with pytest.raises(InvalidInput, match="model name"):
        run.log_model(object(), "churn\u2067")
    run.end()
    assert tracker.store.datasets.for_run(run.id) == []
    assert not any(a.name.startswith(("results/", "a")) for a in
                   tracker.store.artifacts.for_run(run.id))


def test_letters_of_every_script_still_pass() -> None:
    for name in ("données/été.csv", "模型/报告.html", "تقرير.txt", "отчёт.json", "a\u00a0b.txt"):
        assert check_name(name) == name
        assert check_dataset_source(name) == name
