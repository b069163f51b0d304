"""The ``batchsync`` command line: click options -> library calls -> exit status.

stdout carries only data (the JSONL report by default); everything for people goes to
stderr. Exit status: 0 all rows ok/skipped/planned, 1 some row failed or invalid, 2 usage
or configuration error before any row was sent, 130 interrupted.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn, TypeVar

import click

from ._auth import AuthMode, AuthSettings
from ._clouds import CloudName, resolve_endpoints
from ._engine import EngineSettings
from ._errors import BatchsyncError
from ._filters import parse_shard
from ._pacing import RetryPolicy, TenantRate
from ._rows import InputFormat, SyncType
from ._runner import RunConfig, run_batch
from ._summary import RunStats, exit_status, format_summary, summary_dict
from ._version import __version__

__all__ = ["main"]

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

log = logging.getLogger("batchsync")

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"batchsync: error: {message}", err=True)
    sys.exit(code)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (``pip install 'batchsync[fast]'``), unless BATCHSYNC_UVLOOP=0."""
    if os.environ.get("BATCHSYNC_UVLOOP", "1") == "0":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def _sigterm_as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _first_leaf(exc: BaseException) -> BaseException:
    """The first real exception inside (nested) exception groups from task groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _run_async(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` with the contract's exit statuses for errors and Ctrl-C."""
    # Until the engine installs its own handlers, SIGTERM ends the run like Ctrl-C (130).
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(coro)
    except BatchsyncError as exc:
        _fail(exc.message, exc.exit_code)
    except Exception as exc:  # a bug: one line for people, the traceback with -v
        leaf = _first_leaf(exc)
        if isinstance(leaf, BatchsyncError):
            _fail(leaf.message, leaf.exit_code)
        log.debug("internal error", exc_info=exc)
        _fail(f"internal error: {type(leaf).__name__}: {leaf} (-v shows the traceback)", 1)
    except KeyboardInterrupt:
        click.echo("batchsync: interrupted", err=True)
        sys.exit(130)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.ERROR if quiet else logging.DEBUG if verbose else logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("batchsync: %(levelname)s: %(message)s"))
    root = logging.getLogger("batchsync")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def _rate(_: click.Context, __: click.Parameter, value: str) -> TenantRate:
    try:
        return TenantRate.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _sync_type(_: click.Context, __: click.Parameter, value: str) -> SyncType:
    """fullSync or deltaSync, any case (the help shows the canonical names)."""
    try:
        return SyncType.parse(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not fullSync or deltaSync") from None


def _shard(_: click.Context, __: click.Parameter, value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        return parse_shard(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _positive(_: click.Context, param: click.Parameter, value: float) -> float:
    if value is not None and value <= 0:
        raise click.BadParameter("must be greater than 0")
    return value


def connection_options(f: F) -> F:
    """Auth, cloud and network options shared by ``run``, ``discover`` and ``login``."""
    options = [
        click.option(
            "--client-id",
            envvar=["BATCHSYNC_CLIENT_ID", "AZURE_CLIENT_ID"],
            help="App registration (multi-tenant). Env: BATCHSYNC_CLIENT_ID, else AZURE_CLIENT_ID.",
        ),
        click.option(
            "--cloud",
            type=click.Choice([c.value for c in CloudName]),
            default=CloudName.GLOBAL.value,
            show_default=True,
            help="Picks the Graph root and the Entra authority host.",
        ),
        click.option(
            "--graph-url",
            envvar="BATCHSYNC_GRAPH_URL",
            help="Override the Graph root (env BATCHSYNC_GRAPH_URL).",
        ),
        click.option(
            "--authority-host",
            envvar="BATCHSYNC_AUTHORITY_HOST",
            help="Override the Entra authority host (env BATCHSYNC_AUTHORITY_HOST).",
        ),
        click.option(
            "--ca-bundle",
            envvar="BATCHSYNC_CA_BUNDLE",
            type=click.Path(exists=True, dir_okay=False),
            help="Extra CA certificates (PEM) to trust, added to the system store "
            "(env BATCHSYNC_CA_BUNDLE).",
        ),
        click.option(
            "--token-cache",
            envvar="BATCHSYNC_TOKEN_CACHE",
            type=click.Path(dir_okay=False),
            help="Token cache of `batchsync login` (env BATCHSYNC_TOKEN_CACHE; default in the "
            "user's cache directory).",
        ),
        click.option(
            "-v", "--verbose", count=True, help="Per-request logging on stderr (no secrets)."
        ),
        click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def auth_options(f: F) -> F:
    options = [
        click.option(
            "--auth",
            "auth_mode",
            type=click.Choice([m.value for m in AuthMode]),
            default=AuthMode.AUTO.value,
            show_default=True,
            help="auto: refresh-token when BATCHSYNC_REFRESH_TOKEN is set, else app when a "
            "secret or certificate is given, else delegated (the `login` account).",
        ),
        click.option(
            "--client-secret",
            envvar=["BATCHSYNC_CLIENT_SECRET", "AZURE_CLIENT_SECRET"],
            help="App secret (prefer the env BATCHSYNC_CLIENT_SECRET, else AZURE_CLIENT_SECRET).",
        ),
        click.option(
            "--certificate",
            envvar=["BATCHSYNC_CLIENT_CERTIFICATE_PATH", "AZURE_CLIENT_CERTIFICATE_PATH"],
            type=click.Path(dir_okay=False),
            help="PEM with the app's private key and certificate (env "
            "BATCHSYNC_CLIENT_CERTIFICATE_PATH, else AZURE_CLIENT_CERTIFICATE_PATH).",
        ),
        click.option(
            "--api-version", type=click.Choice(["v1.0", "beta"]), default="v1.0", show_default=True
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def pace_options(f: F) -> F:
    options = [
        click.option(
            "--concurrency",
            type=click.IntRange(1, 4096),
            default=32,
            show_default=True,
            help="Graph requests in flight at once, across all tenants.",
        ),
        click.option(
            "--token-concurrency",
            type=click.IntRange(1, 256),
            default=8,
            show_default=True,
            help="Token acquisitions at once (they run ahead of the rows that need them).",
        ),
        click.option(
            "--tenant-rate",
            default="100/20",
            show_default=True,
            callback=_rate,
            help="Most requests started per tenant in any window of SECONDS (N/SECONDS).",
        ),
        click.option(
            "--max-attempts",
            type=click.IntRange(1, 100),
            default=5,
            show_default=True,
            help="Tries of one row failing for reasons other than throttling.",
        ),
        click.option(
            "--max-throttled",
            type=click.IntRange(0, 1000),
            default=30,
            show_default=True,
            help="Throttled answers (429, 503/504 with Retry-After) retried per row.",
        ),
        click.option(
            "--max-retry-after",
            type=float,
            default=300.0,
            show_default=True,
            callback=_positive,
            help="Longest Retry-After waited (seconds); longer ends the row `throttled`.",
        ),
        click.option(
            "--timeout",
            type=float,
            default=30.0,
            show_default=True,
            callback=_positive,
            help="Bound of one request (seconds).",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _auth_settings(
    auth_mode: str,
    client_id: str | None,
    client_secret: str | None,
    certificate: str | None,
    token_cache: str | None,
) -> AuthSettings:
    """Auth options, plus what only the environment may carry (refresh token, password)."""
    return AuthSettings(
        mode=AuthMode(auth_mode),
        client_id=client_id,
        client_secret=client_secret,
        certificate_path=certificate,
        certificate_password=os.environ.get("BATCHSYNC_CLIENT_CERTIFICATE_PASSWORD"),
        refresh_token=os.environ.get("BATCHSYNC_REFRESH_TOKEN") or None,
        token_cache_path=token_cache,
    )


def _engine_settings(
    concurrency: int,
    tenant_rate: TenantRate,
    max_attempts: int,
    max_throttled: int,
    max_retry_after: float,
    timeout: float,
    **more: Any,
) -> EngineSettings:
    """The pace options as engine settings (``more``: grace_s, dry_run...)."""
    return EngineSettings(
        concurrency=concurrency,
        tenant_rate=tenant_rate,
        retry=RetryPolicy(
            max_attempts=max_attempts,
            max_throttled=max_throttled,
            max_retry_after_s=max_retry_after,
        ),
        timeout_s=timeout,
        **more,
    )


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="batchsync")
def main() -> None:
    """Trigger the Intune Exchange connector sync in many Microsoft 365 tenants at once.

    Reads tenant/connector/syncType rows, gets one Entra token per tenant, sends the syncs
    concurrently under per-tenant rate limits and writes one JSON line per row.

    \b
    Try it with no tenant at all (a built-in simulator of Entra and Graph):
      batchsync demo
    """


@main.command(context_settings=CONTEXT)
@click.argument("input_path", metavar="INPUT", type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--format",
    "input_format",
    type=click.Choice([f.value for f in InputFormat]),
    help="Input format when the extension (or stdin) does not tell.",
)
@click.option(
    "--sync-type",
    callback=_sync_type,
    metavar="[fullSync|deltaSync]",
    default=SyncType.DELTA.value,
    show_default=True,
    help="syncType for rows that leave it empty.",
)
@click.option("--keep-extra", is_flag=True, help="Copy the input's other columns into `extra`.")
@click.option(
    "-o",
    "--report",
    "report_path",
    default="-",
    show_default=True,
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Where the JSONL report goes (- is stdout).",
)
@click.option(
    "--resume", is_flag=True, help="Skip rows already ok in --report and append the rest."
)
@click.option("--overwrite", is_flag=True, help="Replace an existing --report.")
@click.option(
    "--dry-run", is_flag=True, help="Validate the input and write `planned` lines; send nothing."
)
@click.option(
    "--check",
    is_flag=True,
    help="With --dry-run: also get each tenant's token and read each connector (GET), "
    "syncing nothing; rows that pass are `planned`.",
)
@click.option(
    "--grace",
    type=float,
    default=5.0,
    show_default=True,
    help="On Ctrl-C, seconds in-flight requests get to finish.",
)
@click.option(
    "--shard", callback=_shard, metavar="K/N", help="Only rows whose tenant falls in shard K of N."
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Live progress on stderr (default: when stderr is a terminal).",
)
@click.option(
    "--summary-json",
    type=click.Path(dir_okay=False),
    help="Also write the end-of-run summary as JSON to this file.",
)
@auth_options
@pace_options
@connection_options
def run(
    input_path: str,
    input_format: str | None,
    sync_type: SyncType,
    keep_extra: bool,
    report_path: str,
    resume: bool,
    overwrite: bool,
    dry_run: bool,
    check: bool,
    grace: float,
    shard: tuple[int, int] | None,
    progress: bool | None,
    summary_json: str | None,
    auth_mode: str,
    client_secret: str | None,
    certificate: str | None,
    api_version: str,
    concurrency: int,
    token_concurrency: int,
    tenant_rate: TenantRate,
    max_attempts: int,
    max_throttled: int,
    max_retry_after: float,
    timeout: float,
    client_id: str | None,
    cloud: str,
    graph_url: str | None,
    authority_host: str | None,
    ca_bundle: str | None,
    token_cache: str | None,
    verbose: int,
    quiet: bool,
) -> None:
    """Sync the Exchange connector of every row of INPUT (.csv, .jsonl, or - for stdin).

    \b
    Examples:
      batchsync run tenants.csv -o report.jsonl
      batchsync run tenants.csv -o report.jsonl --resume      # finish after Ctrl-C
      batchsync run tenants.csv --dry-run --check              # tokens + connectors, no sync
      batchsync discover customers.txt | batchsync run - --format jsonl
      jq -c 'select(.status=="failed")' report.jsonl           # what failed, and why
    """
    _setup_logging(verbose, quiet)
    if resume and overwrite:
        raise click.UsageError("--resume and --overwrite exclude each other")
    if check and not dry_run:
        raise click.UsageError("--check works only with --dry-run (it reads, it never syncs)")
    config = RunConfig(
        input_path=input_path,
        input_format=InputFormat(input_format) if input_format else None,
        default_sync_type=sync_type,
        keep_extra=keep_extra,
        report_path=report_path,
        resume=resume,
        overwrite=overwrite,
        shard=shard,
        endpoints=resolve_endpoints(
            cloud, graph_url=graph_url, authority_host=authority_host, api_version=api_version
        ),
        auth=_auth_settings(auth_mode, client_id, client_secret, certificate, token_cache),
        engine=_engine_settings(
            concurrency,
            tenant_rate,
            max_attempts,
            max_throttled,
            max_retry_after,
            timeout,
            grace_s=grace,
            dry_run=dry_run,
        ),
        ca_bundle=ca_bundle,
        token_concurrency=token_concurrency,
        check=check,
    )
    stats = RunStats()
    show = progress if progress is not None else (sys.stderr.isatty() and not quiet)
    _run_async(_run_with_progress(config, stats, show=show))
    _finish(stats, quiet=quiet, summary_json=summary_json)


async def _run_with_progress(config: RunConfig, stats: RunStats, *, show: bool) -> RunStats:
    if not show:
        return await run_batch(config, stats=stats, handle_signals=True)
    from ._progress import estimate_rows, show_progress

    loop = asyncio.get_running_loop()
    total = None
    if config.shard is None and not config.resume:  # else only part of the file is run
        total = await loop.run_in_executor(None, estimate_rows, config.input_path)
    async with asyncio.TaskGroup() as tg:
        bar = tg.create_task(show_progress(stats, total=total))
        try:
            return await run_batch(config, stats=stats, handle_signals=True)
        finally:
            bar.cancel()


def _finish(stats: RunStats, *, quiet: bool, summary_json: str | None) -> NoReturn:
    if summary_json:
        import orjson

        with open(summary_json, "wb") as fh:
            fh.write(orjson.dumps(summary_dict(stats), option=orjson.OPT_INDENT_2))
    code = exit_status(stats)
    if not quiet or code:
        click.echo(format_summary(stats), err=True)
    sys.exit(code)


@main.command(context_settings=CONTEXT)
@click.argument(
    "tenants_path",
    metavar="[TENANTS]",
    required=False,
    type=click.Path(dir_okay=False, allow_dash=True),
)
@click.option(
    "--gdap",
    is_flag=True,
    help="List the GDAP customers of the signed-in partner instead of reading TENANTS.",
)
@click.option(
    "--partner-tenant",
    help="With --gdap: the partner's own tenant (ID or domain) that lists its customers; "
    "default 'organizations' (the signed-in account's home), required with --auth app.",
)
@click.option(
    "--sync-type",
    callback=_sync_type,
    metavar="[fullSync|deltaSync]",
    default=SyncType.DELTA.value,
    show_default=True,
    help="syncType written on every row.",
)
@click.option(
    "--connected-only", is_flag=True, help="Keep only connectors whose status is connected."
)
@click.option(
    "-o",
    "--output",
    "output_path",
    default="-",
    show_default=True,
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Where the connector rows (JSONL) go (- is stdout).",
)
@click.option(
    "--errors",
    "errors_path",
    type=click.Path(dir_okay=False),
    help="Also write one JSON line per tenant that failed (tenant, kind, code, message).",
)
@click.option("--overwrite", is_flag=True, help="Replace existing -o / --errors files.")
@auth_options
@pace_options
@connection_options
def discover(
    tenants_path: str | None,
    gdap: bool,
    partner_tenant: str | None,
    sync_type: SyncType,
    connected_only: bool,
    output_path: str,
    errors_path: str | None,
    overwrite: bool,
    auth_mode: str,
    client_secret: str | None,
    certificate: str | None,
    api_version: str,
    concurrency: int,
    token_concurrency: int,
    tenant_rate: TenantRate,
    max_attempts: int,
    max_throttled: int,
    max_retry_after: float,
    timeout: float,
    client_id: str | None,
    cloud: str,
    graph_url: str | None,
    authority_host: str | None,
    ca_bundle: str | None,
    token_cache: str | None,
    verbose: int,
    quiet: bool,
) -> None:
    """List the Exchange connectors of each tenant as rows for `batchsync run`.

    TENANTS is a file (or - for stdin) with one tenant per line, or a CSV or JSONL with a
    tenant column; --gdap lists the signed-in partner's GDAP customers instead. One JSON line
    per connector goes to stdout (or -o); a tenant that cannot be listed gets a line on
    stderr (and in --errors). A tenant without a connector is counted, not an error.
    Exit status: 0 every tenant listed, 1 some tenant failed, 2 configuration error.

    \b
    Examples:
      batchsync discover customers.txt -o connectors.jsonl
      batchsync discover --gdap --connected-only | batchsync run - --format jsonl
      batchsync discover customers.csv --errors failed-tenants.jsonl
    """
    from ._discover import DiscoverConfig
    from ._discover import discover as discover_connectors
    from ._summary import DiscoverStats, discover_exit_status, format_discover_summary

    _setup_logging(verbose, quiet)
    if gdap and tenants_path is not None:
        raise click.UsageError("give TENANTS or --gdap, not both")
    if not gdap and tenants_path is None:
        raise click.UsageError("give TENANTS (a file, or - for stdin) or --gdap")
    if partner_tenant is not None and not gdap:
        raise click.UsageError("--partner-tenant goes with --gdap")
    config = DiscoverConfig(
        endpoints=resolve_endpoints(
            cloud, graph_url=graph_url, authority_host=authority_host, api_version=api_version
        ),
        auth=_auth_settings(auth_mode, client_id, client_secret, certificate, token_cache),
        tenants_path=tenants_path,
        gdap=gdap,
        partner_tenant=partner_tenant,
        sync_type=sync_type,
        connected_only=connected_only,
        output_path=output_path,
        errors_path=errors_path,
        overwrite=overwrite,
        engine=_engine_settings(
            concurrency, tenant_rate, max_attempts, max_throttled, max_retry_after, timeout
        ),
        token_concurrency=token_concurrency,
        ca_bundle=ca_bundle,
    )
    stats = DiscoverStats()
    _run_async(discover_connectors(config, echo=lambda m: click.echo(m, err=True), stats=stats))
    code = discover_exit_status(stats)
    if not quiet or code:
        click.echo(format_discover_summary(stats, connected_only=connected_only), err=True)
    sys.exit(code)


@main.command(context_settings=CONTEXT)
@click.option("-q", "--quiet", is_flag=True, help="Only errors and the report.")
@click.option("-v", "--verbose", count=True, help="Per-request logging on stderr.")
def demo(quiet: bool, verbose: int) -> None:
    """Run a bundled sample through the built-in Entra + Graph simulator.

    Starts the simulator on 127.0.0.1 (HTTPS with a throwaway CA), with throttling and a few
    transient faults on, runs the sample through `run` against it, prints the report on
    stdout and the summary on stderr. Needs no account and no network.

    \b
    Example:
      batchsync demo | jq -c '{line, tenant, status, attempts, throttled}'
    """
    from ._demo import run_demo

    _setup_logging(verbose, quiet)
    stats = RunStats()
    _run_async(run_demo(stats=stats, echo=lambda m: None if quiet else click.echo(m, err=True)))
    _finish(stats, quiet=quiet, summary_json=None)


@main.command(context_settings=CONTEXT)
@click.option("--port", type=click.IntRange(0, 65535), default=8443, show_default=True)
@click.option(
    "--write-limit",
    type=click.IntRange(0),
    default=100,
    show_default=True,
    help="Sync requests per tenant per window (0: no throttling).",
)
@click.option(
    "--window", type=float, default=20.0, show_default=True, help="Throttling window (s)."
)
@click.option(
    "--retry-after",
    "retry_after_form",
    type=click.Choice(["seconds", "float", "date", "none"]),
    default="seconds",
    show_default=True,
    help="Form of Retry-After on 429 (none: no header, like Intune).",
)
@click.option(
    "--fault-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of sync requests that meet a transient fault (5xx, drop, 503+Retry-After).",
)
@click.option(
    "--latency", type=float, default=0.0, show_default=True, help="Graph answer latency (s)."
)
@click.option(
    "--token-latency",
    type=float,
    default=0.0,
    show_default=True,
    help="Token endpoint latency (s).",
)
@click.option("--seed", type=int, default=0, show_default=True)
def simulator(
    port: int,
    write_limit: int,
    window: float,
    retry_after_form: str,
    fault_rate: float,
    latency: float,
    token_latency: float,
    seed: int,
) -> None:
    """Serve the built-in Entra + Graph simulator until Ctrl-C.

    Prints on stderr the environment lines that point `run` and `login` at it.

    \b
    Example (two terminals):
      batchsync simulator --port 8443 --write-limit 10 --window 5
      eval "$(...printed export lines...)"; batchsync run samples/tenants.csv
    """
    from .simulator import (
        FaultConfig,
        SimulatorConfig,
        ThrottleConfig,
        format_env_lines,
        serve_forever,
    )

    share = fault_rate / 4
    config = SimulatorConfig(
        throttle=ThrottleConfig(
            write_limit=write_limit,
            window_s=window,
            retry_after=retry_after_form,  # type: ignore[arg-type]  # click.Choice checked it
        ),
        faults=FaultConfig(
            seed=seed, http_500=share, http_503=share, http_503_retry_after=share, drop=share
        ),
        graph_latency_s=latency,
        token_latency_s=token_latency,
    )

    def ready(sim: Any) -> None:
        click.echo(f"batchsync simulator listening on {sim.url} (Ctrl-C to stop)", err=True)
        for line in format_env_lines(sim):
            click.echo(line, err=True)

    try:
        serve_forever(config, host="127.0.0.1", port=port, on_ready=ready)
    except OSError as exc:
        _fail(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}; pick another --port", 2)
    except KeyboardInterrupt:
        pass


@main.command(context_settings=CONTEXT)
@click.option(
    "--tenant",
    default="organizations",
    show_default=True,
    help="Home tenant of the account that signs in.",
)
@click.option(
    "--status", is_flag=True, help="Show who is signed in (never a token), and nothing else."
)
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=1),
    default=900.0,
    show_default=True,
    help="Seconds to wait for the code to be used before giving up.",
)
@connection_options
def login(
    tenant: str,
    status: bool,
    timeout_s: float,
    client_id: str | None,
    cloud: str,
    graph_url: str | None,
    authority_host: str | None,
    ca_bundle: str | None,
    token_cache: str | None,
    verbose: int,
    quiet: bool,
) -> None:
    """Sign in once with a device code; `run --auth delegated` then reaches every tenant.

    The URL and code go to stderr. The account is kept in the token cache (--token-cache),
    encrypted where the system offers it (DPAPI, Keychain, libsecret), else in a file only
    you can read (mode 0600). `login --status` shows who is signed in; exit 1 if nobody.

    \b
    Example:
      batchsync login --client-id 11111111-2222-3333-4444-555555555555
      batchsync login --status
    """
    from ._auth import login_device_code, token_cache_status

    _setup_logging(verbose, quiet)
    settings = AuthSettings(
        mode=AuthMode.DELEGATED, client_id=client_id, token_cache_path=token_cache
    )
    try:
        if status:
            cache = token_cache_status(settings)
            click.echo(cache.describe(), err=True)
            sys.exit(0 if cache.accounts else 1)
        endpoints = resolve_endpoints(cloud, graph_url=graph_url, authority_host=authority_host)
        user = asyncio.run(
            login_device_code(
                settings,
                endpoints,
                tenant=tenant,
                ca_bundle=ca_bundle,
                echo=lambda m: click.echo(m, err=True),
                timeout_s=timeout_s,
            )
        )
    except BatchsyncError as exc:
        _fail(exc.message, exc.exit_code)
    except KeyboardInterrupt:
        _fail("sign-in cancelled", 130)
    click.echo(f"signed in as {user}", err=True)


@main.command(context_settings=CONTEXT)
@click.option("--token-cache", envvar="BATCHSYNC_TOKEN_CACHE", type=click.Path(dir_okay=False))
@click.option("--client-id", envvar=["BATCHSYNC_CLIENT_ID", "AZURE_CLIENT_ID"])
@click.option(
    "--account",
    "accounts",
    multiple=True,
    metavar="USERNAME",
    help="Forget only this account (repeatable); default: every account.",
)
def logout(token_cache: str | None, client_id: str | None, accounts: tuple[str, ...]) -> None:
    """Forget the signed-in account and all its tokens (the cache file goes when empty).

    \b
    Example:
      batchsync logout
    """
    from ._auth import logout as sign_out

    settings = AuthSettings(
        mode=AuthMode.DELEGATED, client_id=client_id, token_cache_path=token_cache
    )
    try:
        removed = sign_out(settings, usernames=accounts or None)
    except BatchsyncError as exc:
        _fail(exc.message, exc.exit_code)
    click.echo(
        f"signed out: {', '.join(removed)}" if removed else "no account was signed in", err=True
    )
