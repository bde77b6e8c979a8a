"""POST /api/v1/monitor/report: a model's monitoring report, computed by the server.

The prediction log lives in the server's home (`predictions/NAME/`, shipped by
`mlops serve` and runs' `log_predictions`), so the report is built where the
files are, by the embedded mode's own `build_report`, with the thresholds of
the `[monitoring]` section of the server's `registry.toml`. The answer carries
the report as JSON (what `mlops monitor report --json` prints) and as the lines
`mlops monitor report` prints, so the client needs no monitoring code.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..errors import InvalidInput
from ..store import Store
from ..store.ids import MAX_INTEGER
from ..validation import check_model_name
from .governance import check_body, server_project


def monitor_report(home: Path, artifacts: Path | str, store: Store, body: object
                   ) -> dict[str, Any]:
    """`{"model": NAME, "since": SECONDS?, "last": N?}` -> `{"report", "lines"}`."""
    from ..monitoring.report import build_report, report_lines
    from ..views import to_jsonable

    body = check_body(body)
    name = check_model_name(body.get("model"))
    since = body.get("since")
    if since is not None and (isinstance(since, bool) or not isinstance(since, (int, float))
                              or not math.isfinite(since)):
        raise InvalidInput(f"'since' must be a time in seconds, got {str(since)[:40]!r}")
    last = body.get("last")
    if last is not None and (isinstance(last, bool) or not isinstance(last, int)
                             or not 1 <= last <= MAX_INTEGER):
        raise InvalidInput(f"'last' must be a whole number of at least 1, got "
                           f"{str(last)[:40]!r}")
    report = build_report(server_project(home, artifacts), store, name,  # type: ignore[arg-type]
                          since=since, last=last)
    return {"report": to_jsonable(report), "lines": report_lines(report)}


MAX_LABELS = 1_000_000


def add_labels(home: Path, artifacts: Path | str, store: Store, body: object
               ) -> dict[str, Any]:
    """`{"model": NAME, "request_ids": [...], "labels": [...], "file_kind": "csv"?}` -> the
    upload (added, corrected, unknown ...). Checked by the embedded mode's
    `write_labels` against the model version of each prediction: one bad row and
    nothing is stored."""
    import pandas as pd

    from ..monitoring.labels import write_labels
    from ..monitoring.predlog import PredictionLog
    from ..views import to_jsonable

    body = check_body(body)
    name = check_model_name(body.get("model"))
    ids, labels = body.get("request_ids"), body.get("labels")
    if not isinstance(ids, list) or not isinstance(labels, list) or len(ids) != len(labels):
        raise InvalidInput("'request_ids' and 'labels' must be lists of the same length")
    if len(ids) > MAX_LABELS:
        raise InvalidInput(f"{len(ids)} labels in one upload: send at most {MAX_LABELS}")
    for value in (*ids, *labels):
        if value is not None and (isinstance(value, bool)
                                  or not isinstance(value, (str, int, float))):
            raise InvalidInput(f"a request id or label must be a text or a number, got "
                               f"{str(value)[:40]!r}")
    kind = body.get("file_kind", "parquet")
    if kind not in ("csv", "parquet"):
        raise InvalidInput("'file_kind' must be 'csv' or 'parquet' (how messages name rows)")
    frame = pd.DataFrame({"request_id": pd.Series(ids, dtype=object),
                          "label": pd.Series(labels, dtype=object)})
    upload = write_labels(PredictionLog(server_project(home, artifacts)),  # type: ignore[arg-type]
                          store, name, frame,
                          (lambda i: f"line {i + 2}") if kind == "csv"
                          else (lambda i: f"row {i + 1}"))
    return to_jsonable(upload)
