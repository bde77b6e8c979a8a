"""The tokens `mlops login` keeps: `~/.config/jupyter-mlops/credentials.json`.

One JSON object `{"version": 1, "servers": {URL: {"token": ...}}}`, private to
its owner (file 0600 in a 0700 folder, written to a temporary and renamed so a
crash never leaves half a file). A file or folder that others can read is
refused, not silently used: a token someone else could have read is no secret.
`MLOPS_TOKEN` wins over the file (CI has no home folder worth writing). In a
JupyterHub user's server, a URL of one of the Hub's services needs neither:
the server's own `JUPYTERHUB_API_TOKEN` is sent (`hub_token_for`).
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import InvalidInput
from ..team_protocol import AuthenticationFailed

FILE_VERSION = 1
# where the Hub is, as a single-user server (and its kernels) are told
HUB_URL_VARIABLES = ("JUPYTERHUB_PUBLIC_HUB_URL", "JUPYTERHUB_PUBLIC_URL", "JUPYTERHUB_API_URL")
MAX_FILE_SIZE = 1 << 20


def credentials_path(environ: Mapping[str, str] | None = None) -> Path:
    """`$XDG_CONFIG_HOME/jupyter-mlops/credentials.json` (default `~/.config`)."""
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_CONFIG_HOME") or ""
    folder = Path(base) if os.path.isabs(base) else Path.home() / ".config"
    return folder / "jupyter-mlops" / "credentials.json"


def load(path: Path) -> dict[str, dict[str, str]]:
    """The servers and their tokens in `path` ({} when there is no file).

    Raises `InvalidInput` naming the file when it is not a private regular file
    (mode beyond 0600, a link, a folder) or does not hold the expected JSON.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror} (a link is refused); remove "
                           "it and run `mlops login URL` again") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise InvalidInput(f"{path} is not a regular file; remove it and run `mlops login "
                           "URL` again")
    with os.fdopen(fd, "rb") as file:
        if st.st_mode & 0o077:
            raise InvalidInput(f"{path} has mode {stat.S_IMODE(st.st_mode):04o}: others may "
                               f"have read your tokens; run `chmod 600 {path}`, and revoke "
                               "the tokens if the file was exposed")
        if st.st_uid != os.geteuid():
            raise InvalidInput(f"{path} belongs to another account (uid {st.st_uid}); remove "
                               "it and run `mlops login URL` again")
        data = file.read(MAX_FILE_SIZE + 1)
    if len(data) > MAX_FILE_SIZE:
        raise InvalidInput(f"{path} is over {MAX_FILE_SIZE} bytes: not a credentials file; "
                           "remove it and run `mlops login URL` again")
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        raise InvalidInput(f"{path} is not valid JSON; remove it and run `mlops login URL` "
                           "again") from None
    servers = body.get("servers") if isinstance(body, dict) else None
    if (not isinstance(body, dict) or body.get("version") != FILE_VERSION
            or not isinstance(servers, dict)
            or not all(isinstance(v, dict) and isinstance(v.get("token"), str)
                       for v in servers.values())):
        raise InvalidInput(f"{path} does not hold version {FILE_VERSION} credentials "
                           '({"version": 1, "servers": {URL: {"token": ...}}}); remove it '
                           "and run `mlops login URL` again")
    return servers


def save(path: Path, servers: Mapping[str, Mapping[str, str]]) -> None:
    """Write `servers` to `path` atomically, 0600 in a 0700 folder."""
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".credentials-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            os.fchmod(out.fileno(), 0o600)
            json.dump({"version": FILE_VERSION, "servers": dict(servers)}, out, indent=2)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def store_token(url: str, token: str, path: Path | None = None) -> Path:
    """Remember `token` for `url` (replacing an older one); returns the file written."""
    path = path or credentials_path()
    servers = load(path)
    servers[url] = {"token": token}
    save(path, servers)
    return path


def forget(url: str | None, path: Path | None = None) -> list[str]:
    """Drop the token of `url` (None: of every server); returns the URLs dropped."""
    path = path or credentials_path()
    servers = load(path)
    dropped = [u for u in servers if url is None or u == url]
    for u in dropped:
        del servers[u]
    if dropped:
        save(path, servers)
    return dropped


def check_token(token: object) -> str:
    """A token as given (stripped); raises `InvalidInput` if it cannot be one."""
    if not isinstance(token, str) or not token.strip():
        raise InvalidInput("the token is empty; paste the token `mlops server token create` "
                           "printed")
    token = token.strip()
    if len(token) > 1000 or any(ord(c) < 33 or ord(c) > 126 for c in token):
        raise InvalidInput("the token holds spaces, control or non-ASCII characters, or is "
                           "too long: paste exactly what `mlops server token create` printed")
    return token


def token_for(url: str, environ: Mapping[str, str] | None = None,
              path: Path | None = None) -> str:
    """The token to send to `url`: `MLOPS_TOKEN`, else the one `mlops login` stored.

    Raises `AuthenticationFailed` when there is none, `InvalidInput` for a bad file.
    """
    environ = os.environ if environ is None else environ
    if environ.get("MLOPS_TOKEN"):
        return check_token(environ["MLOPS_TOKEN"])
    path = path or credentials_path(environ)
    entry = load(path).get(url)
    if entry is None:
        hub_token = hub_token_for(url, environ)
        if hub_token is not None:
            return hub_token
        raise AuthenticationFailed(f"no token for {url}: run `mlops login {url}` (or set "
                                   "MLOPS_TOKEN)" + _hub_hint(url, environ))
    return check_token(entry["token"])


def hub_token_for(url: str, environ: Mapping[str, str]) -> str | None:
    """`JUPYTERHUB_API_TOKEN` when `url` is a service of the JupyterHub this process runs
    under (a single-user server and its kernels have it), else None.

    The Hub token is only sent to the Hub's own origin, under its services path
    (`JUPYTERHUB_PUBLIC_HUB_URL`, `JUPYTERHUB_PUBLIC_URL` or `JUPYTERHUB_API_URL`, then
    `{JUPYTERHUB_BASE_URL}services/`, and only `services/$MLOPS_HUB_SERVICE/` when the
    Hub's admin sets that for the user servers): a project's config naming another
    server must not receive it. It reaches the service only if the Hub's `load_roles`
    gives the server token `access:services!service=NAME` (README, "On a JupyterHub").
    """
    token = environ.get("JUPYTERHUB_API_TOKEN")
    if not token:
        return None
    services = "/" + environ.get("JUPYTERHUB_BASE_URL", "/").strip("/") + "/services/"
    services = services.replace("//", "/")
    target = urlsplit(url)
    hub_origins = {urlsplit(environ[name])[:2] for name in HUB_URL_VARIABLES
                   if environ.get(name)}
    rest = target.path[len(services):]
    if target[:2] in hub_origins and target.path.startswith(services) \
            and _plain_service_path(rest) and _allowed_service(rest, environ):
        return check_token(token)
    return None


def _hub_hint(url: str, environ: Mapping[str, str]) -> str:
    """Why a Hub service URL got no Hub token, for the one-line error: a Hub without
    `c.JupyterHub.public_url` tells its servers only its internal API address."""
    if not environ.get("JUPYTERHUB_API_TOKEN") or "/services/" not in urlsplit(url).path:
        return ""
    if not (environ.get("JUPYTERHUB_PUBLIC_URL") or environ.get("JUPYTERHUB_PUBLIC_HUB_URL")):
        return ("; this JupyterHub does not tell its servers its public address, so the "
                "Hub token is sent only to " + environ.get("JUPYTERHUB_API_URL", "?")
                + "'s services: the Hub's admin sets c.JupyterHub.public_url")
    return ("; the Hub token goes only to the Hub's own address, under /services/"
            + (environ.get("MLOPS_HUB_SERVICE", "").strip() or "") + " (README, 'On a "
            "JupyterHub')")


def _allowed_service(rest: str, environ: Mapping[str, str]) -> bool:
    """Whether the service `rest` starts with is the one `MLOPS_HUB_SERVICE` names (when the
    Hub admin set it): the server token opens the user's own server (access:servers), so
    a project config naming another service of the Hub must not hand it over."""
    allowed = environ.get("MLOPS_HUB_SERVICE", "").strip()
    return not allowed or rest.split("/")[0] == allowed


def _plain_service_path(rest: str) -> bool:
    """Whether `rest` (the path after `/services/`) names a service without a way out:
    a proxy in front of the Hub (nginx) resolves `..`, so `/services/../user/eve/` would
    carry the token to another user's server; `%2e%2e` and `%2f` could be decoded there."""
    segments = rest.split("/")
    return bool(segments[0]) and "%" not in rest and not any(
        segment in (".", "..") for segment in segments)
