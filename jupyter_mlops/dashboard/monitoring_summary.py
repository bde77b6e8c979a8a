"""What the monitoring page puts first, computed from a `MonitorReport` without Panel:
the number cards (each judged against its threshold), the drift results sorted by
severity, and where in the window the model version changed."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import MonitoringConfig
from ..monitoring.drift import DriftResult
from ..monitoring.report import MonitorReport, VersionReport

# Tests whose statistic is compared with the threshold; the others (ks, chi2) compare
# a p-value with it, so their statistic alone ranks them.
_AGAINST_THRESHOLD = {"psi", "jensen-shannon"}


@dataclass(frozen=True)
class Card:
    label: str
    value: str
    passed: bool | None  # None: no threshold applies
    limit: str = ""  # the threshold, as the card says it


@dataclass(frozen=True)
class VersionChange:
    at: float  # epoch seconds: the first time bucket served mostly by `version`
    version: int | None


def current_version(report: MonitorReport) -> VersionReport | None:
    """The version serving at the end of the window (the last time bucket's), else the
    newest one reported."""
    if not report.versions:
        return None
    if report.timeline:
        latest = report.timeline[-1].version
        for version in report.versions:
            if version.version == latest:
                return version
    return report.versions[-1]


def cards(report: MonitorReport, settings: MonitoringConfig) -> list[Card]:
    """Requests, error rate, latency p95, features drifting and accuracy of the version
    in force, each green or red against its threshold."""
    found = [Card("requests", f"{report.rows:,}", None)]
    version = current_version(report)
    if version is None:
        return found
    found.append(Card("error rate", f"{version.error_rate:.2%}",
                      version.error_rate <= settings.max_error_rate,
                      f"max {settings.max_error_rate:.2%}"))
    p95 = version.latency_ms["p95"]
    found.append(Card("latency p95", f"{p95:.1f} ms", p95 <= settings.max_latency_p95_ms,
                      f"max {settings.max_latency_p95_ms:g} ms"))
    drifting = sum(1 for d in version.drift if d.drifted)
    if not report.drift_measured:
        found.append(Card("features drifting", "measuring...", None, "max 0"))
    else:
        # No drift result at all (no reference profile, no version, no successful
        # request): "0 of 0" would read as "nothing drifts".
        found.append(Card("features drifting", f"{drifting} of {len(version.drift)}"
                          if version.drift else "not measured",
                          drifting == 0 if version.drift else None, "max 0"))
    accuracy = version.quality.get("accuracy")
    if accuracy is None:
        found.append(Card("accuracy", "no labels" if not version.labelled else "n/a", None))
    else:
        minimum = settings.min_accuracy
        found.append(Card("accuracy", f"{accuracy:.3f}",
                          None if minimum is None else accuracy >= minimum,
                          "" if minimum is None else f"min {minimum:g}"))
    return found


def severity(result: DriftResult) -> tuple[bool, float]:
    """Sort key, largest first: drifted features, then by how far past (or short of)
    the threshold the statistic is."""
    statistic = result.statistic if result.statistic is not None else -1.0
    if result.test in _AGAINST_THRESHOLD and result.threshold > 0:
        statistic = statistic / result.threshold
    return (result.drifted, statistic)


def by_severity(results: tuple[DriftResult, ...]) -> list[DriftResult]:
    return sorted(results, key=severity, reverse=True)


def version_changes(report: MonitorReport) -> list[VersionChange]:
    """Where the version serving most requests changed from one time bucket to the next."""
    timeline = report.timeline
    return [VersionChange(after.start, after.version)
            for before, after in zip(timeline, timeline[1:], strict=False)
            if after.version != before.version]
