"""The Python API: run rows from your own code and get each outcome as it ends.

::

    settings = batchsync.Settings(
        auth=batchsync.AuthSettings(mode=batchsync.AuthMode.APP, client_id=..., client_secret=...),
    )
    rows = [{"tenant": "contoso.onmicrosoft.com", "connector": "...", "syncType": "fullSync"}]
    async with batchsync.run(rows, settings) as outcomes:
        async for outcome in outcomes:
            print(outcome.line, outcome.status, outcome.error)

The engine runs in a task group owned by the ``async with`` block; leaving the block early
cancels what is still in flight (those rows are simply not reported). At most
``max_buffered`` finished outcomes wait for you; past that the engine stops taking rows in.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping

from ._auth._settings import AuthSettings
from ._clouds import Endpoints, resolve_endpoints
from ._connect import connect
from ._engine import EngineSettings, run_engine
from ._filters import drop_duplicates
from ._input import record_to_item
from ._report import Outcome
from ._rows import Columns, Item, Row, SyncType
from ._summary import RunStats
from .actions import DEFAULT_ACTION, get_action

__all__ = ["Settings", "run"]


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    """Everything a library run needs besides its rows."""

    auth: AuthSettings
    endpoints: Endpoints = dataclasses.field(default_factory=resolve_endpoints)
    engine: EngineSettings = EngineSettings()
    ca_bundle: str | None = None
    token_concurrency: int | None = None  # None: as many as engine.concurrency
    default_sync_type: SyncType = SyncType.DELTA
    max_buffered: int = 10_000
    action: str = DEFAULT_ACTION  # the Graph action (``batchsync actions`` lists them)


def _items(
    rows: Iterable[Row | Mapping[str, object]],
    default: SyncType,
    credit: threading.Semaphore,
    columns: Columns,
) -> Iterator[Item]:
    """Rows as engine items; mappings are validated like JSONL input (same keys and rules).

    Runs in the engine's reader thread, so waiting for credit never blocks the event loop.
    """
    for line, row in enumerate(rows, start=1):
        credit.acquire()
        if isinstance(row, Row):
            yield row
        else:
            yield record_to_item(line, row, default, columns=columns)


@contextlib.asynccontextmanager
async def run(
    rows: Iterable[Row | Mapping[str, object]],
    settings: Settings,
    *,
    stats: RunStats | None = None,
) -> AsyncIterator[AsyncIterator[Outcome]]:
    """Run the action (``settings.action``) on every row; yields an async iterator of
    ``Outcome``.

    Raises ``ConfigError`` before anything is sent when the settings cannot work (no client
    id, no secret...). Duplicate rows come back ``skipped`` and bad mappings ``invalid``,
    exactly as in a file run. The ``rows`` iterable is consumed in a worker thread.
    """
    action = get_action(settings.action, api_version=settings.endpoints.api_version)
    queue: asyncio.Queue[Outcome | None] = asyncio.Queue()
    credit = threading.Semaphore(settings.max_buffered)

    async def results() -> AsyncIterator[Outcome]:
        while (outcome := await queue.get()) is not None:
            credit.release()
            yield outcome

    async with connect(settings, check_reach=False, with_tokens=not settings.engine.dry_run) as (
        tokens,
        graph,
    ):

        async def drive() -> None:
            try:
                await run_engine(
                    drop_duplicates(
                        _items(rows, settings.default_sync_type, credit, action.columns)
                    ),
                    action=action,
                    settings=settings.engine,
                    emit=queue.put_nowait,
                    tokens=tokens,
                    graph=graph,
                    stats=stats,
                )
            finally:
                queue.put_nowait(None)

        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(drive())
            try:
                yield results()
            finally:
                if not task.done():
                    task.cancel()
                    # The reader thread may be waiting for credit that will never come.
                    for _ in range(settings.max_buffered):
                        credit.release()
