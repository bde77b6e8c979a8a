"""Who governs a project's registry: the embedded `Registry` acting as the OS user, or
the team server acting as the token's user.

`mlops release`, `mlops models alias` and `mlops gates run` ask `governance_for`
and call the same five methods either way. Embedded, the rules run here with the
identity of `cli_identity`; in team mode each call is a server route, and the
server runs the same `Registry` with the token's user inside its transaction, so
a client (patched or not) can't skip a rule or name who is acting.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..errors import InvalidInput, MlopsError
from ..project import Project
from ..store.gates import GateResult
from ..store.models import ModelVersion
from ..store.releases import ReleaseRequest


class Governance(Protocol):
    def request_release(self, ref: str, alias: str, reason: str) -> ReleaseRequest: ...

    def approve(self, request_id: int, reason: str, override_reason: str | None = None,
                *, accept_data_change: bool = False) -> ReleaseRequest: ...

    def reject(self, request_id: int, reason: str) -> ReleaseRequest: ...

    def set_alias(self, ref: str, alias: str, reason: str) -> ModelVersion: ...

    def run_gates(self, ref: str, *, data: str | None = None, target: str | None = None,
                  against: str | None = None) -> list[GateResult]: ...


def governance_for(project: Project, store: Any) -> Governance:
    """The project's governance over `store` (a `Store`, or a `RemoteStore` in team mode)."""
    if getattr(store, "remote", False):
        return ServerGovernance(store.client)
    from .identity import cli_identity
    from .releases import Registry

    return LocalGovernance(Registry(project, store), cli_identity(project))


class LocalGovernance:
    """The embedded registry, acting as one identity (the OS user and its configured roles)."""

    def __init__(self, registry: Any, identity: Any) -> None:
        self.registry = registry
        self.identity = identity

    def request_release(self, ref: str, alias: str, reason: str) -> ReleaseRequest:
        return self.registry.request_release(ref, alias, self.identity, reason)

    def approve(self, request_id: int, reason: str, override_reason: str | None = None,
                *, accept_data_change: bool = False) -> ReleaseRequest:
        return self.registry.approve(request_id, self.identity, reason, override_reason,
                                     accept_data_change=accept_data_change)

    def reject(self, request_id: int, reason: str) -> ReleaseRequest:
        return self.registry.reject(request_id, self.identity, reason)

    def set_alias(self, ref: str, alias: str, reason: str) -> ModelVersion:
        return self.registry.set_alias(ref, alias, self.identity, reason)

    def run_gates(self, ref: str, *, data: str | None = None, target: str | None = None,
                  against: str | None = None) -> list[GateResult]:
        return self.registry.run_gates(ref, self.identity, data=data, target=target,
                                       against=against)


class ServerGovernance:
    """The team server's release routes; the server decides who is acting."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def _call(self, route: str, payload: dict[str, Any], key: str) -> Any:
        from ..store import codec

        answer = self.client.call("POST", route, payload)
        if not isinstance(answer, dict) or key not in answer:
            raise MlopsError(f"team server {self.client.url} answered {route} with "
                             f"{str(answer)[:80]}")
        return codec.decode(answer[key])

    def request_release(self, ref: str, alias: str, reason: str) -> ReleaseRequest:
        return self._call("/releases", {"model": ref, "alias": alias, "reason": reason},
                          "request")

    def approve(self, request_id: int, reason: str, override_reason: str | None = None,
                *, accept_data_change: bool = False) -> ReleaseRequest:
        return self._call(f"/releases/{request_id}/approve",
                          {"reason": reason, "override_reason": override_reason,
                           "accept_data_change": accept_data_change}, "request")

    def reject(self, request_id: int, reason: str) -> ReleaseRequest:
        return self._call(f"/releases/{request_id}/reject", {"reason": reason}, "request")

    def set_alias(self, ref: str, alias: str, reason: str) -> ModelVersion:
        return self._call("/aliases", {"model": ref, "alias": alias, "reason": reason},
                          "version")

    def run_gates(self, ref: str, *, data: str | None = None, target: str | None = None,
                  against: str | None = None) -> list[GateResult]:
        if data is not None or target is not None:
            raise InvalidInput(
                f"in team mode gates are evaluated on the server's evaluation data "
                f"(evaluation_data in the server's registry.toml), not a file named here; "
                f"drop --data/--target, or ask the admin of {self.client.url} to change it")
        return self._call("/gates/run", {"model": ref, "against": against}, "results")
