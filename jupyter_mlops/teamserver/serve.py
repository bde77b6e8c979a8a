"""Running the team server until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable, Iterable

from ..console_log import send_to_stderr
from ..errors import InvalidInput
from ..hosts import LOOPBACK_NAMES, allowed_hosts, cannot_listen, check_host_name
from ..team_protocol import MAX_JSON_BODY
from .app import TeamServer, log, make_app
from .home import ServerHome
from .hub import HubIdentity

CLOSE_SECONDS = 10
BODY_CHUNK = 1 << 20  # a blob upload arrives in pieces of this size (Tornado: 64 KiB)


def check_exposure(host: str, tls: bool, behind_proxy: bool) -> None:
    """Refuse to listen beyond localhost in clear text: tokens would cross the network
    readable. Raises `InvalidInput` saying what to add."""
    if host in LOOPBACK_NAMES or host.startswith("127.") or tls or behind_proxy:
        return
    raise InvalidInput(f"refusing to listen on {host} without TLS: tokens would cross the "
                       "network in clear text; give --tls-cert FILE --tls-key FILE, or "
                       "--behind-proxy when a reverse proxy in front terminates TLS")


def _ssl_context(cert: str | None, key: str | None):  # -> ssl.SSLContext | None
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise InvalidInput("give both --tls-cert and --tls-key")
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise InvalidInput(f"cannot load the TLS certificate {cert} and key {key}: "
                           f"{exc}") from None
    return context


async def run_server(home: ServerHome, *, host: str = "127.0.0.1", port: int = 8765,
                     behind_proxy: bool = False, tls_cert: str | None = None,
                     tls_key: str | None = None, allow_hosts: Iterable[str] = (),
                     stall_seconds: float = 60.0,
                     ready: Callable[[], None] | None = None) -> None:
    """Serve until SIGINT/SIGTERM; then stop accepting, let requests being answered
    finish (a batch's transaction commits or rolls back whole), close the store.

    Raises `InvalidInput` (exposure without TLS, a port in use, a bad option),
    `NotFound` (no home), `StoreUnavailable` (database down).

    `stall_seconds`: how long a connection may wait for headers, or a request body
    pause, before it is dropped: an idle or stalled client would otherwise hold a
    socket (and an upload's temporary file) for as long as it likes.
    """
    _log_to_stderr()
    ssl_context = _ssl_context(tls_cert, tls_key)
    check_exposure(host, ssl_context is not None, behind_proxy)
    extra = [check_host_name(name) for name in (*home.config.allow_hosts, *allow_hosts)]
    store = home.open_store()
    try:
        if store.needs_migration():
            raise InvalidInput(f"the database is at schema {store.schema_version}, this "
                               "server needs a newer one: run `mlops server init` again "
                               "(same --db and --artifacts) to migrate it")
        hub = None if home.config.hub is None else HubIdentity(home.config.hub)
        server = TeamServer(store=store, artifacts=home.open_artifacts(),
                            hosts=allowed_hosts(host, extra), home=home.path, hub=hub,
                            stall_seconds=stall_seconds,
                            behind_proxy=behind_proxy)
        prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "") if hub else ""
        try:
            http = make_app(server, prefix).listen(port, address=host, ssl_options=ssl_context,
                                           max_body_size=2 * MAX_JSON_BODY,
                                           chunk_size=BODY_CHUNK,
                                           idle_connection_timeout=stall_seconds)
        except OSError as exc:  # the message names mlops serve's --address: ours is --host
            raise InvalidInput(str(cannot_listen(exc, host, port)).replace("--address",
                                                                          "--host")) from None
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        scheme = "https" if ssl_context else "http"
        print(f"mlops server: serving on {scheme}://{host}:{port} (home {home.path}, "
              f"answering Host {', '.join(sorted(server.hosts))}"
              + (f"; JupyterHub service {hub.service!r} under {prefix or '/'}" if hub else "")
              + ")", flush=True)
        if ready is not None:
            ready()
        try:
            await stop.wait()
        finally:
            http.stop()
            try:
                await asyncio.wait_for(http.close_all_connections(), CLOSE_SECONDS)
            except TimeoutError:
                log.warning("requests still running after %d s at stop", CLOSE_SECONDS)
            server.db.shutdown(wait=True)  # a batch being applied commits or rolls back
        print("mlops server: stopped", flush=True)
    finally:
        store.close()


def _log_to_stderr() -> None:
    send_to_stderr(log, "mlops server: %(message)s")
