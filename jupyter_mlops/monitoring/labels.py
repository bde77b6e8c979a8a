"""Late-arriving labels: checked row by row against the model that made the
prediction, stored as Parquet label files indexed in the store.

Every row needs a request id and a label: a missing one, a NaN, an infinity or
an empty string is refused naming the row and the value, and so is a label
that doesn't fit the model (text for a regression model, a class the
classifier doesn't have), so one bad row can never change which metrics a
report computes. Nothing of a refused file is stored. Request ids the
prediction log doesn't hold (yet) are counted, with examples, and kept.

A label can be corrected: upload it again. The last upload for a request id
wins, and the report counts the labels a later upload changed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInput, NotFound, StoreUnavailable
from ..store import Store
from .task import CLASSIFICATION, REGRESSION, ModelTask, TaskFinder

if TYPE_CHECKING:
    from .predlog import PredictionLog

SHOWN = 5  # problems and unknown request ids named in a message


@dataclass(frozen=True)
class LabelUpload:
    added: int  # labels stored
    corrected: int  # request ids whose earlier label this upload changes
    unknown: int  # request ids the prediction log doesn't hold (yet): stored all the same
    unknown_examples: tuple[str, ...]
    checked_against: tuple[str, ...]  # what the labels were checked against, per version


def write_labels(log: PredictionLog, store: Store, name: str, frame: Any,
                 row_name: Callable[[int], str] | None = None) -> LabelUpload:
    """Check `frame` (columns `request_id` and `label`, one row per label) and store it.

    `row_name(i)` names the i-th row (0-based) in messages (default `row i+1`).
    Raises `InvalidInput` naming the first bad rows (and how many there are) when any
    row is refused; then nothing is stored."""
    import pandas as pd

    name_of = row_name or (lambda i: f"row {i + 1}")
    missing = {"request_id", "label"} - set(frame.columns)
    if missing:
        raise InvalidInput(f"labels need the columns request_id and label; missing "
                           f"{', '.join(sorted(missing))}")
    if len(frame) == 0:
        raise InvalidInput("no labels in the file")
    problems: list[tuple[int, str]] = []
    raw_ids = frame["request_id"].tolist()
    ids = [_request_id(v) for v in raw_ids]
    values: list[float | str | None] = []
    for index, (rid, raw) in enumerate(zip(ids, frame["label"].tolist(), strict=True)):
        value, problem = label_value(raw)
        if rid is None:
            problems.append((index, f"request_id is blank ({raw_ids[index]!r})"
                             if isinstance(raw_ids[index], str) else "request_id is missing"))
        elif problem is not None:
            problems.append((index, f"{problem} (request_id {rid!r})"))
        values.append(value)

    known = log.request_versions(store, name)
    version_of = dict(zip(known["request_id"].tolist(), known["version"].tolist(),
                          strict=True))
    finder = TaskFinder(log.project, store, name)
    fallback = _fallback_version(store, name, known)
    checked: dict[int, str] = {}
    first_row: dict[str, int] = {}
    keep: list[int] = []
    refused = {index for index, _ in problems}
    for index, (rid, value) in enumerate(zip(ids, values, strict=True)):
        if index in refused:
            continue
        version = version_of.get(rid, fallback)
        task, _ = finder.task(version)
        if task is not None:
            checked.setdefault(version, f"{name}:{version}: {task.describe()}")
            value, problem = fit(value, task)
            if problem is not None:
                problems.append((index, f"{problem}: {name}:{version} is {task.describe()} "
                                        f"(request_id {rid!r})"))
                continue
            values[index] = value
        earlier = first_row.get(rid)
        if earlier is None:
            first_row[rid] = index
            keep.append(index)
        elif not same_label(values[earlier], value):
            problems.append((index, f"request_id {rid!r} has another label on "
                                    f"{name_of(earlier)} ({_shown(values[earlier])} and "
                                    f"{_shown(value)}): keep one"))
    _raise(problems, name_of)
    kept = [values[i] for i in keep]
    numbers = [isinstance(v, float) for v in kept]
    if any(numbers) and not all(numbers):
        index = keep[numbers.index(False)]
        _raise([(index, f"label {_shown(values[index])} is text while other labels are "
                        f"numbers (request_id {ids[index]!r})")], name_of)
    labels = pd.DataFrame({"request_id": [ids[i] for i in keep],
                           "label": pd.Series(kept, dtype="float64" if all(numbers)
                                              else object)})
    earlier_labels = read_labels(log, store, name)
    corrected = 0
    if len(earlier_labels):
        before = dict(zip(earlier_labels["request_id"].tolist(),
                          earlier_labels["label"].tolist(), strict=True))
        corrected = sum(1 for rid, value in zip(labels["request_id"], kept, strict=True)
                        if rid in before and not same_label(before[rid], value))
    unknown = [rid for rid in labels["request_id"] if rid not in version_of]
    try:
        path = log._write_file(name, "labels-", labels)
    except OSError as exc:
        raise StoreUnavailable(f"could not write the labels of {name!r} "
                               f"({type(exc).__name__}: {exc}); nothing was added") from None
    try:
        store.predictions.add_labels(name, log.relative(path), len(labels))
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return LabelUpload(len(labels), corrected, len(unknown), tuple(unknown[:SHOWN]),
                       tuple(checked[v] for v in sorted(checked)))


def read_labels(log: PredictionLog, store: Store, name: str) -> Any:
    """request_id, label (the last upload's) and corrected (a later upload changed it),
    one row per request id. Rows without a label (stored before labels were checked)
    are skipped: they never were a label."""
    import pandas as pd

    files = store.predictions.label_files(name)
    if not files:
        return pd.DataFrame({"request_id": pd.Series(dtype=object),
                             "label": pd.Series(dtype="float64"),
                             "corrected": pd.Series(dtype=bool)})
    frame = pd.concat([_usable(pd.read_parquet(log.project.home / f,
                                               columns=["request_id", "label"]))
                       for f in files], ignore_index=True)
    numeric = pd.to_numeric(frame["label"], errors="coerce")
    if numeric.notna().all():
        frame = frame.assign(label=numeric.astype("float64"))
    else:
        frame = frame.assign(label=frame["label"].map(_text))
    changed = frame.groupby("request_id", sort=False)["label"].nunique()
    final = frame.drop_duplicates("request_id", keep="last").reset_index(drop=True)
    final["corrected"] = final["request_id"].isin(changed.index[changed > 1])
    return final


def _usable(frame: Any) -> Any:
    """A label file's rows with a request id (as text) and a label (a float, or text),
    the others dropped. Files `write_labels` stored take the quick way."""
    import numpy as np
    import pandas as pd

    ids, labels = frame["request_id"], frame["label"]
    if labels.dtype != object and pd.api.types.is_numeric_dtype(labels):
        values = labels.astype("float64")
        keep = np.isfinite(values.to_numpy())
    else:
        values = pd.Series([label_value(v)[0] for v in labels.tolist()], dtype=object)
        keep = values.notna().to_numpy()
    if ids.dtype != object and pd.api.types.is_string_dtype(ids):
        keep &= (ids.fillna("").str.strip() != "").to_numpy(dtype=bool)
    else:
        ids = pd.Series([_request_id(v) for v in ids.tolist()], dtype=object)
        keep &= ids.notna().to_numpy()
    return pd.DataFrame({"request_id": ids[keep].astype(str).to_numpy(),
                         "label": values[keep].to_numpy()})


def label_value(raw: Any) -> tuple[float | str | None, str | None]:
    """A label as a finite number (numbers, and text that reads as one) or as text,
    or (None, what is wrong with it)."""
    import numpy as np

    if _missing(raw):
        return None, f"label is missing ({_shown(raw)})"
    if isinstance(raw, bool | np.bool_):
        return float(raw), None
    if isinstance(raw, int | np.integer | Decimal):
        return _finite(float(raw), raw)
    if isinstance(raw, float | np.floating):
        return _finite(float(raw), raw)
    if isinstance(raw, str):
        text = raw.strip()
        if not text:
            return None, f"label is empty ({raw!r})"
        try:
            number = float(text)
        except ValueError:
            return text, None
        return _finite(number, raw)
    return None, f"label {_shown(raw)} is neither a number nor text"


def _finite(number: float, raw: Any) -> tuple[float | None, str | None]:
    if math.isnan(number):
        return None, "label is NaN" + (f" ({_shown(raw)})" if isinstance(raw, str) else "")
    if math.isinf(number):
        return None, f"label is {_shown(raw)}, not a finite number"
    return number, None


def fit(value: float | str | None, task: ModelTask) -> tuple[float | str | None, str | None]:
    """`value` as the model's kind of label, or (None, why it doesn't fit)."""
    if task.kind == REGRESSION:
        if isinstance(value, float):
            return value, None
        return None, f"label {_shown(value)} is not a number"
    if task.kind == CLASSIFICATION and task.classes is not None:
        numeric = task.numeric_classes
        if numeric is not None:
            if isinstance(value, float) and value in numeric:
                return value, None
        else:  # classes named by text: a label matches one by its text
            text = _text(value)
            if text in {_text(c) for c in task.classes}:
                return text, None
        return None, f"label {_shown(value)} is not one of the classes"
    return value, None


def same_label(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b
    return _text(a) == _text(b)


def _fallback_version(store: Store, name: str, known: Any) -> int | None:
    """The version unknown request ids are checked against: the latest one logged, or
    the latest registered when nothing is logged."""
    versions = [int(v) for v in known["version"].unique() if int(v) >= 0] if len(known) else []
    if versions:
        return max(versions)
    try:
        return store.models.get(name).version
    except NotFound:
        return None


def _request_id(raw: Any) -> str | None:
    """A request id as text; None when missing or blank."""
    if _missing(raw):
        return None
    if isinstance(raw, float):
        if math.isnan(raw):
            return None
        return str(int(raw)) if raw.is_integer() else str(raw)
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "backslashreplace")
    text = str(raw)
    return text if text.strip() else None


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _shown(value: Any) -> str:
    """A value as a person reads it in a message: 1, 2.5, 'cat', None, nan."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        return repr(value[:60] + ("..." if len(value) > 60 else ""))
    return repr(value)[:60]


def _missing(raw: Any) -> bool:
    """None, or pandas' missing-value markers (NA, NaT); a float NaN is told apart."""
    if raw is None:
        return True
    import pandas as pd

    return raw is pd.NA or raw is pd.NaT


def _raise(problems: list[tuple[int, str]], name_of: Callable[[int], str]) -> None:
    if not problems:
        return
    problems.sort()
    index, first = problems[0]
    text = f"{name_of(index)}: {first}"
    if len(problems) > 1:
        others = ", ".join(name_of(i) for i, _ in problems[1:SHOWN + 1])
        more = "..." if len(problems) > SHOWN + 1 else ""
        text += f"; {len(problems) - 1} more rows refused ({others}{more})"
    raise InvalidInput(text + "; no labels were added")
