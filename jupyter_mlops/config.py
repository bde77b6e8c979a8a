"""The project's settings: `.mlops/config.toml`, its default text, and its reading.

Every setting is read through one checker per type (`_Table`), so a typo or a
value of the wrong type is refused when the file is read, naming the file, the
table, the setting, the type expected and the value found; unknown tables and
settings are refused too, so a misspelt one never leaves a default in force.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import stat
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InvalidInput
from .validation import check_alias, check_model_name

DEFAULT_CONFIG_TEXT = """\
# jupyter-mlops project configuration.

[tracking]
# A running run writes a heartbeat this often; a run whose heartbeat is older
# than `stale_after_seconds` is shown as `killed` (its process died).
heartbeat_seconds = 30
stale_after_seconds = 120

[registry]
# Aliases that move only through an approved release request.
protected_aliases = ["production"]
# Data on which `mlops gates run` evaluates both sides of a comparison.
# evaluation_data = "data/test.parquet"
# evaluation_target = "target"

# Gates every release is checked against: METRIC OP NUMBER, or
# METRIC OP ALIAS.METRIC [+|- NUMBER]. Metrics: accuracy, precision, recall,
# f1, roc_auc, brier, log_loss (classifiers); mae, rmse, r2 (regressors).
# [[gates]]
# check = "accuracy >= 0.9"
# [[gates]]
# check = "recall >= production.recall - 0.01"
# [[gates]]
# check = "brier <= 0.1"
# models = ["churn"]       # optional: only these models

[monitoring]
# Thresholds of `mlops monitor check` and the dashboard's verdicts.
max_error_rate = 0.05
max_latency_p95_ms = 250
alpha = 0.01              # KS / chi-squared drift tests (small samples)
psi_threshold = 0.2       # numeric drift on large samples
js_threshold = 0.1        # categorical drift on large samples
max_ece = 0.1             # expected calibration error, once labels arrive
# min_accuracy = 0.9

[store]
# Files under .mlops/ are private to your account (folders 0700, files 0600).
# For a team folder shared through a Unix group, set group_shared = true
# (folders 2770, files 0660).
# group_shared = false
# SQLite loses data on network filesystems (NFS, SMB/CIFS, ...) when several
# processes write at once, so a store there is refused. Set this only if you
# are sure a single process writes at a time.
# allow_network_fs = false
# Team mode: record into a team server (`mlops server`) instead of .mlops/mlops.db.
# Log in once with `mlops login URL`; MLOPS_URL and MLOPS_TOKEN override (CI).
# url = "https://mlops.example.org:8765"
# Plain http is accepted for localhost only, unless you allow it here.
# allow_insecure = false
# Ending a run waits this long for the server to acknowledge its records;
# what is left stays in .mlops/spool/ for `mlops sync`.
# ack_timeout_seconds = 30

[audit]
# Audit rows are chained with an HMAC under a key kept outside the database:
# .mlops/audit.key (created by `mlops init`, mode 0600; 0640 with group_shared,
# since every member signs the rows they cause) unless you name another.
# key_file = "/etc/jupyter-mlops/audit.key"

# Who may do what, by login (the dashboard) or OS user (the CLI).
# Roles: reviewer (approves, rejects), admin (may also override failing gates).
# [users.alice]
# roles = ["reviewer"]
"""


@dataclass(frozen=True)
class TrackingConfig:
    heartbeat_seconds: float = 30.0
    stale_after_seconds: float = 120.0


@dataclass(frozen=True)
class GateConfig:
    check: str
    models: tuple[str, ...] = ()  # empty: every model


@dataclass(frozen=True)
class RegistryConfig:
    protected_aliases: tuple[str, ...] = ("production",)
    evaluation_data: str | None = None
    evaluation_target: str | None = None
    gates: tuple[GateConfig, ...] = ()
    roles: dict[str, tuple[str, ...]] = field(default_factory=dict)  # user -> roles


@dataclass(frozen=True)
class MonitoringConfig:
    max_error_rate: float = 0.05
    max_latency_p95_ms: float = 250.0
    alpha: float = 0.01  # KS and chi-squared significance
    psi_threshold: float = 0.2
    js_threshold: float = 0.1
    min_rows: int = 30
    min_accuracy: float | None = None
    max_ece: float = 0.1


@dataclass(frozen=True)
class StoreConfig:
    group_shared: bool = False  # modes for a team folder shared through a Unix group
    allow_network_fs: bool = False  # accept a store on NFS/SMB/CIFS (unsafe with many writers)
    audit_key_file: str | None = None  # default: .mlops/audit.key
    url: str | None = None  # team mode: the team server's URL (checked by check_server_url)
    allow_insecure: bool = False  # accept plain http to a host other than localhost
    ack_timeout_seconds: float = 30.0  # how long ending a run waits for acknowledgement

    @property
    def dir_mode(self) -> int:
        return 0o2770 if self.group_shared else 0o700

    @property
    def file_mode(self) -> int:
        return 0o660 if self.group_shared else 0o600

    @property
    def audit_key_mode(self) -> int:
        """In a group-shared folder every member appends audit rows (registering a
        model does), so the group reads the key; nobody else ever does."""
        return 0o640 if self.group_shared else 0o600


def load_config(config_path: Path) -> tuple[TrackingConfig, RegistryConfig, MonitoringConfig,
                                             StoreConfig]:
    """The settings of `config_path` (defaults when there is no such file);
    raises `InvalidInput` naming the file, the setting and the problem."""
    text = _read_config(config_path)
    if text is None:
        return TrackingConfig(), RegistryConfig(), MonitoringConfig(), StoreConfig()
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{config_path}: not valid TOML: {exc}") from None
    except RecursionError:  # tomllib parses nested arrays and tables recursively
        raise InvalidInput(f"{config_path}: arrays or tables nested too deep to read") from None
    unknown = set(data) - set(_SECTIONS)
    if unknown:
        raise InvalidInput(f"{config_path}: unknown section [{sorted(unknown)[0]}] (known: "
                           f"{', '.join(_SECTIONS)})")
    return (_tracking(config_path, data), _registry(config_path, data),
            _monitoring(config_path, data), _store(config_path, data))


def _read_config(path: Path) -> str | None:
    """The text of `config.toml`, or None if there is none.

    Opened with `O_NONBLOCK` and checked with `fstat`, so a folder, FIFO or
    device at its place is a clear error rather than a traceback or a hang.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InvalidInput(f"{path} is not a regular file (a folder, FIFO or device is "
                               "there): move it away and run `mlops init` to write a default "
                               "config")
        with os.fdopen(os.dup(fd), "rb") as config:
            data = config.read()
    finally:
        os.close(fd)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path}: not valid TOML: not UTF-8 ({exc.reason} at byte "
                           f"{exc.start})") from None


# Each table's settings: anything else is refused, so that a typo never leaves
# a default silently in force. None: any key (the user names of [users]).
_SECTIONS: dict[str, tuple[str, ...] | None] = {
    "tracking": ("heartbeat_seconds", "stale_after_seconds"),
    "registry": ("protected_aliases", "evaluation_data", "evaluation_target"),
    "gates": None,  # a list of [[gates]] tables, each with _GATE's settings
    "users": None,  # [users.NAME] tables, each with _USER's settings
    "monitoring": ("max_error_rate", "max_latency_p95_ms", "alpha", "psi_threshold",
                   "js_threshold", "min_rows", "min_accuracy", "max_ece"),
    "store": ("group_shared", "allow_network_fs", "url", "allow_insecure",
              "ack_timeout_seconds"),
    "audit": ("key_file",),
}
_GATE = ("check", "models")
_USER = ("roles",)
ROLES = ("reviewer", "admin")
_TYPE_NAMES = {bool: "true/false", str: "a string", int: "a whole number", float: "a number",
               list: "a list", dict: "a table"}


class _Table:
    """One table of config.toml, read through one checker per type.

    Every refusal names the file, the table, the setting, the type expected and
    the value found: `.../config.toml: [registry] protected_aliases must be a
    list of alias names, got 'production' (a string)`.
    """

    def __init__(self, path: Path, label: str, table: object,
                 known: tuple[str, ...] | None) -> None:
        self.path, self.label = path, label
        if not isinstance(table, dict):
            raise InvalidInput(f"{path}: {label} must be a table, got {_shown(table)}")
        unknown = sorted(set(table) - set(known)) if known is not None else []
        if unknown:
            raise InvalidInput(f"{path}: unknown setting {unknown[0]!r} in {label} (known: "
                               f"{', '.join(known or ())})")
        self.values: dict[str, object] = table

    @classmethod
    def section(cls, path: Path, data: Mapping[str, object], name: str) -> _Table:
        return cls(path, f"[{name}]", data.get(name, {}), _SECTIONS[name])

    def refuse(self, key: str, expected: str) -> InvalidInput:
        return InvalidInput(f"{self.path}: {self.label} {key} must be {expected}, got "
                            f"{_shown(self.values[key])}")

    def number(self, key: str, default: float, **bounds: float) -> float:
        value = self.optional_number(key, **bounds)
        return default if value is None else value

    def optional_number(self, key: str, *, low: float | None = None, high: float | None = None,
                        above: float | None = None) -> float | None:
        """A finite number (an int or a float; not a bool, NaN or inf) in [low, high],
        and > `above`; None if unset."""
        value = self.values.get(key)
        if value is None:
            return None
        if (isinstance(value, bool) or not isinstance(value, int | float)
                or not math.isfinite(value) or (low is not None and value < low)
                or (high is not None and value > high)
                or (above is not None and value <= above)):
            bounds = [f"{op} {bound:g}" for op, bound in ((">=", low), (">", above),
                                                          ("<=", high)) if bound is not None]
            raise self.refuse(key, " ".join(["a finite number", " and ".join(bounds)]).strip())
        return float(value)

    def integer(self, key: str, default: int, *, low: int) -> int:
        value = self.values.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise self.refuse(key, f"a whole number >= {low}")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.values.get(key, default)
        if not isinstance(value, bool):
            raise self.refuse(key, "true or false")
        return value

    def text(self, key: str, expected: str) -> str | None:
        value = self.values.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise self.refuse(key, expected)
        return value

    def strings(self, key: str, default: tuple[str, ...], expected: str,
                check: Callable[[object], str]) -> tuple[str, ...]:
        """A list of strings, each passed through `check` (which raises `InvalidInput`)."""
        value = self.values.get(key)
        if value is None:
            return default
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.refuse(key, f"a list of {expected}")
        for item in value:
            try:
                check(item)
            except InvalidInput as exc:
                raise InvalidInput(f"{self.path}: {self.label} {key}: {exc}") from None
        return tuple(value)


def _shown(value: object) -> str:
    """A value found in the file and its TOML type: `'production' (a string)`."""
    kind = _TYPE_NAMES.get(type(value), type(value).__name__)
    if isinstance(value, dict):
        return kind
    return f"{value[:80]!r} ({kind})" if isinstance(value, str) else f"{str(value)[:80]} ({kind})"


def _tracking(path: Path, data: Mapping[str, object]) -> TrackingConfig:
    table = _Table.section(path, data, "tracking")
    heartbeat = table.number("heartbeat_seconds", 30.0, above=0)
    stale = table.number("stale_after_seconds", 120.0, above=0)
    if stale <= heartbeat:
        raise InvalidInput(f"{path}: need 0 < heartbeat_seconds < stale_after_seconds in "
                           f"[tracking], got {heartbeat:g} and {stale:g}")
    return TrackingConfig(heartbeat_seconds=heartbeat, stale_after_seconds=stale)


def _store(path: Path, data: Mapping[str, object]) -> StoreConfig:
    store, audit = _Table.section(path, data, "store"), _Table.section(path, data, "audit")
    allow_insecure = store.flag("allow_insecure", False)
    url = store.text("url", 'a server URL such as "https://mlops.example.org:8765"')
    if url is not None:
        try:
            url = check_server_url(url, allow_insecure=allow_insecure)
        except InvalidInput as exc:
            raise InvalidInput(f"{path}: [store] url: {exc}") from None
    return StoreConfig(group_shared=store.flag("group_shared", False),
                       allow_network_fs=store.flag("allow_network_fs", False),
                       audit_key_file=audit.text("key_file", "a path (a non-empty string)"),
                       url=url, allow_insecure=allow_insecure,
                       ack_timeout_seconds=store.number("ack_timeout_seconds", 30.0, low=0,
                                                        high=86400))


def check_server_url(url: object, *, allow_insecure: bool = False) -> str:
    """A team server URL, normalized (no trailing slash); raises `InvalidInput`.

    http or https only, a host, no user name or password in it (a token goes in
    the credentials file, never in a URL that lands in configs and logs), no
    query or fragment. Plain http is refused unless the host is this machine or
    `allow_insecure` is given: a token sent in clear text is a token given away.
    """
    if not isinstance(url, str) or not url.strip():
        raise InvalidInput(f"a server URL must be a non-empty string, got {str(url)[:80]!r}")
    if len(url) > 2000 or any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise InvalidInput(f"server URL {url[:80]!r} holds spaces or control characters "
                           "or is too long")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidInput(f"server URL {url[:80]!r} is malformed: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidInput(f"server URL {url[:80]!r} must start with https:// (or http:// "
                           "for localhost)")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput(f"server URL {parts.scheme}://...@{parts.hostname} holds a user "
                           "name or password: remove it and use `mlops login URL`, which "
                           "stores the token privately")
    host = parts.hostname
    if not host:
        raise InvalidInput(f"server URL {url[:80]!r} names no host")
    if ":" not in host and not _HOST.fullmatch(host):
        raise InvalidInput(f"server URL {url[:80]!r}: {host[:80]!r} is not a host name")
    if parts.query or parts.fragment:
        shown = url.split("?", 1)[0].split("#", 1)[0]  # `?token=mlops_...`: never echoed
        raise InvalidInput(f"server URL {shown[:80]!r} must not hold a query or fragment "
                           "(not shown: it may hold a secret); a token goes to `mlops login`")
    if parts.scheme == "http" and not allow_insecure and not _is_local(host):
        raise InvalidInput(f"server URL {url[:80]!r} is plain http to another machine: the "
                           "token would travel in clear text; use https, or, if the network is "
                           "trusted, set [store] allow_insecure = true (`mlops login "
                           "--allow-insecure`)")
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}"


_HOST = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?")  # labels, no empty one


def _is_local(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _monitoring(path: Path, data: Mapping[str, object]) -> MonitoringConfig:
    table, default = _Table.section(path, data, "monitoring"), MonitoringConfig()
    return MonitoringConfig(
        max_error_rate=table.number("max_error_rate", default.max_error_rate, low=0, high=1),
        max_latency_p95_ms=table.number("max_latency_p95_ms", default.max_latency_p95_ms,
                                        above=0),
        alpha=table.number("alpha", default.alpha, above=0, high=1),
        psi_threshold=table.number("psi_threshold", default.psi_threshold, above=0),
        js_threshold=table.number("js_threshold", default.js_threshold, above=0, high=1),
        min_rows=table.integer("min_rows", default.min_rows, low=1),
        min_accuracy=table.optional_number("min_accuracy", low=0, high=1),
        max_ece=table.number("max_ece", default.max_ece, low=0, high=1),
    )


def _registry(path: Path, data: Mapping[str, object]) -> RegistryConfig:
    registry = _Table.section(path, data, "registry")
    gates = data.get("gates", [])
    if not isinstance(gates, list):
        raise InvalidInput(f"{path}: gates must be a list of [[gates]] tables, got "
                           f"{_shown(gates)}")
    return RegistryConfig(
        protected_aliases=registry.strings("protected_aliases", ("production",),
                                           "alias names", check_alias),
        evaluation_data=registry.text("evaluation_data", "a path (a non-empty string)"),
        evaluation_target=registry.text("evaluation_target", "a column name (a string)"),
        gates=tuple(_gate(_Table(path, f"[[gates]] #{number}", gate, _GATE))
                    for number, gate in enumerate(gates, start=1)),
        roles={user: _Table(path, f"[users.{user}]", body, _USER).strings(
                   "roles", (), f"roles ({', '.join(ROLES)})", _check_role)
               for user, body in _Table.section(path, data, "users").values.items()})


def _gate(table: _Table) -> GateConfig:
    check = table.text("check", 'a gate such as "accuracy >= 0.9"')
    if check is None:
        raise InvalidInput(f"{table.path}: {table.label} needs a check, such as "
                           'check = "accuracy >= 0.9"')
    return GateConfig(check=check, models=table.strings("models", (), "model names",
                                                        check_model_name))


def _check_role(role: object) -> str:
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r} (roles: {', '.join(ROLES)})")
    return str(role)
