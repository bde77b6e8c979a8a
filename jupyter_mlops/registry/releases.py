"""The registry's rules: aliases, gates, release requests and four-eyes approval.

    registry = Registry(project, store)
    registry.run_gates("churn:3", actor=me)
    request = registry.request_release("churn:3", "production", me, "beats prod on recall")
    registry.approve(request.id, reviewer, "checked the evidence")   # moves the alias

Only an approved request moves a protected alias; nobody approves their own
request; failing gates block approval unless an admin overrides with a
written reason; evidence computed on evaluation data or gates that have changed
since is stale; evaluation data that differs from the last approved release's
takes the reviewer's explicit acknowledgement. Every change lands in the audit log.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import Conflict, InvalidInput, MlopsError, NotFound, PermissionDenied
from ..fsspec_artifacts import open_artifact_store
from ..hashing import digest_file
from ..models import load_model_bytes
from ..project import Project
from ..store import Store
from ..store.audit import AuditEntry
from ..store.gates import Evaluation, GateResult
from ..store.records import ModelVersion, Run, RunDataset
from ..store.releases import ReleaseRequest, StaleEvidence
from ..validation import check_alias
from .gates import (
    compute_metrics,
    evaluate_gates,
    gate_set,
    gates_for,
    load_evaluation_data,
    parse_gate,
    read_evaluation_data,
)
from .identity import Identity

MAX_REASON = 2000
EVIDENCE_ATTEMPTS = 3  # recomputations when an alias moves while evidence is computed
EVIDENCE_FORMAT = 3  # 2: computed by the request on the configured data, with holders;
#                     3: with the gate set (text and digest) that judged it


@dataclass(frozen=True)
class ModelLineage:
    """Everything behind a model version: the run, its data and code, gates, approvals."""

    version: ModelVersion
    aliases: tuple[str, ...]
    run: Run | None
    datasets: tuple[RunDataset, ...]
    evaluations: tuple[Evaluation, ...]
    gates: tuple[GateResult, ...]
    requests: tuple[ReleaseRequest, ...]
    audit: tuple[AuditEntry, ...]


@dataclass(frozen=True)
class DataChange:
    """A request's evaluation data differs from an earlier approved release's.

    `since` is the most recently approved release of the same model and alias
    whose evidence names its data (or, for a first release there, of the project,
    whose evaluation data file is shared by all its models).
    """

    since: ReleaseRequest
    before: str  # digest
    after: str
    before_path: str
    after_path: str

    def describe(self) -> str:
        where = (self.after_path if self.before_path == self.after_path
                 else f"{self.before_path} -> {self.after_path}")
        return (f"evaluation data changed since release {self.since.id} ({self.since.ref} -> "
                f"{self.since.alias}): {where} {self.before} -> {self.after}")

    def payload(self) -> dict[str, Any]:
        """What the audit log records when a reviewer accepts the change."""
        return {"since_request": self.since.id, "from": self.before, "to": self.after,
                "from_path": self.before_path, "to_path": self.after_path}


def check_reason(reason: object, what: str = "a reason") -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput(f"{what} is required: say why, in a sentence")
    if len(reason) > MAX_REASON:
        raise InvalidInput(f"{what} is {len(reason)} characters long; keep it under "
                           f"{MAX_REASON}")
    return reason.strip()


class Registry:
    def __init__(self, project: Project, store: Store) -> None:
        self.project = project
        self.store = store
        self.artifacts = open_artifact_store(project.artifacts_dir)

    # -- versions and aliases ----------------------------------------------------------

    def resolve(self, ref: str) -> ModelVersion:
        return self.store.models.resolve(ref)

    def load(self, version: ModelVersion, trusted: list[str] | None = None) -> Any:
        return load_model_bytes(self.artifacts.read_bytes(version.digest), trusted)

    def is_protected(self, alias: str) -> bool:
        return alias in self.project.registry.protected_aliases

    def set_alias(self, ref: str, alias: str, identity: Identity, reason: str) -> ModelVersion:
        """Move an unprotected alias directly (protected ones need a release request)."""
        alias = check_alias(alias)
        version = self.resolve(ref)
        if self.is_protected(alias):
            raise PermissionDenied(f"{alias!r} is protected: it moves only through an approved "
                                   f"release (`mlops release request {version.ref} --to {alias}"
                                   " --reason ...`)")
        self.store.releases.set_alias(version.name, alias, version.version,
                                      actor=identity.user, reason=check_reason(reason))
        return version

    def holder(self, name: str, alias: str) -> ModelVersion | None:
        version = self.store.releases.alias_version(name, alias)
        return None if version is None else self.store.models.get(name, version)

    # -- evaluations and gates ----------------------------------------------------------

    def evaluation_data(self, data: str | None, target: str | None) -> tuple[Path, str] | None:
        data = data or self.project.registry.evaluation_data
        target = target or self.project.registry.evaluation_target
        if data is None:
            return None
        if target is None:
            raise InvalidInput("evaluation data needs its target column: --target NAME or "
                               "evaluation_target in [registry]")
        path = Path(data)
        return (path if path.is_absolute() else self.project.root / path), target

    def evaluate(self, version: ModelVersion, path: Path, target: str) -> Evaluation:
        """Metrics of `version` on the file at `path`, stored with its digest (reused if
        already computed on the same bytes)."""
        digest = digest_file(path)
        for existing in self.store.gates.evaluations(version.name, version.version):
            if existing.dataset_digest == digest:
                return existing
        X, y = load_evaluation_data(path, target)
        metrics = compute_metrics(self.load(version), X, y)
        return self.store.gates.add_evaluation(version.name, version.version, digest, metrics)

    def latest_evaluation(self, version: ModelVersion) -> Evaluation | None:
        found = self.store.gates.evaluations(version.name, version.version)
        return found[0] if found else None

    def run_gates(self, ref: str, identity: Identity, *, data: str | None = None,
                  target: str | None = None, against: str | None = None) -> list[GateResult]:
        """Evaluate the configured gates for a version and store the results.

        `against` compares with that alias's holder instead of the alias a gate names
        (e.g. check a candidate against staging with the production gates); an
        alias nobody holds is `NotFound`. These results are information for the
        requester: a release request computes its own evidence (`request_release`).
        """
        version = self.resolve(ref)
        gates = gates_for(version.name, self.project.registry.gates)
        if not gates:
            where = getattr(self.project, "rules_file", ".mlops/config.toml")
            raise InvalidInput(f"no gates apply to {version.name!r}: declare [[gates]] in "
                               f"{where}")
        if against is not None:
            self._require_holder(version.name, check_alias(against))
        source = self.evaluation_data(data, target)
        holders: dict[str, tuple[int, Evaluation | None] | None] = {}
        for alias in {g.alias for g in gates if g.alias}:
            holder = self.holder(version.name, against or alias)
            if holder is None:
                holders[alias] = None
            elif source is not None:
                holders[alias] = (holder.version, self.evaluate(holder, *source))
            else:
                holders[alias] = (holder.version, self.latest_evaluation(holder))
        candidate = (self.evaluate(version, *source) if source is not None
                     else self.latest_evaluation(version))
        results = evaluate_gates(version.name, version.version, gates, candidate, holders,
                                 against)
        self.store.gates.record(results, identity.user)
        return results

    def _require_holder(self, name: str, alias: str) -> ModelVersion:
        holder = self.holder(name, alias)
        if holder is None:
            raise NotFound(f"no version of {name!r} holds the alias {alias!r}, so there is "
                           f"nothing to compare with; point {alias} at a version first, or "
                           "leave out --against")
        return holder

    # -- release requests -----------------------------------------------------------------

    def request_release(self, ref: str, alias: str, identity: Identity, reason: str
                        ) -> ReleaseRequest:
        """Ask for `alias` to point at a version, with evidence computed here and now.

        The evidence is never taken from earlier `gates run` results: the gates are
        evaluated on the project's configured evaluation data, against the versions
        that hold the aliases they name, and stored with the data's digest. The
        write checks that those aliases have not moved and the data has not changed
        since (recomputing a few times if they did). Raises `InvalidInput` when
        gates apply but no evaluation data is configured, `Conflict` for a duplicate.
        """
        alias = check_alias(alias)
        reason = check_reason(reason)
        version = self.resolve(ref)
        self.store.releases.refuse_duplicate(version.name, version.version, alias)  # early
        for _ in range(EVIDENCE_ATTEMPTS):
            evidence = self.compute_evidence(version, alias)
            try:
                return self.store.releases.request(
                    version.name, version.version, alias, requester=identity.user,
                    reason=reason, evidence=evidence, holders=evidence["holders"],
                    precondition=self._data_unchanged(evidence))
            except StaleEvidence:
                continue
        raise Conflict(f"the aliases of {version.name!r} or the evaluation data kept changing "
                       f"while the evidence for {version.ref} -> {alias} was computed; try "
                       "again")

    def compute_evidence(self, version: ModelVersion, alias: str) -> dict[str, Any]:
        """The evidence of a request: gates, metrics of both sides, data digest, holders.

        Metrics are computed afresh from the model files (stored evaluations could
        have been written by anyone); they live in the evidence (id 0: not stored
        in the evaluations table).
        """
        gates = gates_for(version.name, self.project.registry.gates)
        source = self.evaluation_data(None, None)
        if gates and source is None:
            raise InvalidInput(
                f"gates apply to {version.name!r} but no evaluation data is configured: set "
                "evaluation_data (a CSV or Parquet file) and evaluation_target (its label "
                "column) in [registry] of .mlops/config.toml; a release's evidence is "
                "computed on that data, never on data the requester picks")
        aliases = sorted({alias} | {g.alias for g in gates if g.alias})
        holders = {a: self.store.releases.alias_version(version.name, a) for a in aliases}
        data: dict[str, Any] | None = None
        metrics: dict[int, Evaluation] = {}
        if source is not None:
            path, target = source
            X, y, digest = read_evaluation_data(path, target)
            data = {"path": self._display_path(path), "target": target, "digest": digest,
                    "rows": int(len(y))}
            for number in {version.version, *(v for v in holders.values() if v is not None)}:
                model = self.store.models.get(version.name, number)
                metrics[number] = Evaluation(0, version.name, number, digest,
                                             compute_metrics(self.load(model), X, y), time.time())
        held = {a: None if v is None else (v, metrics.get(v)) for a, v in holders.items()}
        results = evaluate_gates(version.name, version.version, gates,
                                 metrics.get(version.version), held)
        return _evidence(version, alias, holders, data, gate_set(gates), results, metrics,
                         self.store.models.get)

    def _data_unchanged(self, evidence: dict[str, Any]) -> Callable[[], None]:
        """A check, run inside the request's write, that the evaluation data is unchanged."""
        def check() -> None:
            data = evidence.get("data")
            if data is None:
                return
            source = self.evaluation_data(None, None)
            try:
                unchanged = source is not None and digest_file(source[0]) == data["digest"]
            except OSError:
                unchanged = False
            if not unchanged:
                raise StaleEvidence(f"the evaluation data {data['path']} changed while the "
                                    "evidence was computed")
        return check

    def _display_path(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.project.root))
        except ValueError:
            return str(path)

    def approve(self, request_id: int, identity: Identity, reason: str,
                override_reason: str | None = None, accept_data_change: bool = False
                ) -> ReleaseRequest:
        """Approve a pending request and move its alias, if this reviewer may.

        Refused (`PermissionDenied`) for non-reviewers, the requester, failing gates
        without an admin's override, evaluation data that changed since the last
        approved release unless `accept_data_change` (then recorded in the audit
        log); and (`Conflict`) when the evidence is stale: an alias it was computed
        against has moved, the evaluation data file or setting differs from what it
        was computed on, or the gates that apply are not the ones that judged it.
        """
        reason = check_reason(reason)
        request = self.store.releases.get(request_id)
        identity.require_reviewer("approve releases")
        if identity.user == request.requester:
            raise PermissionDenied(f"{identity.user} requested release {request_id} and may not "
                                   "approve it: another reviewer must (four eyes)")
        if request.status != "pending":
            raise Conflict(f"release request {request_id} is already {request.status}")
        self._refuse_stale(request)
        failing = [g["gate"] for g in request.evidence.get("gates", []) if not g["passed"]]
        if failing and override_reason is None:
            raise PermissionDenied(f"gates failed for {request.ref}: {', '.join(failing)}; an "
                                   "admin may override with a written reason (--override)")
        if override_reason is not None:
            override_reason = check_reason(override_reason, "an override reason")
            if not identity.is_admin:
                raise PermissionDenied(f"{identity.user} may not override gates: it takes the "
                                       "admin role")
        change = self.data_change(request)
        if change is not None and not accept_data_change:
            raise PermissionDenied(
                f"{change.describe()}; check the new data (`mlops release show {request_id}`), "
                "then approve with --accept-data-change (the dashboard: tick 'I accept the "
                "changed evaluation data'); the acceptance is recorded in the audit log")
        return self.store.releases.decide(request_id, decision="approve", actor=identity.user,
                                          reason=reason, override_reason=override_reason,
                                          holders=evidence_holders(request),
                                          precondition=self._refuse_stale,
                                          data_change=change.payload() if change else None)

    def _refuse_stale(self, request: ReleaseRequest) -> None:
        """`StaleEvidence` (a `Conflict`) if the data or the gates differ from the evidence's.

        Aliases are checked by the store inside the approval's transaction.
        """
        problems = self.evidence_problems(request)
        if problems:
            raise StaleEvidence(
                f"{'; '.join(problems)}: the evidence of release request {request.id} is "
                f"stale; request again (`mlops release request {request.ref} --to "
                f"{request.alias} --reason ...`)")

    def stale_aliases(self, request: ReleaseRequest) -> list[str]:
        """Aliases that moved since the request's evidence was computed (empty: fresh)."""
        return sorted(alias for alias, version in evidence_holders(request).items()
                      if self.store.releases.alias_version(request.name, alias) != version)

    def stale_reasons(self, request: ReleaseRequest) -> list[str]:
        """Why the request's evidence no longer holds, one sentence each (empty: fresh).

        Moved aliases, then the evaluation data and the gates (`evidence_problems`).
        """
        moved = [f"{alias} moved since the evidence was computed"
                 for alias in self.stale_aliases(request)]
        return moved + self.evidence_problems(request)

    def evidence_problems(self, request: ReleaseRequest) -> list[str]:
        """How the evaluation data and the gates of now differ from the evidence's."""
        problems = []
        data = evidence_data(request)
        if data is not None:
            problem = self._data_problem(data)
            if problem is not None:
                problems.append(problem)
        now = gates_for(request.name, self.project.registry.gates)
        recorded = evidence_gate_set(request)
        if recorded is None or recorded["digest"] != gate_set(now)["digest"]:
            then = ("unknown: the evidence does not record them" if recorded is None
                    else "; ".join(recorded["checks"]) or "none")
            problems.append(f"the gates for {request.name!r} changed since the evidence was "
                            f"computed (then: {then}; now: "
                            f"{'; '.join(g.text for g in now) or 'none'})")
        return problems

    def _data_problem(self, data: dict[str, Any]) -> str | None:
        """How the configured evaluation data differs from `data` (the evidence's), if it does."""
        was = data.get("path")
        try:
            source = self.evaluation_data(None, None)
        except InvalidInput as exc:
            return f"the evaluation data setting is incomplete ({exc})"
        if source is None:
            return (f"no evaluation data is configured any more (the evidence was computed on "
                    f"{was})")
        path, target = source
        shown = self._display_path(path)
        if shown != was or data.get("target") not in (None, target):
            return (f"the evaluation data setting changed since the evidence was computed "
                    f"({was}, target {data.get('target')!r} -> {shown}, target {target!r})")
        try:
            digest = digest_file(path)
        except (OSError, MlopsError) as exc:
            return f"the evaluation data {shown} can't be read now ({exc})"
        if digest != data.get("digest"):
            return (f"the evaluation data {shown} changed since the evidence was computed "
                    f"({data.get('digest')} -> {digest})")
        return None

    def data_change(self, request: ReleaseRequest) -> DataChange | None:
        """How the request's evaluation data differs from the last approved release's.

        Compared with the most recent release of the same model and alias approved
        before this one (whose evidence names its data); for a first release there,
        with the project's most recent (the evaluation data file is the project's).
        None when the digests match, or when there is nothing to compare.
        """
        data = evidence_data(request)
        if data is None:
            return None
        releases = self.store.releases
        scopes: tuple[dict[str, str], ...] = ({"name": request.name, "alias": request.alias},
                                              {})
        for scope in scopes:
            since = releases.latest_approved(**scope, decided_before=request.decided_at,
                                             exclude=request.id)
            if since is not None:
                break
        else:
            return None
        before = evidence_data(since)
        if before is None or before.get("digest") == data.get("digest"):
            return None
        return DataChange(since=since, before=str(before.get("digest")),
                          after=str(data.get("digest")), before_path=str(before.get("path")),
                          after_path=str(data.get("path")))

    def other_gate_results(self, request: ReleaseRequest) -> list[GateResult]:
        """Gate results stored by `gates run` for the candidate: information, not the verdict.

        The newest result of each (gate, alias compared with, data digest), newest
        first; each names the data it was computed on, which the requester chose.
        """
        seen: set[tuple[str, str | None, int | None, str | None]] = set()
        results = []
        for result in self.store.gates.recent(request.name, request.version):
            key = (result.gate, result.against, result.against_version, result.dataset_digest)
            if key not in seen:
                seen.add(key)
                results.append(result)
        return results

    def reject(self, request_id: int, identity: Identity, reason: str) -> ReleaseRequest:
        reason = check_reason(reason)
        identity.require_reviewer("reject releases")
        return self.store.releases.decide(request_id, decision="reject", actor=identity.user,
                                          reason=reason)

    def can_approve(self, request: ReleaseRequest, identity: Identity) -> bool:
        """Whether to offer `identity` an approve button for `request` at all."""
        return (request.status == "pending" and identity.is_reviewer
                and identity.user != request.requester and not self.stale_reasons(request))

    # -- lineage --------------------------------------------------------------------------

    def lineage(self, ref: str) -> ModelLineage:
        version = self.resolve(ref)
        aliases = tuple(sorted(a for (n, a), v in self.store.releases.aliases(version.name)
                               .items() if v == version.version))
        run = self.store.runs.get(version.run_id) if version.run_id is not None else None
        datasets = tuple(self.store.datasets.for_run(run.id)) if run else ()
        requests = tuple(r for r in self.store.releases.list(name=version.name, limit=1000)
                         if r.version == version.version)
        return ModelLineage(
            version=version, aliases=aliases, run=run, datasets=datasets,
            evaluations=tuple(self.store.gates.evaluations(version.name, version.version)),
            gates=tuple(self.store.gates.latest(version.name, version.version)),
            requests=requests,
            audit=tuple(self.store.audit.entries(subject=version.ref, limit=200)))


def evidence_holders(request: ReleaseRequest) -> dict[str, int | None]:
    """Alias -> version the request's evidence was computed against.

    Requests made before evidence recorded its holders (format 1) only name the
    target alias's holder, as `current`.
    """
    holders = request.evidence.get("holders")
    if isinstance(holders, dict):
        return {str(a): None if v is None else int(v) for a, v in holders.items()}
    current = request.evidence.get("current")
    ref = current.get("ref") if isinstance(current, dict) else None
    return {request.alias: int(ref.rpartition(":")[2]) if ref else None}


def evidence_data(request: ReleaseRequest) -> dict[str, Any] | None:
    """The evaluation data a request's evidence was computed on (path, target, digest,
    rows), or None if it names none."""
    data = request.evidence.get("data")
    return data if isinstance(data, dict) and data.get("digest") else None


def evidence_gate_set(request: ReleaseRequest) -> dict[str, Any] | None:
    """The gates that judged a request: {"digest", "checks"}, or None if unknown.

    Evidence from before it recorded its gate set (format 2 and older) names each
    gate's text in its results, from which the set is rebuilt.
    """
    recorded = request.evidence.get("gate_set")
    if isinstance(recorded, dict):
        return recorded
    try:
        return gate_set([parse_gate(str(g["gate"]))
                         for g in request.evidence.get("gates", [])])
    except (InvalidInput, KeyError, TypeError):
        return None


def _evidence(version: ModelVersion, alias: str, holders: dict[str, int | None],
              data: dict[str, Any] | None, gates: dict[str, Any], results: list[GateResult],
              metrics: dict[int, Evaluation], get_version: Callable[[str, int], ModelVersion]
              ) -> dict[str, Any]:
    """The JSON evidence stored with a request (and shown to reviewers)."""
    def side(number: int) -> dict[str, Any]:
        model = get_version(version.name, number)
        found = metrics.get(number)
        return {"ref": model.ref, "run": model.run_id,
                "metrics": dict(found.metrics) if found else {},
                "dataset": found.dataset_digest if found else None}

    current = holders.get(alias)
    return {
        "format": EVIDENCE_FORMAT,
        "data": data,
        "holders": holders,
        "gate_set": gates,
        "gates": [{"gate": g.gate, "passed": g.passed, "reason": g.reason,
                   "against": g.against, "against_version": g.against_version,
                   "value": g.value, "threshold": g.threshold,
                   "dataset": g.dataset_digest} for g in results],
        "gates_passed": all(g.passed for g in results),
        "candidate": side(version.version),
        "current": None if current is None else side(current),
    }
