"""Running the simulator: one HTTPS port on 127.0.0.1 serving Entra and Graph paths.

TLS uses a throwaway ``trustme`` CA made at start; its certificate is written to a
temporary PEM file (``Simulator.ca_pem_path``) that clients pass as ``--ca-bundle``, and
removed when the simulator stops: also on SIGTERM, SIGHUP and Ctrl-Break, which
``serve_forever`` turns into the same clean stop as Ctrl-C.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import shlex
import shutil
import signal
import ssl
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator

import trustme
from aiohttp import web

from .._signals import signal_route
from ._config import SimulatorConfig
from ._entra import Entra
from ._graph import Graph
from ._state import PARTNER_TENANT_ID, TECHNICIAN_OID, Core, SimulatorStats

__all__ = [
    "Simulator",
    "format_env_lines",
    "run_simulator",
    "serve_forever",
    "start_in_thread",
]

_SHUTDOWN_TIMEOUT_S = 0.5  # in-flight "slow" answers must not hold up the exit
_THREAD_START_TIMEOUT_S = 30.0


class Simulator:
    """A running simulator: where it is, how to trust it, and what it saw."""

    def __init__(self, core: Core, ca_pem_path: str) -> None:
        self._core = core
        self.ca_pem_path = ca_pem_path
        self._refresh_token = core.mint.refresh_token(
            subject=TECHNICIAN_OID, home_tenant=PARTNER_TENANT_ID, now=time.time()
        )

    @property
    def url(self) -> str:
        """``https://127.0.0.1:PORT``: the Graph root and the Entra authority host."""
        return self._core.url

    @property
    def config(self) -> SimulatorConfig:
        return self._core.config

    @property
    def stats(self) -> SimulatorStats:
        """The live stats; call ``.snapshot()`` for a copy to keep or read from another thread."""
        return self._core.stats

    @property
    def refresh_token(self) -> str:
        """A refresh token of the pre-signed-in technician, redeemable at any tenant."""
        return self._refresh_token

    def env(self) -> dict[str, str]:
        """The environment that points ``batchsync run`` and ``login`` at this simulator."""
        return {
            "BATCHSYNC_GRAPH_URL": self.url,
            "BATCHSYNC_AUTHORITY_HOST": self.url,
            "BATCHSYNC_CA_BUNDLE": self.ca_pem_path,
            "BATCHSYNC_CLIENT_ID": self.config.client_id,
            "BATCHSYNC_REFRESH_TOKEN": self.refresh_token,
        }

    def reset_stats(self) -> None:
        self._core.stats.reset()

    def set_config(self, config: SimulatorConfig) -> None:
        """Swap the config now (faults restart from their seed; tokens stay valid)."""
        self._core.set_config(config)

    def approve_device_code(self, user_code: str | None = None) -> int:
        """Approve the pending device-code sign-in with ``user_code`` (all when None)."""
        approved = 0
        for pending in list(self._core.device_codes.values()):
            if user_code is None or pending.user_code == user_code:
                pending.approved = True
                approved += 1
        return approved

    def __repr__(self) -> str:
        stats = self._core.stats
        return (
            f"Simulator(url={self.url!r}, token_requests={stats.token_requests.total()}, "
            f"syncs={stats.syncs.total()}, throttled={stats.throttled.total()})"
        )


def format_env_lines(sim: Simulator) -> list[str]:
    """``export NAME=value`` lines (shell-quoted) for ``Simulator.env()``."""
    return [f"export {name}={shlex.quote(value)}" for name, value in sim.env().items()]


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - naming the wildcard, not binding it
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


@contextlib.asynccontextmanager
async def run_simulator(
    config: SimulatorConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[Simulator]:
    """Serve the simulator on this event loop (``port=0``: a free port) until the block ends."""
    workdir = tempfile.mkdtemp(prefix="batchsync-simulator-")
    try:
        ca = trustme.CA(organization_name="batchsync simulator (throwaway)")
        names = {"127.0.0.1", "localhost", "::1", _url_host(host).strip("[]")}
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(*sorted(names)).configure_cert(server_ctx)
        ca_pem_path = os.path.join(workdir, "simulator-ca.pem")
        ca.cert_pem.write_to_path(ca_pem_path)

        core = Core(config or SimulatorConfig(), url="")
        app = web.Application()
        app.add_routes(Graph(core).routes())  # before Entra's: /v1.0/... is not a tenant
        app.add_routes(Entra(core).routes())
        runner = web.AppRunner(
            app,
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=_SHUTDOWN_TIMEOUT_S,
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port, ssl_context=server_ctx).start()
            core.url = f"https://{_url_host(host)}:{runner.addresses[0][1]}"
            yield Simulator(core, ca_pem_path)
        finally:
            await runner.cleanup()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def serve_forever(
    config: SimulatorConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    on_ready: Callable[[Simulator], None],
) -> None:
    """Run the simulator on a new event loop until Ctrl-C, SIGTERM or SIGHUP (or the task is
    cancelled); each of them stops it cleanly, so its temporary CA directory is removed."""

    async def main() -> None:
        stop = asyncio.Event()
        with signal_route(True) as route:
            if route is not None:
                route(stop.set)
                with contextlib.suppress(AttributeError, NotImplementedError, RuntimeError):
                    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, stop.set)
            async with run_simulator(config, host=host, port=port) as sim:
                on_ready(sim)
                await stop.wait()

    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(main())


@contextlib.contextmanager
def start_in_thread(
    config: SimulatorConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> Iterator[Simulator]:
    """Run the simulator on its own loop in a daemon thread (for blocking callers).

    For code that blocks the caller's loop (MSAL, click's ``CliRunner``). Set config and
    read ``stats.snapshot()`` from the calling thread freely.
    """
    started: concurrent.futures.Future[tuple[Simulator, asyncio.AbstractEventLoop, asyncio.Event]]
    started = concurrent.futures.Future()

    async def main() -> None:
        stop = asyncio.Event()
        try:
            async with run_simulator(config, host=host, port=port) as sim:
                started.set_result((sim, asyncio.get_running_loop(), stop))
                await stop.wait()
        except Exception as exc:
            if started.done():
                raise
            started.set_exception(exc)  # a start-up failure is raised in the caller

    thread = threading.Thread(
        target=asyncio.run, args=(main(),), name="batchsync-simulator", daemon=True
    )
    thread.start()
    sim, loop, stop = started.result(timeout=_THREAD_START_TIMEOUT_S)
    try:
        yield sim
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=_THREAD_START_TIMEOUT_S)
