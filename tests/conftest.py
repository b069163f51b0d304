"""Shared fixtures: the built-in simulator, on the test's loop or on a thread of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from batchsync.simulator import Simulator, run_simulator, start_in_thread


@pytest.fixture
async def simulator() -> AsyncIterator[Simulator]:
    """A default simulator on the test's event loop (swap its config with ``set_config``)."""
    async with run_simulator() as sim:
        yield sim


@pytest.fixture
def simulator_in_thread() -> Iterator[Simulator]:
    """A default simulator on its own thread, for blocking clients (MSAL, CliRunner)."""
    with start_in_thread() as sim:
        yield sim


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    """A default simulator on the test's loop, under the name the auth tests use."""
    async with run_simulator() as simulator:
        yield simulator
