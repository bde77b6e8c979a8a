"""`mlops monitor labels|report|check|compact`: monitoring from the shell."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidInput, MlopsError, NotFound
from ..views import to_jsonable
from .common import open_store, positive


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("monitor", help="drift, quality, calibration, latency",
                                 description="Monitor a model from its logged predictions.")
    sub = parser.add_subparsers(title="monitor commands", metavar="COMMAND", required=True)
    labels = sub.add_parser("labels", help="add (or correct) late-arriving ground truth",
                            description="Add labels: a CSV or Parquet file with the columns "
                                        "request_id (from the service's or batch log) and "
                                        "label. Each row is checked against the model version "
                                        "that made the prediction (a missing request_id or "
                                        "label, NaN, or a label that doesn't fit the model is "
                                        "refused, naming the row; nothing is added). Upload "
                                        "a label again to correct it: the last upload wins.")
    labels.add_argument("model", help="model name")
    labels.add_argument("file")
    labels.set_defaults(func=add_labels)
    compact = sub.add_parser("compact", help="merge the prediction log's small files hourly",
                             description="Merge each finished hour's prediction-log files "
                                         "(the service writes one a second) into one file, "
                                         "so reports read a few files instead of thousands. "
                                         "Every row is kept exactly once, even if this is "
                                         "interrupted; safe while the service runs.")
    compact.add_argument("model", help="model name")
    compact.add_argument("--settle", type=float, default=None, metavar="SECONDS",
                         help="merge an hour once it ended this long ago (default 120; 0 also "
                              "merges the hour that just ended, never the current one)")
    compact.set_defaults(func=compact_log)
    for name, help_text in (("report", "the monitoring report of a window"),
                            ("check", "exit 1 and say why when a threshold is crossed")):
        p = sub.add_parser(name, help=help_text,
                           description=f"{help_text.capitalize()}: per model version, "
                                       "requests, error rate, latency p50/p95/p99, drift per "
                                       "feature and of the output, quality and calibration "
                                       "once labels arrive. Thresholds: [monitoring] in "
                                       ".mlops/config.toml.")
        p.add_argument("model", help="model name")
        p.add_argument("--window", default=None, help="e.g. 1h, 1d, 7d (default: everything)")
        p.add_argument("--last", type=positive, default=None, help="only the last N predictions")
        p.add_argument("--json", action="store_true", help="print JSON")
        p.set_defaults(func=report if name == "report" else check)


def _report(args: argparse.Namespace):  # noqa: ANN202
    import time

    from ..monitoring.predlog import parse_window
    from ..monitoring.report import build_report

    if args.last is not None and args.last < 1:
        raise InvalidInput("--last must be at least 1")
    since = time.time() - parse_window(args.window) if args.window else None
    project, store = open_store()
    with store:
        if getattr(store, "remote", False):  # the log is the server's: it builds the report
            return ServerReport(store.client.call("POST", "/monitor/report", {
                "model": args.model, "since": since, "last": args.last}))
        return build_report(project, store, args.model, since=since, last=args.last)


@dataclass(frozen=True)
class ServerCheck:
    name: str
    passed: bool
    detail: str


class ServerReport:
    """A team server's answer to /monitor/report, shaped as `_print` and `check` read a
    `MonitorReport`: its JSON, its printed lines and its checks."""

    def __init__(self, answer: object) -> None:
        if not isinstance(answer, dict) or not isinstance(answer.get("report"), dict) \
                or not isinstance(answer.get("lines"), list):
            raise MlopsError(f"the team server answered a monitoring report with "
                             f"{str(answer)[:80]}")
        self.json = answer["report"]
        self.lines = [str(line) for line in answer["lines"]]
        self.checks = [ServerCheck(str(c.get("name")), c.get("passed") is True,
                                   str(c.get("detail")))
                       for c in self.json.get("checks", []) if isinstance(c, dict)]


def _print(result, args: argparse.Namespace) -> None:  # noqa: ANN001
    from ..monitoring.report import report_lines

    if isinstance(result, ServerReport):
        print(json.dumps(result.json, indent=2) if args.json else "\n".join(result.lines))
        return
    if args.json:
        print(json.dumps(to_jsonable(result), indent=2))
        return
    for line in report_lines(result):
        print(line)


def add_labels(args: argparse.Namespace) -> int:
    import pandas as pd

    from ..monitoring.predlog import PredictionLog

    path = Path(args.file)
    if not path.is_file():
        raise NotFound(f"no file {path}")
    parquet = path.suffix in (".parquet", ".pq")
    try:
        # Request ids are text: read as numbers, '007' would become 7.
        frame = (pd.read_parquet(path) if parquet
                 else pd.read_csv(path, dtype={"request_id": str}, keep_default_na=False,
                                  na_values=[""]))
    except (ValueError, OSError) as exc:
        raise InvalidInput(f"cannot read {path}: {exc}") from None
    project, store = open_store()
    with store:
        if getattr(store, "remote", False):
            return _print_upload(args.model, _send_labels(store.client, args.model, frame,
                                                          parquet))
        try:
            upload = PredictionLog(project).write_labels(
                store, args.model, frame,
                (lambda i: f"row {i + 1}") if parquet else (lambda i: f"line {i + 2}"))
        except InvalidInput as exc:
            raise InvalidInput(f"{path.name}: {exc}") from None
    return _print_upload(args.model, upload)


def _print_upload(model: str, upload) -> int:  # noqa: ANN001 - a LabelUpload or its JSON
    added, corrected, unknown, examples = (
        (upload["added"], upload["corrected"], upload["unknown"], upload["unknown_examples"])
        if isinstance(upload, dict) else
        (upload.added, upload.corrected, upload.unknown, upload.unknown_examples))
    text = f"{added} labels added for {model}"
    if corrected:
        text += f", {corrected} of them correcting an earlier upload"
    print(text)
    if unknown:
        print(f"{unknown} request ids are not in the prediction log (yet), e.g. "
              + ", ".join(repr(r) for r in examples)
              + "; their labels are kept and count once those predictions are logged")
    return 0


def _send_labels(client, model: str, frame, parquet: bool) -> dict:  # noqa: ANN001
    """The labels to the team server, which checks and stores them (its log); a label
    JSON can't carry (NaN) goes as null, refused there as a missing label."""
    missing = {"request_id", "label"} - set(frame.columns)
    if missing:
        raise InvalidInput(f"labels need the columns request_id and label; missing "
                           f"{', '.join(sorted(missing))}")

    import math

    import pandas as pd

    def plain(value):  # noqa: ANN001, ANN202
        if value is None or (not isinstance(value, str) and pd.api.types.is_scalar(value)
                             and pd.isna(value)):
            return None
        if hasattr(value, "item"):
            value = value.item()  # numpy scalars
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value if isinstance(value, (str, int, float)) else str(value)

    answer = client.call("POST", "/monitor/labels", {
        "model": model, "file_kind": "parquet" if parquet else "csv",
        "request_ids": [plain(v) for v in frame["request_id"].tolist()],
        "labels": [plain(v) for v in frame["label"].tolist()]})
    if not isinstance(answer, dict) or not isinstance(answer.get("added"), int):
        raise MlopsError(f"the team server answered a label upload with {str(answer)[:80]}")
    return answer


def compact_log(args: argparse.Namespace) -> int:
    from ..monitoring.compaction import SETTLE_SECONDS, describe
    from ..monitoring.predlog import PredictionLog

    project, store = open_store()
    with store:
        result = PredictionLog(project).compact(
            store, args.model, settle=SETTLE_SECONDS if args.settle is None else args.settle)
    print(describe(result))
    return 0


def report(args: argparse.Namespace) -> int:
    _print(_report(args), args)
    return 0


def check(args: argparse.Namespace) -> int:
    result = _report(args)
    failed = [c for c in result.checks if not c.passed]
    if args.json:
        print(json.dumps(to_jsonable(result.checks), indent=2))
    else:
        for c in result.checks:
            print(f"{'ok  ' if c.passed else 'FAIL'} {c.name}: {c.detail}")
    if failed:
        print(f"mlops: {len(failed)} check(s) failed for {args.model}: "
              + "; ".join(c.name for c in failed), file=sys.stderr)
        return 1
    return 0
