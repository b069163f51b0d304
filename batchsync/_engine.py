"""The engine: rows in, one outcome per row out, under every bound at once.

Shape of a run (all tasks belong to one ``asyncio.TaskGroup``)::

    reader ──(bounded look-ahead)──> lane per tenant ──(global slots)──> attempt tasks
      │                                │ token (prefetched, single-flight)
      └─ invalid / duplicate lines     │ pause + learned pace + aiolimiter window
                                        └─ one slot per attempt, FIFO across tenants

* The reader pulls parsed items from a worker thread in batches, so a slow stdin or a
  large file never blocks the loop; a semaphore bounds the rows held in memory.
* Each tenant's lane acquires that tenant's token as soon as its first row is read (ahead
  of the rows that need it), then starts requests one at a time: it waits for the tenant's
  pause and window first and takes a global slot last, so a slot is held only while a
  request is on the wire. ``asyncio.Semaphore`` wakes waiters in FIFO order, so lanes take
  turns and a 10,000-row tenant cannot starve a 1-row tenant.
* Every row dispatched is "live" until its outcome is written; whatever ends the run
  (end of input, a run-stopping auth error, Ctrl-C, a bug), each live row gets its line.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol, TypeVar

from aiolimiter import AsyncLimiter

from ._auth._settings import AccessToken, AuthMode, TokenSource
from ._errors import AuthError, BatchsyncError, ErrorKind, RunStoppingAuthError
from ._feed import Feed
from ._graph import GraphAnswer, GraphClient, GraphRequest
from ._pacing import (
    AdaptivePace,
    Decision,
    GiveUp,
    Refresh,
    RetryPolicy,
    Success,
    TenantRate,
    ThrottleKind,
    Tries,
    assess,
    parse_retry_after,
    throttle_kind,
    too_long_a_pause,
)
from ._report import Outcome, ReportError, Settled, Status, settled_outcome
from ._rows import Item, Rejected, Row
from ._summary import RunStats

__all__ = ["EngineSettings", "RowAction", "RunStats", "run_engine"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")


class RowAction(Protocol):
    """What the engine needs to know about an action (``batchsync.actions`` has them)."""

    @property
    def tenant_rate(self) -> TenantRate:
        """The default ``--tenant-rate``: the action's Intune write limit per tenant."""
        ...

    def request(self, row: Row) -> GraphRequest: ...

    def succeeded(self, status: int) -> bool: ...

    def settle(self, status: int, code: str | None, message: str) -> Settled | None: ...

    def explain(self, status: int | None, message: str, mode: AuthMode | None) -> str: ...

    def report_fields(self, item: Row | Rejected) -> dict[str, str | None]: ...


@dataclasses.dataclass(frozen=True, slots=True)
class EngineSettings:
    """The run's bounds (the contract's pace options)."""

    concurrency: int = 32
    tenant_rate: TenantRate | None = None  # None: the action's (its Intune write limit)
    retry: RetryPolicy = RetryPolicy()
    timeout_s: float = 30.0
    grace_s: float = 5.0
    dry_run: bool = False
    lookahead: int = 50_000  # rows held in memory at once (bounds memory; sets fairness reach)
    # The status of a row whose request succeeded: ``ok`` for a sync, ``planned`` for the
    # read-only ``run --dry-run --check`` (requests are sent, so ``dry_run`` stays False).
    ok_status: Status = Status.OK


class _State(enum.Enum):
    QUEUED = 1
    SENDING = 2
    SLEEPING = 3
    DONE = 4


class _Job:
    """A dispatched row and what its attempts have produced so far."""

    __slots__ = (
        "attempts",
        "last",
        "oks_at_throttle",
        "row",
        "started_at",
        "state",
        "taken_at",
        "task",
        "tries",
    )

    def __init__(self, row: Row) -> None:
        self.row = row
        self.attempts = 0
        self.tries = Tries()
        self.last: GraphAnswer | None = None
        self.oks_at_throttle: int | None = None
        self.taken_at = time.time()
        self.started_at: float | None = None
        self.state = _State.QUEUED
        self.task: asyncio.Task[None] | None = None


class _Lane:
    """One tenant's queue, pacing state and token."""

    __slots__ = (
        "active",
        "auth_error",
        "limiter",
        "oks",
        "pace",
        "pending",
        "task",
        "tenant",
        "wake",
    )

    def __init__(self, tenant: str, rate: TenantRate) -> None:
        self.tenant = tenant
        self.pending: deque[_Job] = deque()
        self.active = 0  # jobs of this lane not yet finished (queued, sending or sleeping)
        self.wake = asyncio.Event()
        self.limiter = AsyncLimiter(*rate.limiter_params())
        self.pace = AdaptivePace(rate)
        self.auth_error: AuthError | None = None
        self.task: asyncio.Task[None] | None = None
        self.oks = 0  # rows of this tenant that succeeded (tells a cooldown from a limit)

    def __repr__(self) -> str:
        return (
            f"<Lane {self.tenant} pending={len(self.pending)} active={self.active} "
            f"paused_until={self.pace.paused_until:.1f}>"
        )


def _throttle_scope(lane: _Lane, job: _Job) -> str:
    """Say whether the tenant or only this row's object was throttled (graph-notes: some
    Intune actions have a per-object cooldown, answered with 429 like a tenant limit)."""
    if job.oks_at_throttle is not None and lane.oks > job.oks_at_throttle:
        return (
            "other rows of this tenant succeeded meanwhile: this object looks to be in a "
            "per-object cooldown (synced too recently), not the tenant over its limit"
        )
    return "the tenant was over its request limit"


def _log_attempt(
    fields: dict[str, str | None], job: _Job, answer: GraphAnswer, decision: Decision
) -> None:
    """``-v``: one line per attempt, with what support asks for and what comes next; ids
    only, never a token (the request's headers are not at hand here at all). ``fields``
    are the row's report fields: the object is named as the report names it."""
    if isinstance(decision, Success):
        then = "ok"
    elif isinstance(decision, Refresh):
        then = "token refused: refreshing it"
    elif isinstance(decision, GiveUp):
        then = f"giving up ({decision.error.kind.value})"
    elif decision.pause_tenant:
        then = f"pausing the tenant {decision.wait_s:.2f} s"
    else:
        then = f"retrying in {decision.wait_s:.2f} s"
    row = " ".join(
        f"{name} {value}"
        for name, value in fields.items()
        if value and name not in ("action", "syncType")
    )
    log.debug(
        "%s (line %d) attempt %d: %s, client-request-id %s, request-id %s: %s",
        row,
        job.row.line,
        job.attempts,
        f"HTTP {answer.status}" if answer.status is not None else answer.code or "no answer",
        answer.client_request_id,
        answer.request_id or "-",
        then,
    )


class _Engine:
    def __init__(
        self,
        *,
        action: RowAction,
        settings: EngineSettings,
        tokens: TokenSource | None,
        graph: GraphClient | None,
        emit: Callable[[Outcome], None],
        emit_many: Callable[[list[Outcome]], None] | None,
        room: Callable[[], Awaitable[None]] | None,
        stats: RunStats,
        rng: random.Random,
        clock: Callable[[], float],
    ) -> None:
        self._action = action
        self._rate = settings.tenant_rate or action.tenant_rate
        self._s = settings
        self._tokens = tokens
        self._graph = graph
        self._emit_sink = emit
        self._emit_many_sink = emit_many
        self._room = room
        self.stats = stats
        self._rng = rng
        self._clock = clock
        self._lanes: dict[str, _Lane] = {}
        self._live: dict[int, _Job] = {}
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._window = asyncio.Semaphore(settings.lookahead)
        self._eof = False
        self._stop_error: RunStoppingAuthError | None = None
        self._stopped = asyncio.Event()  # set with _stop_error: sleeping rows wake and fail
        self._interrupted = False
        self._reader: asyncio.Task[None] | None = None
        self._tg: asyncio.TaskGroup | None = None
        self._ended = False  # run() has returned: a late interrupt only counts
        self._sink_error: BatchsyncError | None = None
        self._auth_mode = tokens.mode if tokens is not None else None

    def __repr__(self) -> str:
        return (
            f"<Engine lanes={len(self._lanes)} live={len(self._live)} "
            f"done={self.stats.rows_done} interrupted={self._interrupted}>"
        )

    # -- outcomes ---------------------------------------------------------------------------

    def _note(self, outcome: Outcome) -> None:
        """Count an outcome in the live stats."""
        self.stats.record(outcome)

    def _emit(self, outcome: Outcome) -> None:
        self._note(outcome)
        self._deliver(self._emit_sink, outcome)

    def _emit_many(self, outcomes: list[Outcome]) -> None:
        """Outcomes the reader settles itself (invalid, skipped, planned...), handed to the
        report at once: one write for a batch instead of one per row, where nothing was sent
        and so a lost line costs nothing (a million-row dry run spent a tenth on writes)."""
        record = self.stats.record
        for outcome in outcomes:
            record(outcome)
        if self._emit_many_sink is not None:
            self._deliver(self._emit_many_sink, outcomes)
        else:
            for outcome in outcomes:
                self._deliver(self._emit_sink, outcome)

    def _deliver(self, sink: Callable[[_T], None], value: _T) -> None:
        if self._sink_error is not None:
            return  # the report is gone; run() raises its error once everything has stopped
        try:
            sink(value)
        except BatchsyncError as exc:
            self._sink_failed(exc)

    def _sink_failed(self, exc: BatchsyncError) -> None:
        """Nothing more can be reported: stop taking rows in and cancel what is in flight."""
        if self._sink_error is None:
            self._sink_error = exc
            self._halt()
            self._cancel_sending()

    def _rejected_outcome(self, item: Rejected, now: float) -> Outcome:
        status = Status.SKIPPED if item.kind is ErrorKind.DUPLICATE else Status.INVALID
        fields = self._action.report_fields(item)
        return settled_outcome(item.line, fields, status, item.error, now, item.extra)

    def _row_outcome(
        self, row: Row, status: Status, now: float, error: ReportError | None = None
    ) -> Outcome:
        fields = self._action.report_fields(row)
        return settled_outcome(row.line, fields, status, error, now, row.extra)

    def _finish(
        self, lane: _Lane | None, job: _Job, status: Status, error: ReportError | None = None
    ) -> None:
        """End a live job: its one report line, and release what it held."""
        if job.state is _State.DONE:
            return
        job.state = _State.DONE
        self._live.pop(id(job), None)
        self._window.release()
        last = job.last
        now = time.time()
        self._emit(
            Outcome(
                line=job.row.line,
                fields=self._action.report_fields(job.row),
                status=status,
                http_status=last.status if last else None,
                attempts=job.attempts,
                throttled=job.tries.throttled,
                error=error,
                request_id=last.request_id if last else None,
                client_request_id=last.client_request_id if last else None,
                started_at=job.started_at if job.started_at is not None else job.taken_at,
                finished_at=now,
                extra=job.row.extra,
            )
        )
        if lane is not None:
            lane.active -= 1
            if lane.active == 0:
                lane.wake.set()

    def _fail_auth(self, lane: _Lane, job: _Job, exc: AuthError) -> None:
        self._finish(lane, job, Status.FAILED, exc.report_error())

    # -- reader -----------------------------------------------------------------------------

    async def _read(self, feed: Feed[Item]) -> None:
        try:
            while not self._interrupted:
                if not await self._report_has_room():
                    break
                batch = await feed.take()
                if not batch:
                    break
                settled: list[Outcome] = []
                now = time.time()
                dry_run = self._s.dry_run
                for item in batch:
                    if self._interrupted:
                        break  # read but never taken in: no line; --resume will do it
                    if isinstance(item, Rejected):
                        settled.append(self._rejected_outcome(item, now))
                    elif dry_run:
                        settled.append(self._row_outcome(item, Status.PLANNED, now))
                    elif self._stop_error is not None:
                        error = self._stop_error.report_error()
                        settled.append(self._row_outcome(item, Status.FAILED, now, error))
                    else:
                        if settled:  # keep the report in input order up to here
                            self._emit_many(settled)
                            settled = []
                        await self._window.acquire()
                        if not await self._report_has_room():
                            self._window.release()
                            break
                        now = time.time()
                        self._dispatch(item)
                if settled:
                    self._emit_many(settled)
        finally:
            self._eof = True
            for lane in list(self._lanes.values()):
                lane.wake.set()

    async def _report_has_room(self) -> bool:
        """The report's back-pressure: wait while its writer lags (a stalled reader), so the
        intake slows, never the loop; False once the report is gone (the run stops)."""
        if self._room is None:
            return True
        try:
            await self._room()
        except BatchsyncError as exc:
            self._sink_failed(exc)
            return False
        return True

    def _dispatch(self, row: Row) -> None:
        job = _Job(row)
        self._live[id(job)] = job
        lane = self._lanes.get(row.tenant)
        if lane is None:
            lane = _Lane(row.tenant, self._rate)
            self._lanes[row.tenant] = lane
            assert self._tg is not None
            lane.task = self._tg.create_task(self._drive(lane), name=f"lane:{row.tenant}")
        lane.active += 1
        lane.pending.append(job)
        lane.wake.set()

    # -- lanes ------------------------------------------------------------------------------

    def _stopping(self) -> bool:
        return self._interrupted or self._stop_error is not None

    async def _next_job(self, lane: _Lane) -> _Job | None:
        idle_ttl = self._rate.period_s
        while True:
            if self._interrupted:
                return None
            if lane.pending:
                return lane.pending.popleft()
            if lane.active == 0 and (self._eof or self._stop_error is not None):
                self._drop_lane(lane)
                return None
            lane.wake.clear()
            if lane.active == 0:
                # Idle: keep pacing state one window long, then free the lane's memory.
                ttl = max(idle_ttl, lane.pace.paused_until - self._clock())
                try:
                    async with asyncio.timeout(ttl):
                        await lane.wake.wait()
                except TimeoutError:
                    if lane.active == 0 and not lane.pending:
                        self._drop_lane(lane)
                        if self._tokens is not None:
                            # Idle a whole window: free its MSAL app and token too (~15 KB a
                            # tenant); a later row of it acquires again.
                            self._tokens.forget(lane.tenant)
                        return None
            else:
                await lane.wake.wait()

    def _drop_lane(self, lane: _Lane) -> None:
        if self._lanes.get(lane.tenant) is lane:
            del self._lanes[lane.tenant]

    async def _token(self, lane: _Lane) -> AccessToken | None:
        """The tenant's token, or None after failing the lane's queued rows."""
        assert self._tokens is not None
        if lane.auth_error is None:
            try:
                return await self._tokens.get(lane.tenant)
            except RunStoppingAuthError as exc:
                self._stop_run(exc)
                lane.auth_error = exc
            except AuthError as exc:
                lane.auth_error = exc
        while lane.pending:
            self._fail_auth(lane, lane.pending.popleft(), lane.auth_error)
        return None

    def _stop_run(self, exc: RunStoppingAuthError) -> None:
        if self._stop_error is not None:
            return
        self._stop_error = exc
        self._stopped.set()
        self.stats.stop_reason = exc.message
        log.error("%s", exc.message)
        for lane in list(self._lanes.values()):
            lane.auth_error = lane.auth_error or exc
            lane.wake.set()

    async def _drive(self, lane: _Lane) -> None:
        """Start the lane's requests one at a time, within every bound."""
        assert self._tg is not None
        # Prefetch: acquire the token now, before any row of the tenant needs a slot.
        await self._token(lane)
        while True:
            job = await self._next_job(lane)
            if job is None:
                return
            if self._stop_error is not None or lane.auth_error is not None:
                lane.pending.appendleft(job)
                await self._token(lane)  # fails the queue with the lane's auth error
                continue
            now = self._clock()
            ready = lane.pace.ready_at(now)
            paused_for = lane.pace.paused_until - now
            if paused_for > self._s.retry.max_retry_after_s:
                # Graph announced a pause longer than the row may wait: it is not sent into
                # the pause (Graph would count it), it ends now (rule 2 of _pacing).
                self._finish(lane, job, Status.FAILED, too_long_a_pause(paused_for, self._s.retry))
                continue
            if ready > now:
                lane.pending.appendleft(job)
                self.stats.paused_tenants += 1
                try:
                    await self._sleep_unless_stopped(ready - now)
                finally:
                    self.stats.paused_tenants -= 1
                continue
            token = await self._token(lane)
            if token is None:
                self._fail_auth(lane, job, lane.auth_error or AuthError("no token"))
                continue
            await lane.limiter.acquire()
            await self._slots.acquire()
            # A 429 may have paused the tenant while we waited for the window and a slot.
            if lane.pace.is_paused(self._clock()) or self._stopping():
                self._slots.release()
                lane.pending.appendleft(job)
                continue
            lane.pace.on_start(self._clock())
            job.state = _State.SENDING
            job.task = self._tg.create_task(self._attempt(lane, job, token))

    async def _attempt(self, lane: _Lane, job: _Job, token: AccessToken) -> None:
        assert self._graph is not None
        if lane.pace.is_paused(self._clock()):
            # A 429 arrived between the lane's decision and this task's first step.
            self._slots.release()
            self._requeue(lane, job, front=True)
            return
        job.attempts += 1
        if job.started_at is None:
            job.started_at = time.time()
        sent_at = self._clock()  # tells the pace which of its cuts this answer can be about
        try:
            answer = await self._graph.send(
                self._action.request(job.row), token=token.value, timeout_s=self._s.timeout_s
            )
        finally:
            self._slots.release()
        self.stats.requests += 1
        job.last = answer
        status = answer.status
        settled = (
            None if status is None else self._action.settle(status, answer.code, answer.message)
        )
        if settled is not None:
            self._finish(lane, job, settled.status, settled.error)
            return
        retry_after = parse_retry_after(answer.retry_after, now_epoch=time.time())
        before = job.tries
        decision, job.tries = assess(
            self._s.retry,
            # A token already renewed after a 401 gets no second refresh, whichever row sees
            # it refused: one refresh per tenant and token, not one per row.
            dataclasses.replace(before, refreshed=True) if token.renewed else before,
            status=status,
            ok=status is not None and self._action.succeeded(status),
            failure=answer.failure,
            retry_after_s=retry_after,
            draw=self._rng.random(),
            code=answer.code,
            message=answer.message,
        )
        if log.isEnabledFor(logging.DEBUG):
            _log_attempt(self._action.report_fields(job.row), job, answer, decision)
        if job.tries.throttled > before.throttled:
            self.stats.throttled_answers += 1
            if job.oks_at_throttle is None:
                job.oks_at_throttle = lane.oks
        others_ok = job.oks_at_throttle is not None and lane.oks > job.oks_at_throttle
        scope = throttle_kind(status, others_succeeded=others_ok)
        if isinstance(decision, Success):
            lane.oks += 1
            self._finish(lane, job, self._s.ok_status)
        elif isinstance(decision, Refresh):
            # The token was refused (revoked, or expired early): refresh once, try again.
            assert self._tokens is not None
            self._tokens.invalidate(token)
            self._requeue(lane, job, front=True)
        elif isinstance(decision, GiveUp):
            if decision.pause_s is not None:
                # This row is out of tries, but the answer still holds the whole tenant:
                # its other rows must not start inside the pause the server announced.
                lane.pace.on_throttled(
                    self._clock(), decision.pause_s, kind=scope, started_at=sent_at
                )
            error = decision.error
            message = self._action.explain(status, error.message, self._auth_mode)
            if error.kind is ErrorKind.THROTTLED:
                message = f"{message}; {_throttle_scope(lane, job)}"
            self._finish(lane, job, Status.FAILED, dataclasses.replace(error, message=message))
        elif decision.pause_tenant and not (
            # A cooldown without Retry-After announced no pause: that object backs off alone.
            scope is ThrottleKind.COOLDOWN and retry_after is None
        ):
            lane.pace.on_throttled(self._clock(), decision.wait_s, kind=scope, started_at=sent_at)
            log.info(
                "tenant %s throttled (HTTP %s): pausing it %.1f s",
                lane.tenant,
                status,
                decision.wait_s,
            )
            self._requeue(lane, job, front=True)
        else:
            if self._interrupted:
                return  # no retry will start now: the row ends `interrupted` at once
            job.state = _State.SLEEPING
            await self._sleep_unless_stopped(decision.wait_s)
            self._requeue(lane, job, front=False)

    async def _sleep_unless_stopped(self, seconds: float) -> None:
        """Sleep out a pause or a backoff, but no longer than the run goes on: once a
        run-stopping auth error is known, the sleeping rows fail at once."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopped.wait()

    def _requeue(self, lane: _Lane, job: _Job, *, front: bool) -> None:
        job.state = _State.QUEUED
        job.task = None
        if front:
            lane.pending.appendleft(job)
        else:
            lane.pending.append(job)
        lane.wake.set()

    # -- interruption -----------------------------------------------------------------------

    def interrupt(self) -> None:
        """First call: stop reading and starting; give in-flight requests the grace.
        Second call: end the grace at once."""
        if self._ended:
            self.stats.interrupted = True  # the report may still be draining: exit 130
            return
        if self._interrupted:
            self._cancel_sending()
            return
        self.stats.interrupted = True
        self._halt()

    def _halt(self) -> None:
        """Stop reading and starting requests; in-flight ones get the grace."""
        self._interrupted = True
        if self._reader is not None:
            self._reader.cancel()
        for lane in list(self._lanes.values()):
            if lane.task is not None:
                lane.task.cancel()
        for job in list(self._live.values()):
            if job.state is _State.SLEEPING and job.task is not None:
                job.task.cancel()
        if self._tg is not None:
            grace = self._grace()
            try:
                self._tg.create_task(grace)
            except RuntimeError:  # the task group has just finished: nothing is in flight
                grace.close()

    async def _grace(self) -> None:
        sending = [j.task for j in self._live.values() if j.task is not None and not j.task.done()]
        if sending:
            await asyncio.wait(sending, timeout=self._s.grace_s)
        self._cancel_sending()

    def _cancel_sending(self) -> None:
        for job in list(self._live.values()):
            if job.task is not None and not job.task.done():
                job.task.cancel()

    def _finish_live(self, reason: str) -> None:
        for job in list(self._live.values()):
            lane = self._lanes.get(job.row.tenant)
            self._finish(lane, job, Status.FAILED, ReportError(ErrorKind.INTERRUPTED, None, reason))

    # -- run --------------------------------------------------------------------------------

    async def run(self, items: Iterable[Item]) -> RunStats:
        feed = Feed(items, asyncio.get_running_loop())
        feed.start()
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                self._reader = tg.create_task(self._read(feed), name="reader")
        except BaseException:
            self._finish_live("the run stopped before this row finished")
            raise
        finally:
            feed.stop()
            self._ended = True
            self.stats.finished = time.monotonic()
        self._finish_live(
            "interrupted before this row finished; run again with --resume"
            if self._interrupted
            else "the run ended before this row finished"
        )
        if self._sink_error is not None:
            raise self._sink_error
        return self.stats


async def run_engine(
    items: Iterable[Item],
    *,
    action: RowAction,
    settings: EngineSettings,
    emit: Callable[[Outcome], None],
    emit_many: Callable[[list[Outcome]], None] | None = None,
    room: Callable[[], Awaitable[None]] | None = None,
    tokens: TokenSource | None = None,
    graph: GraphClient | None = None,
    stats: RunStats | None = None,
    rng: random.Random | None = None,
    clock: Callable[[], float] | None = None,
    on_start: Callable[[Callable[[], None]], None] | None = None,
) -> RunStats:
    """Run every item through the action: exactly one outcome per item goes to ``emit``, or
    to ``emit_many`` (when given) for the outcomes the reader settles in a batch.

    ``room``, when given, is awaited before more rows are taken in: the report's
    back-pressure (``_writer.LineWriter.room``); a ``BatchsyncError`` from it stops the run as
    a failing ``emit`` does. ``on_start`` receives the engine's ``interrupt`` callable (the
    CLI wires it to SIGINT and SIGTERM; after the run it only marks the run interrupted).
    Raises ``InputError`` when the input cannot be read at all, before any request.
    """
    if not settings.dry_run and (tokens is None or graph is None):
        raise ValueError("tokens and graph are required unless dry_run")
    loop = asyncio.get_running_loop()
    engine = _Engine(
        action=action,
        settings=settings,
        tokens=tokens,
        graph=graph,
        emit=emit,
        emit_many=emit_many,
        room=room,
        stats=stats or RunStats(),
        rng=rng or random.Random(),
        clock=clock or loop.time,
    )
    if on_start is not None:
        on_start(engine.interrupt)
    return await engine.run(items)
