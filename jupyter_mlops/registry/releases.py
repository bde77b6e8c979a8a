"""The registry's rules: aliases, gates, release requests and four-eyes approval.

    registry = Registry(project, store)
    registry.run_gates("churn:3", actor=me)
    request = registry.request_release("churn:3", "production", me, "beats prod on recall")
    registry.approve(request.id, reviewer, "checked the evidence")   # moves the alias

Only an approved request moves a protected alias; nobody approves their own
request; failing gates block approval unless an admin overrides with a
written reason. Every change lands in the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..artifacts import ArtifactStore
from ..errors import Conflict, InvalidInput, PermissionDenied
from ..hashing import digest_file
from ..models import load_model_bytes
from ..project import Project
from ..store import Store
from ..store.audit import AuditEntry
from ..store.gates import Evaluation, GateResult
from ..store.records import ModelVersion, Run, RunDataset
from ..store.releases import ReleaseRequest
from .gates import compute_metrics, evaluate_gates, gates_for, load_evaluation_data
from .identity import Identity

MAX_REASON = 2000
ALIAS_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-_")


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


def check_reason(reason: object, what: str = "a reason") -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput(f"{what} is required: say why, in a sentence")
    if len(reason) > MAX_REASON:
        raise InvalidInput(f"{what} is {len(reason)} characters long; keep it under "
                           f"{MAX_REASON}")
    return reason.strip()


def check_alias(alias: object) -> str:
    if (not isinstance(alias, str) or not alias or len(alias) > 64
            or not set(alias) <= ALIAS_NAME_CHARS or alias[0] in "-_"):
        raise InvalidInput(f"alias {str(alias)[:80]!r} refused: use lowercase letters, digits, "
                           "'-' and '_' (at most 64), starting with a letter or digit")
    return alias


class Registry:
    def __init__(self, project: Project, store: Store) -> None:
        self.project = project
        self.store = store
        self.artifacts = ArtifactStore(project.artifacts_dir)

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
        (e.g. check a candidate against staging with the production gates).
        """
        version = self.resolve(ref)
        gates = gates_for(version.name, self.project.registry.gates)
        if not gates:
            raise InvalidInput(f"no gates apply to {version.name!r}: declare [[gates]] in "
                               ".mlops/config.toml")
        source = self.evaluation_data(data, target)
        holders: dict[str, tuple[int, Evaluation | None] | None] = {}
        for alias in {g.alias for g in gates if g.alias}:
            holder = self.holder(version.name, check_alias(against) if against else alias)
            if holder is None:
                holders[alias] = None
            elif source is not None:
                holders[alias] = (holder.version, self.evaluate(holder, *source))
            else:
                holders[alias] = (holder.version, self.latest_evaluation(holder))
        candidate = (self.evaluate(version, *source) if source is not None
                     else self.latest_evaluation(version))
        results = evaluate_gates(version.name, version.version, gates, candidate, holders)
        self.store.gates.record(results, identity.user)
        return results

    # -- release requests -----------------------------------------------------------------

    def request_release(self, ref: str, alias: str, identity: Identity, reason: str
                        ) -> ReleaseRequest:
        """Ask for `alias` to point at a version, with the evidence as it stands now."""
        alias = check_alias(alias)
        reason = check_reason(reason)
        version = self.resolve(ref)
        current = self.holder(version.name, alias)
        if current is not None and current.version == version.version:
            raise Conflict(f"{alias} already points at {version.ref}")
        pending = [r for r in self.store.releases.list("pending", version.name)
                   if r.alias == alias and r.version == version.version]
        if pending:
            raise Conflict(f"release request {pending[0].id} for {version.ref} -> {alias} is "
                           "already pending")
        gates = self.store.gates.latest(version.name, version.version)
        if not gates and gates_for(version.name, self.project.registry.gates):
            gates = self.run_gates(version.ref, identity)
        candidate = self.latest_evaluation(version)
        holder_eval = self.latest_evaluation(current) if current is not None else None
        evidence = {
            "gates": [{"gate": g.gate, "passed": g.passed, "reason": g.reason,
                       "against_version": g.against_version} for g in gates],
            "gates_passed": all(g.passed for g in gates),
            "candidate": {"ref": version.ref, "run": version.run_id,
                          "metrics": dict(candidate.metrics) if candidate else {},
                          "dataset": candidate.dataset_digest if candidate else None},
            "current": None if current is None else {
                "ref": current.ref, "run": current.run_id,
                "metrics": dict(holder_eval.metrics) if holder_eval else {},
                "dataset": holder_eval.dataset_digest if holder_eval else None},
        }
        return self.store.releases.request(version.name, version.version, alias,
                                           requester=identity.user, reason=reason,
                                           evidence=evidence)

    def approve(self, request_id: int, identity: Identity, reason: str,
                override_reason: str | None = None) -> ReleaseRequest:
        """Approve a pending request and move its alias, if this reviewer may."""
        reason = check_reason(reason)
        request = self.store.releases.get(request_id)
        identity.require_reviewer("approve releases")
        if identity.user == request.requester:
            raise PermissionDenied(f"{identity.user} requested release {request_id} and may not "
                                   "approve it: another reviewer must (four eyes)")
        if request.status != "pending":
            raise Conflict(f"release request {request_id} is already {request.status}")
        failing = [g["gate"] for g in request.evidence.get("gates", []) if not g["passed"]]
        if failing and override_reason is None:
            raise PermissionDenied(f"gates failed for {request.ref}: {', '.join(failing)}; an "
                                   "admin may override with a written reason (--override)")
        if override_reason is not None:
            override_reason = check_reason(override_reason, "an override reason")
            if not identity.is_admin:
                raise PermissionDenied(f"{identity.user} may not override gates: it takes the "
                                       "admin role")
        return self.store.releases.decide(request_id, decision="approve", actor=identity.user,
                                          reason=reason, override_reason=override_reason)

    def reject(self, request_id: int, identity: Identity, reason: str) -> ReleaseRequest:
        reason = check_reason(reason)
        identity.require_reviewer("reject releases")
        return self.store.releases.decide(request_id, decision="reject", actor=identity.user,
                                          reason=reason)

    def can_approve(self, request: ReleaseRequest, identity: Identity) -> bool:
        """Whether to offer `identity` an approve button for `request` at all."""
        return (request.status == "pending" and identity.is_reviewer
                and identity.user != request.requester)

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
