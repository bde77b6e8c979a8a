"""One validation function per kind of value that enters the store.

Every door (the Python API and magics through `tracking`, the folder walk in
`hashing`, glued records replayed by the pipeline runner, results coming back
from Dask workers) calls these same functions, so a name or digest refused at
one door is refused at all of them. Each raises `InvalidInput` (or a subclass)
with the offending value and what to do instead.

This module imports nothing of the package but `errors`: every layer may use it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from .errors import InvalidInput

MAX_NAME_LENGTH = 255
MAX_KEY_LENGTH = 250  # params, tags and metric keys (as the store's check_key)
MAX_TEXT_LENGTH = 100_000  # a param or tag value, an error message
MAX_BLOB_SIZE = 1 << 40  # 1 TiB: larger sizes in a record are a forgery or a bug
DIGEST_ALGORITHM = "blake3"
_DIGEST = re.compile(r"blake3:[0-9a-f]{64}")
_C0_CONTROL = re.compile("[\x00-\x1f]")  # a key has none (checked once per metric point)
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}")
# "dataset": an input's bytes kept for `mlops reproduce` (`log_dataset(..., keep=True)`)
ARTIFACT_KINDS = ("artifact", "notebook", "source", "git-diff", "model", "report", "dataset")
DATASET_KINDS = ("file", "folder", "dataframe")
DATASET_ROLES = ("input", "output")


class InvalidDigest(InvalidInput, ValueError):
    """A digest is not `blake3:` followed by exactly 64 lowercase hex digits.

    Also a `ValueError`, which `hashing.split_digest` raised before this module.
    """


def _shown(value: object) -> str:
    return repr(str(value)[:80])


# Characters that change how a line of text is displayed rather than show as
# themselves: a name holding one can pass for another in a listing, a terminal
# or a review (Trojan Source, CVE-2021-42574). One regex: the folder walk checks
# every file's path with it.
_UNDISPLAYABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u061c\u200e\u200f"
                            "\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_KNOWN_CHARACTERS = {0x09: "a tab", 0x0A: "a newline", 0x0D: "a carriage return",
                     0x1B: "an escape", 0x2028: "a line separator",
                     0x2029: "a paragraph separator"}


def display_problem(text: str) -> str | None:
    """Why `text` would not display as itself, or None.

    Refused: C0 and C1 control characters (U+0000-U+001F, U+007F-U+009F), the
    line and paragraph separators U+2028 and U+2029, and the bidirectional
    controls (U+202A-U+202E, U+2066-U+2069 and the marks U+200E, U+200F,
    U+061C), and lone surrogates (a file name whose bytes are not UTF-8). The reason
    names the code point.
    """
    found = _UNDISPLAYABLE.search(text)
    if found is None:
        return None
    code = ord(found.group())
    what = f" ({_KNOWN_CHARACTERS[code]})" if code in _KNOWN_CHARACTERS else ""
    if code <= 0x9F:
        return f"it holds the control character U+{code:04X}{what}"
    if code in (0x2028, 0x2029):
        return f"it holds U+{code:04X}{what}"
    if 0xD800 <= code <= 0xDFFF:  # how Python spells a file name's bytes that aren't UTF-8
        return "it is not valid UTF-8 (a file name's bytes, or a lone surrogate)"
    return (f"it holds U+{code:04X}, a bidirectional control character that changes how "
            "the text around it is displayed")


def name_problem(name: str) -> str | None:
    """Why `name` is not a safe relative POSIX path, or None when it is."""
    if len(name) > MAX_NAME_LENGTH:
        return f"longer than {MAX_NAME_LENGTH} characters"
    problem = display_problem(name)
    if problem:
        return problem
    if "\\" in name:
        return "it holds a backslash (use / between folders)"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "it is an absolute path"
    if any(part in ("..", ".", "") for part in name.split("/")):
        return "it has an empty, . or .. path segment"
    return None


def check_name(name: object, what: str = "artifact name") -> str:
    """Return `name` if it is a safe relative POSIX name, else raise `InvalidInput`.

    Safe: a non-empty string of at most 255 characters, nothing that displays
    as something else (`display_problem`: control characters, line separators,
    bidirectional controls), no backslash, not absolute, no empty, `.` or `..`
    segment. Such a name can be joined to a folder, shown in a terminal and
    sent in an HTTP header.
    """
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput(f"{what} must be a non-empty string, got {_shown(name)}")
    problem = name_problem(name)
    if problem:
        raise InvalidInput(f"{what} {_shown(name)} refused: {problem}")
    return name


def check_artifact_name(name: object) -> str:
    """`check_name` for an artifact's name (its path within a run)."""
    return check_name(name, "artifact name")


def check_relative_path(relative: str, folder: object) -> str:
    """Check the relative path of a file found inside a logged `folder`.

    The same rules as every name; the error names the folder and the file, so
    the user knows which file to rename.
    """
    problem = name_problem(relative) if relative else "it is empty"
    if problem:
        raise InvalidInput(f"file {relative[:80]!r} in folder {str(folder)[:200]!r} refused: "
                           f"{problem}; rename it or move it out of the folder")
    return relative


ALIAS_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")


def check_alias(alias: object) -> str:
    """An alias name (`production`, `staging`): lowercase letters, digits, `-` and `_`,
    at most 64, starting with a letter or digit. The registry and the project config
    (`protected_aliases`) check with this one function."""
    if (not isinstance(alias, str) or not alias or len(alias) > 64
            or not set(alias) <= ALIAS_NAME_CHARS or alias[0] in "-_"):
        raise InvalidInput(f"alias {str(alias)[:80]!r} refused: use lowercase letters, digits, "
                           "'-' and '_' (at most 64), starting with a letter or digit")
    return alias


def check_model_name(name: object) -> str:
    """A model name: letters, digits, `_`, `-`, `.`, starting with a letter or digit."""
    if not isinstance(name, str) or not _MODEL_NAME.fullmatch(name):
        raise InvalidInput(f"model name {_shown(name)} refused: use letters, digits, '_', '-' "
                           "and '.', starting with a letter or digit (at most 100)")
    return name


MAX_SOURCE_LENGTH = 4096


def check_dataset_source(source: object) -> str:
    """A dataset's name as shown beside its run (`log_dataset(name=...)`, or the path).

    Any text of 1 to 4096 characters that displays as itself (`display_problem`):
    a dataset named with U+202E could pass for another in a review.
    """
    if not isinstance(source, str) or not source.strip() or len(source) > MAX_SOURCE_LENGTH:
        raise InvalidInput(f"dataset name must be a string of 1 to {MAX_SOURCE_LENGTH} "
                           f"characters, got {_shown(source)}")
    problem = display_problem(source)
    if problem:
        raise InvalidInput(f"dataset name {_shown(source)} refused: {problem}; pass "
                           "name=... to record it under another name")
    return source


def is_digest(value: object) -> bool:
    """True for `blake3:` + exactly 64 lowercase hex digits."""
    return isinstance(value, str) and _DIGEST.fullmatch(value) is not None


def check_digest(digest: object, what: str = "digest") -> str:
    """Return `digest` when it is `blake3:<64 lowercase hex>`, else raise `InvalidDigest`.

    Strict on purpose: a digest becomes a path in the blob store and a file
    name in a step's outbox, so anything else (`../`, upper case, a short
    prefix) is refused before any file is touched.
    """
    if not is_digest(digest):
        raise InvalidDigest(f"{what} {_shown(digest)} refused: a digest is 'blake3:' followed "
                            "by exactly 64 lowercase hex digits")
    return digest  # type: ignore[return-value]


def split_digest(digest: object) -> tuple[str, str]:
    """(algorithm, hex) of a valid digest; raises `InvalidDigest` (a `ValueError`)."""
    algorithm, _, hexdigest = check_digest(digest).partition(":")
    return algorithm, hexdigest


def check_size(size: object, what: str = "size") -> int:
    """A byte or row count: an int from 0 to 1 TiB (bool refused)."""
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_BLOB_SIZE:
        raise InvalidInput(f"{what} must be an integer from 0 to {MAX_BLOB_SIZE}, "
                           f"got {_shown(size)}")
    return size


RESERVED_TAG_PREFIX = "mlops."
# What the tracker notes of a run itself, through any recorder (a step's glue, a team
# server): facts about the run's own source, which claim nothing about a pipeline run.
NOT_REPRODUCIBLE_TAG = "mlops.not_reproducible"  # why the run can't be re-executed
UNTRACKED_SOURCE_TAG = "mlops.git_untracked"  # a source no git commit holds
WORKDIR_TAG = "mlops.workdir"  # the working folder, relative to the project, when not its root
REPRODUCES_TAG = "mlops.reproduces"  # the uuid of the run `mlops reproduce` re-executed
RUN_NOTE_TAGS = frozenset({NOT_REPRODUCIBLE_TAG, UNTRACKED_SOURCE_TAG, WORKDIR_TAG,
                           REPRODUCES_TAG})


def check_step_tags(tags: Mapping[str, object]) -> None:
    """Refuse tags a pipeline step may not set: `mlops.*` is the runner's.

    The runner tags each step's run `mlops.pipeline`, `mlops.step` and
    `mlops.pipeline_run` before the step starts; a step setting one of them
    would overwrite which pipeline run its records claim to belong to.
    """
    for key in tags:
        if isinstance(key, str) and key.startswith(RESERVED_TAG_PREFIX) \
                and key not in RUN_NOTE_TAGS:
            raise InvalidInput(f"tag {_shown(key)} refused: tags starting with "
                               f"{RESERVED_TAG_PREFIX!r} are set by the pipeline runner "
                               "(mlops.pipeline, mlops.step, mlops.pipeline_run); use "
                               "another name")


# -- glued records -------------------------------------------------------------------

class RecordRefused(InvalidInput):
    """A record glued into a step's notebook does not match its schema."""

    def __init__(self, record: str, problem: str) -> None:
        self.record = record
        self.problem = problem
        super().__init__(f"record {record[:80]!r} refused: {problem}")


def _text(value: object, what: str, limit: int = MAX_TEXT_LENGTH, optional: bool = False
          ) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or len(value) > limit:
        raise InvalidInput(f"{what} must be a string of at most {limit} characters, "
                           f"got {_shown(value)}")


def _key(value: object, what: str) -> None:
    if not isinstance(value, str) or not value or len(value) > MAX_KEY_LENGTH \
            or _C0_CONTROL.search(value):
        raise InvalidInput(f"{what} {_shown(value)} refused: a key is 1 to {MAX_KEY_LENGTH} "
                           "printable characters")


def _string_map(value: object, what: str) -> None:
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{what} must be an object, got {type(value).__name__}")
    for key, item in value.items():
        _key(key, f"{what} key")
        _text(item, f"{what} {key!r}")


def _number(value: object, what: str, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput(f"{what} must be a number, got {_shown(value)}")


def _check_start(record: Mapping[str, Any]) -> None:
    run = record.get("run")
    if not isinstance(run, Mapping):
        raise InvalidInput("'run' must be an object")
    _text(run.get("name"), "run name", 200, optional=True)
    if record.get("environment") is not None:
        check_environment(record["environment"])


MAX_PACKAGES = 20_000


def check_environment(value: object) -> None:
    """A run's environment as a client sends it: `{"python": "3.11.9", "packages":
    {"numpy": "2.1.0", ...}}`, every name and version a short printable text."""
    if not isinstance(value, Mapping):
        raise InvalidInput(f"'environment' must be an object, got {type(value).__name__}")
    python = value.get("python")
    if not isinstance(python, str) or not 0 < len(python) <= 40 or _C0_CONTROL.search(python):
        raise InvalidInput(f"environment 'python' must be a version, got {_shown(python)}")
    packages = value.get("packages")
    if not isinstance(packages, Mapping) or len(packages) > MAX_PACKAGES:
        raise InvalidInput(f"environment 'packages' must be an object of at most "
                           f"{MAX_PACKAGES} names and versions")
    for name, version in packages.items():
        _key(name, "environment package")
        _key(version, f"version of package {name!r}")


def _check_params(record: Mapping[str, Any]) -> None:
    _string_map(record.get("params"), "params")


def _check_tags(record: Mapping[str, Any]) -> None:
    _string_map(record.get("tags"), "tags")
    check_step_tags(record["tags"])


# JSON has no NaN or infinity, and the kernel's display channel turns them into text
# anyway: a glued metric carries them as these strings (`metric_to_json`).
NON_FINITE_JSON = ("nan", "inf", "-inf")


def metric_to_json(value: float) -> float | str:
    """A metric value as a glued record carries it: a number, or "nan"/"inf"/"-inf"."""
    return value if math.isfinite(value) else str(value)


def metric_from_json(value: float | str) -> float:
    """The metric value a glued record carries (checked by `check_glued_record`)."""
    return float(value)


def _check_metrics(record: Mapping[str, Any]) -> None:
    points = record.get("points")
    if not isinstance(points, list):
        raise InvalidInput("'points' must be a list")
    for point in points:
        if not isinstance(point, list) or len(point) != 4:
            raise InvalidInput(f"a metric point is [key, value, step, time], got {_shown(point)}")
        key, value, step, at = point
        _key(key, "metric key")
        if value not in NON_FINITE_JSON:
            _number(value, f"metric {key!r}")
        if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
            raise InvalidInput(f"step of metric {key!r} must be an integer, got {_shown(step)}")
        _number(at, f"time of metric {key!r}")


def _check_dataset(record: Mapping[str, Any]) -> None:
    dataset = record.get("dataset")
    if not isinstance(dataset, Mapping) or set(dataset) != {"digest", "kind", "size", "rows",
                                                            "schema"}:
        raise InvalidInput("'dataset' must be an object with digest, kind, size, rows, schema")
    check_digest(dataset["digest"], "dataset digest")
    if dataset["kind"] not in DATASET_KINDS:
        raise InvalidInput(f"dataset kind must be one of {', '.join(DATASET_KINDS)}, got "
                           f"{_shown(dataset['kind'])}")
    for field in ("size", "rows"):
        if dataset[field] is not None:
            check_size(dataset[field], f"dataset {field}")
    if dataset["schema"] is not None:
        _string_map(dataset["schema"], "dataset schema")
    if record.get("role") not in DATASET_ROLES:
        raise InvalidInput(f"dataset role must be one of {', '.join(DATASET_ROLES)}, got "
                           f"{_shown(record.get('role'))}")
    check_dataset_source(record.get("source"))


def _check_blob(record: Mapping[str, Any]) -> None:
    check_digest(record.get("digest"))
    check_size(record.get("size"))


def _check_artifact(record: Mapping[str, Any]) -> None:
    check_artifact_name(record.get("name"))
    _check_blob(record)
    if record.get("kind") not in ARTIFACT_KINDS:
        raise InvalidInput(f"artifact kind must be one of {', '.join(ARTIFACT_KINDS)}, got "
                           f"{_shown(record.get('kind'))}")


def _check_model(record: Mapping[str, Any]) -> None:
    check_model_name(record.get("name"))
    _check_blob(record)
    _text(record.get("flavor"), "model flavor", 100)
    for field in ("signature", "profile"):
        if record.get(field) is not None and not isinstance(record[field], Mapping):
            raise InvalidInput(f"model {field} must be an object or null")


def _check_predictions(record: Mapping[str, Any]) -> None:
    check_model_name(record.get("name"))
    check_digest(record.get("digest"))
    check_size(record.get("rows"), "rows")


def _check_end(record: Mapping[str, Any]) -> None:
    if record.get("status") not in ("finished", "failed", "killed"):
        raise InvalidInput(f"status must be finished, failed or killed, got "
                           f"{_shown(record.get('status'))}")
    _text(record.get("error"), "error", optional=True)


RECORD_CHECKS = {
    "start": _check_start, "params": _check_params, "tags": _check_tags,
    "metrics": _check_metrics, "dataset": _check_dataset, "artifact": _check_artifact,
    "model": _check_model, "predictions": _check_predictions, "end": _check_end,
}


def check_glued_record(name: str, record: object, version: int) -> Mapping[str, Any]:
    """Check one record a step glued (`mlops.record.NNNNNN`) against its op's schema.

    Required keys and their types, digests strict, names through `check_name` /
    `check_model_name`, sizes bounded. Raises `RecordRefused` naming the record
    and the problem; nothing is read or stored before this passes.
    """
    if type(record) is not dict and not isinstance(record, Mapping):  # dict: no ABC check
        raise RecordRefused(name, f"expected an object, got {type(record).__name__}")
    if record.get("version") != version:
        raise RecordRefused(name, f"unknown record version {_shown(record.get('version'))} "
                                  f"(this jupyter-mlops reads version {version})")
    check = RECORD_CHECKS.get(record.get("op"))  # type: ignore[arg-type]
    if check is None:
        raise RecordRefused(name, f"unknown operation {_shown(record.get('op'))}")
    try:
        check(record)
    except RecordRefused:
        raise
    except InvalidInput as exc:
        raise RecordRefused(name, f"{record.get('op')}: {exc}") from None
    return record
