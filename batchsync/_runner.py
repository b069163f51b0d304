"""Wiring for one ``batchsync run``: input, report, auth, Graph client and engine.

Everything that can be checked before a row is sent is checked here first, so that a bad
option, an unreadable input header, an existing report or an untrusted endpoint ends the
run with exit status 2 and nothing sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import IO, BinaryIO, cast

from ._auth._settings import AuthSettings
from ._clouds import Endpoints
from ._engine import EngineSettings, RowAction, run_engine
from ._errors import BatchsyncError, ConfigError, InputError, ReportWriteError
from ._feed import default_stdin, on_daemon_thread, prime
from ._filters import drop_duplicates, read_resume_keys, resume_filter, shard_filter
from ._input import detect_format, read_items
from ._report import Outcome, ReportWriter, Status
from ._rows import InputFormat, Item, Row, SyncType
from ._signals import signal_route
from ._summary import RunStats
from ._writer import LineWriter
from .actions import DEFAULT_ACTION, Action, get_action

__all__ = ["RunConfig", "build_items", "run_batch", "run_with_progress"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class RunConfig:
    """Everything one run needs; built by the CLI or by library users."""

    input_path: str
    endpoints: Endpoints
    auth: AuthSettings
    engine: EngineSettings = EngineSettings()
    input_format: InputFormat | None = None
    default_sync_type: SyncType = SyncType.DELTA
    keep_extra: bool = False
    report_path: str = "-"
    resume: bool = False
    overwrite: bool = False
    shard: tuple[int, int] | None = None
    ca_bundle: str | None = None
    token_concurrency: int | None = None  # None: as many as engine.concurrency
    preflight: bool = True  # check that Graph and Entra are reachable and trusted first
    # ``run --dry-run --check``: acquire each tenant's token and read each row's object
    # (GET), sync nothing; rows whose read succeeds are ``planned``.
    check: bool = False
    action: str = DEFAULT_ACTION  # the Graph action (``batchsync actions`` lists them)

    def selected_action(self) -> Action:
        """The action, checked against the endpoints (ConfigError, exit 2, if it cannot run:
        an unknown name, or a beta-only action on v1.0)."""
        return get_action(self.action, api_version=self.endpoints.api_version)


def _open_input(path: str, stdin: IO[bytes]) -> IO[bytes]:
    if path == "-":
        return stdin
    try:
        return open(path, "rb")
    except OSError as exc:
        raise ConfigError(f"cannot read input {path!r}: {exc.strerror}") from None


def _resume_keys(path: str) -> set[int]:
    """Rows already ok in the report to finish; an unreadable report is exit 2, said so."""
    try:
        done, _ = read_resume_keys(path, unnamed_action=DEFAULT_ACTION)
    except FileNotFoundError:
        return set()
    except OSError as exc:
        raise ConfigError(
            f"cannot read report {path!r} to resume it: {exc.strerror}; check the file, then "
            "run the same command again"
        ) from None
    log.info("resuming: %d rows already ok in %s", len(done), path)
    return done


def _read_errors(items: Iterator[Item], path: str) -> Iterator[Item]:
    """An OS error reading the input (EIO, a vanished mount) as one clear line: exit 2
    (``InputError``) when not a row could be read, else a stop (exit 1) that names the way
    on: the rows read so far have their lines, and ``--resume`` does the others."""
    name = "standard input" if path == "-" else repr(path)
    read = False
    try:
        for item in items:
            read = True
            yield item
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        if not read:
            raise InputError(
                f"cannot read input {name}: {reason}; check the file (or the disk or share it "
                "is on), then run again"
            ) from None
        raise BatchsyncError(
            f"stopped: cannot read input {name} any more ({reason}); every row read before "
            "has its line: once the input reads again, run the same command with --resume"
        ) from None


def build_items(
    config: RunConfig, stream: IO[bytes], *, resume_done: set[int] | None = None
) -> Iterator[Item]:
    """The filtered item stream: parse, shard, drop duplicates, skip rows already done."""
    fmt = detect_format(config.input_path, config.input_format)
    action = config.selected_action()
    items: Iterable[Item] = read_items(
        cast(BinaryIO, stream),
        fmt=fmt,
        default_sync_type=config.default_sync_type,
        keep_extra=config.keep_extra,
        columns=action.columns,
    )
    if config.shard is not None:
        items = shard_filter(items, *config.shard)
    items = drop_duplicates(items)
    if resume_done:
        items = resume_filter(items, resume_done, action=action.name)
    return iter(items)


async def run_batch(
    config: RunConfig,
    *,
    stdin: IO[bytes] | None = None,
    stdout: IO[bytes] | None = None,
    stats: RunStats | None = None,
    handle_signals: bool = False,
    action: RowAction | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> RunStats:
    """Run the whole job; raises ``ConfigError``/``InputError`` (exit 2) before any request.

    ``action`` replaces the one ``config.action`` names (and its ``--check`` twin).
    """
    if action is None:
        selected = config.selected_action()
        action = selected.check() if config.check else selected
    stats = stats or RunStats()
    stdin = stdin if stdin is not None else default_stdin()
    stdout = stdout if stdout is not None else sys.stdout.buffer
    if config.resume and config.report_path == "-":
        raise ConfigError("--resume needs --report PATH (the report of the run to finish)")

    async with contextlib.AsyncExitStack() as stack:
        stream = _open_input(config.input_path, stdin)
        if stream is not stdin:
            stack.callback(stream.close)
        done: set[int] = set()
        if config.resume:
            done = _resume_keys(config.report_path)
        read = _read_errors(build_items(config, stream, resume_done=done), config.input_path)
        items = await on_daemon_thread(prime, read)

        if config.report_path == "-":
            writer = ReportWriter.to_stream(stdout)
        else:
            writer = ReportWriter.open_path(
                config.report_path, resume=config.resume, overwrite=config.overwrite
            )
        queue: list[LineWriter] = []  # once there, it owns the report and closes it

        def close_report() -> None:
            if queue:
                queue[0].close()
            else:
                writer.close()

        stack.callback(close_report)

        engine_settings = config.engine
        if config.check:
            # The check sends its GETs, so the engine must not run dry; it syncs nothing,
            # so a row that passes is `planned`, as in a dry run.
            engine_settings = dataclasses.replace(
                engine_settings, dry_run=False, ok_status=Status.PLANNED
            )
        tokens, graph, hook = None, None, None
        if not engine_settings.dry_run:  # a dry run sends nothing: nothing to connect
            from ._connect import connect  # aiohttp and MSAL: only for a run that sends

            first = items.first
            tokens, graph = await stack.enter_async_context(
                connect(
                    config,
                    check_reach=config.preflight,
                    first_tenant=first.tenant if isinstance(first, Row) else None,
                )
            )
            hook = stack.enter_context(signal_route(handle_signals))
        lines = LineWriter(writer, grace_s=engine_settings.grace_s)
        queue.append(lines)

        def emit(outcome: Outcome) -> None:
            lines.write(outcome)
            if on_outcome is not None:
                on_outcome(outcome)

        def emit_many(outcomes: list[Outcome]) -> None:
            lines.write_many(outcomes)
            if on_outcome is not None:
                for outcome in outcomes:
                    on_outcome(outcome)

        def on_start(interrupt: Callable[[], None]) -> None:
            assert hook is not None

            def on_signal() -> None:
                interrupt()  # the engine's grace (once it has ended: only exit 130)
                lines.interrupt()  # ...and the report's, for a reader that stopped reading

            hook(on_signal)

        try:
            result = await run_engine(
                items,
                action=action,
                settings=engine_settings,
                emit=emit,
                emit_many=emit_many,
                room=lines.room,
                tokens=tokens,
                graph=graph,
                stats=stats,
                on_start=on_start if hook is not None else None,
            )
        except BaseException:
            lines.interrupt()  # the run is failing: a stalled reader gets the grace, no more
            with contextlib.suppress(ReportWriteError):  # the first error stands
                _say_given_up(await lines.finish(), config.report_path)
            raise
        _say_given_up(await lines.finish(), config.report_path)
        return result


def _say_given_up(lost: int, report_path: str) -> None:
    """One error line for report lines given up to a reader that stopped reading."""
    if not lost:
        return
    if report_path == "-":
        where = "the report's reader (standard output) stopped reading"
        then = "do them again (with -o PATH, --resume does exactly those)"
    else:
        where = f"the report {report_path!r} took no more (a stalled disk or share)"
        then = "run the same command with --resume to do them"
    log.error(
        "%d report lines were given up: %s; those rows have no line, so they are not done: %s",
        lost,
        where,
        then,
    )


async def run_with_progress(config: RunConfig, stats: RunStats, *, show: bool) -> RunStats:
    """``run_batch`` with the CLI's signal handling, and the bar beside it when ``show``."""
    if not show:
        return await run_batch(config, stats=stats, handle_signals=True)
    from ._progress import estimate_rows, show_progress  # tqdm only when a bar is shown

    total = None
    if config.shard is None and not config.resume:  # else only part of the file is run
        total = await asyncio.to_thread(estimate_rows, config.input_path)
    async with asyncio.TaskGroup() as tg:
        bar = tg.create_task(show_progress(stats, total=total))
        try:
            return await run_batch(config, stats=stats, handle_signals=True)
        finally:
            bar.cancel()
