"""``batchsync demo``: the bundled sample through ``run`` against the built-in simulator.

A real run: real HTTPS on 127.0.0.1 with a throwaway CA, real MSAL redeeming a refresh
token per tenant, real throttling (429 with Retry-After) and transient faults, all
absorbed by the engine, so every row ends ``ok``. With ``--action`` another action runs:
``discover`` lists the sample tenants' objects first, then ``run`` takes that list.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from ._auth._settings import AuthMode, AuthSettings
from ._clouds import resolve_endpoints
from ._discover import DiscoverConfig, discover
from ._engine import EngineSettings
from ._pacing import RetryPolicy, TenantRate
from ._runner import RunConfig, run_batch
from ._summary import RunStats
from .actions import DEFAULT_ACTION, get_action

__all__ = ["demo_simulator_config", "run_demo", "sample_path"]


def sample_path(name: str) -> Path:
    """A bundled sample: inside the wheel, or the source tree's ``samples/``."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_samples" / name, here.parent / "samples" / name):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"sample {name!r} is missing from this installation")


def demo_simulator_config() -> object:
    from .simulator import FaultConfig, SimulatorConfig, ThrottleConfig

    return SimulatorConfig(
        # Tighter than real Intune (100 per 20 s) so that throttling shows in a short demo.
        throttle=ThrottleConfig(write_limit=4, window_s=2.0, retry_after="seconds"),
        faults=FaultConfig(
            seed=7, http_500=0.04, http_503_retry_after=0.04, drop=0.03, retry_after_s=1.0
        ),
        graph_latency_s=0.05,
        token_latency_s=0.05,
    )


async def run_demo(
    *, stats: RunStats, echo: Callable[[str], None], action: str = DEFAULT_ACTION
) -> RunStats:
    from .simulator import run_simulator

    sample = sample_path("tenants.csv")
    chosen = get_action(action)
    async with contextlib.AsyncExitStack() as stack:
        sim = await stack.enter_async_context(run_simulator(demo_simulator_config()))  # type: ignore[arg-type]
        echo(f"demo: simulator of Entra + Graph on {sim.url} (HTTPS, throwaway CA)")
        endpoints = resolve_endpoints(
            graph_url=sim.url, authority_host=sim.url, api_version=chosen.api_version
        )
        auth = AuthSettings(
            mode=AuthMode.REFRESH_TOKEN,
            client_id=sim.config.client_id,
            refresh_token=sim.refresh_token,
        )
        engine = EngineSettings(
            concurrency=16,
            # The demo tells batchsync a generous rate, so the simulator's 429s show.
            tenant_rate=TenantRate(20, 2.0),
            retry=dataclasses.replace(RetryPolicy(), backoff_base_s=0.2),
            timeout_s=10.0,
        )
        input_path = str(sample)
        if chosen.name == DEFAULT_ACTION:
            echo(f"demo: running {sample.name}: 28 rows, 8 tenants, throttling and faults on")
        else:
            workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="batchsync-demo-"))
            input_path = os.path.join(workdir, "objects.jsonl")
            listed = await discover(
                DiscoverConfig(
                    endpoints=endpoints,
                    auth=auth,
                    tenants_path=str(sample),
                    output_path=input_path,
                    engine=engine,
                    ca_bundle=sim.ca_pem_path,
                    action=chosen.name,
                )
            )
            echo(
                f"demo: discover --action {chosen.name} listed {listed.written} rows of "
                f"{listed.tenants} tenants in {sample.name}; running them, throttling and "
                "faults on"
            )
        config = RunConfig(
            input_path=input_path,
            endpoints=endpoints,
            auth=auth,
            ca_bundle=sim.ca_pem_path,
            engine=engine,
            action=chosen.name,
        )
        result = await run_batch(config, stats=stats, handle_signals=True)
        echo(
            f"demo: the simulator sent {sum(sim.stats.throttled.values())} throttling 429s, and "
            f"saw {sim.stats.requests_during_pause} requests inside a pause it had announced"
        )
        return result
