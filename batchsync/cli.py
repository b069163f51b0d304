"""The ``batchsync`` command line: click commands -> one settings object per option group ->
library call -> exit status.

stdout carries only data (the JSONL report by default); everything for people goes to
stderr. Exit status: 0 all rows ok/skipped/planned, 1 some row failed or invalid, 2 usage
or configuration error before any row was sent, 130 interrupted. Option groups, converters
and the process plumbing live in ``_options``.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import TYPE_CHECKING, Any, NoReturn

import click

from ._auth._settings import AuthMode, AuthSettings
from ._errors import BatchsyncError
from ._files import refuse_link
from ._options import (
    CONTEXT,
    Connection,
    Output,
    Pace,
    action_option,
    connection_options,
    fail,
    output_options,
    pace_options,
    parse_shard_option,
    run_async,
    setup_logging,
    sync_type_option,
)
from ._rows import InputFormat, SyncType
from ._signals import give_ctrl_c_back
from ._version import __version__

if TYPE_CHECKING:
    from ._summary import RunStats
    from .actions import Action

__all__ = ["main"]


class _Batchsync(click.Group):
    """The top group: Ctrl-C or SIGTERM while a command is still starting (parsing options,
    importing the engine) is one line and exit 130, as in a run, not click's "Aborted!"."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except KeyboardInterrupt:
            _interrupted()

    def invoke(self, ctx: click.Context) -> Any:
        try:
            give_ctrl_c_back()  # a signal dropped during the imports ends here (rule 4)
            return super().invoke(ctx)
        except KeyboardInterrupt:
            _interrupted()


def _interrupted() -> NoReturn:
    click.echo("batchsync: interrupted", err=True)
    sys.exit(130)


@click.group(cls=_Batchsync, context_settings=CONTEXT)
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
@action_option
@sync_type_option("syncType for rows that leave it empty (exchange-connector-sync).")
@click.option("--keep-extra", is_flag=True, help="Copy the input's other columns into `extra`.")
@output_options(
    long="--report", what="the JSONL report", overwrite_help="Replace an existing --report."
)
@click.option(
    "--resume", is_flag=True, help="Skip rows already ok in --report and append the rest."
)
@click.option(
    "--dry-run", is_flag=True, help="Validate the input and write `planned` lines; send nothing."
)
@click.option(
    "--check",
    is_flag=True,
    help="With --dry-run: also get each tenant's token and read each row's object (GET), "
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
    "--shard",
    callback=parse_shard_option,
    metavar="K/N",
    help="Only rows whose tenant falls in shard K of N.",
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
@pace_options
@connection_options()
def run(
    input_path: str,
    input_format: str | None,
    action: str,
    sync_type: SyncType,
    keep_extra: bool,
    output: Output,
    resume: bool,
    dry_run: bool,
    check: bool,
    grace: float,
    shard: tuple[int, int] | None,
    progress: bool | None,
    summary_json: str | None,
    pace: Pace,
    conn: Connection,
) -> None:
    """Run the action (by default the Exchange connector sync) on every row of INPUT
    (.csv, .jsonl, or - for stdin).

    \b
    Examples:
      batchsync run tenants.csv -o report.jsonl
      batchsync run tenants.csv -o report.jsonl --resume      # finish after Ctrl-C
      batchsync run tenants.csv --dry-run --check              # tokens + connectors, no sync
      batchsync discover customers.txt | batchsync run - --format jsonl
      batchsync run devices.csv --action device-sync -o devices-report.jsonl
      batchsync report report.jsonl                             # what failed, and why
    """
    setup_logging(conn.verbose, conn.quiet)
    if resume and output.overwrite:
        raise click.UsageError("--resume and --overwrite exclude each other")
    if summary_json:
        from ._summary import check_summary_path

        try:  # before anything is sent: a link planted there, or no way to write it (exit 2)
            refuse_link(summary_json, what="--summary-json")
            check_summary_path(summary_json)
        except BatchsyncError as exc:
            fail(exc.message, exc.exit_code)
    if check and not dry_run:
        raise click.UsageError("--check works only with --dry-run (it reads, it never syncs)")
    selected = _action(action, conn)
    from ._runner import RunConfig, run_with_progress

    config = RunConfig(
        input_path=input_path,
        input_format=InputFormat(input_format) if input_format else None,
        default_sync_type=sync_type,
        keep_extra=keep_extra,
        report_path=output.path,
        resume=resume,
        overwrite=output.overwrite,
        shard=shard,
        endpoints=conn.endpoints(selected.api_version),
        auth=conn.auth,
        engine=dataclasses.replace(pace.engine, grace_s=grace, dry_run=dry_run),
        ca_bundle=conn.ca_bundle,
        token_concurrency=pace.token_concurrency,
        check=check,
        action=selected.name,
    )
    from ._summary import RunStats

    stats = RunStats()
    show = progress if progress is not None else (sys.stderr.isatty() and not conn.quiet)
    run_async(run_with_progress(config, stats, show=show))
    _finish(stats, quiet=conn.quiet, summary_json=summary_json)


def _action(name: str, conn: Connection) -> Action:
    """The chosen action, or a usage error (exit 2): a beta-only one on ``--api-version v1.0``."""
    from ._errors import ConfigError
    from .actions import get_action

    try:
        return get_action(name, api_version=conn.api_version)
    except ConfigError as exc:
        raise click.UsageError(exc.message) from None


def _finish(stats: RunStats, *, quiet: bool, summary_json: str | None) -> NoReturn:
    from ._summary import exit_status, format_summary, write_summary_json

    code = exit_status(stats)
    if summary_json:
        try:
            write_summary_json(summary_json, stats)
        except (BatchsyncError, OSError) as exc:
            message = exc.message if isinstance(exc, BatchsyncError) else exc.strerror
            # A side file: said on stderr, never a reason to fail rows that succeeded.
            click.echo(
                f"batchsync: error: --summary-json {summary_json!r} not written: {message}",
                err=True,
            )
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
@action_option
@click.option(
    "--filter",
    "odata_filter",
    metavar="ODATA",
    help="An OData $filter for the listing, where Graph takes one (device-sync's devices: "
    "\"operatingSystem eq 'Windows'\").",
)
@sync_type_option("syncType written on every row (exchange-connector-sync).")
@click.option(
    "--connected-only",
    is_flag=True,
    help="Keep only objects ready to sync: connectors connected, VPP tokens valid, "
    "managed Google Play bound.",
)
@output_options(
    long="--output",
    what="the rows (JSONL)",
    overwrite_help="Replace existing -o / --errors files.",
)
@click.option(
    "--errors",
    "errors_path",
    type=click.Path(dir_okay=False),
    help="Also write one JSON line per tenant that failed (tenant, kind, code, message).",
)
@pace_options
@connection_options()
def discover(
    tenants_path: str | None,
    gdap: bool,
    partner_tenant: str | None,
    action: str,
    odata_filter: str | None,
    sync_type: SyncType,
    connected_only: bool,
    output: Output,
    errors_path: str | None,
    pace: Pace,
    conn: Connection,
) -> None:
    """List each tenant's objects of the action (by default its Exchange connectors) as rows
    for `batchsync run`.

    TENANTS is a file (or - for stdin) with one tenant per line, or a CSV or JSONL with a
    tenant column; --gdap lists the signed-in partner's GDAP customers instead. One JSON line
    per object (per tenant, for an action on the tenant itself) goes to stdout (or -o); a
    tenant that cannot be listed gets a line on stderr (and in --errors). A tenant without
    any is counted, not an error.
    Exit status: 0 every tenant listed, 1 some tenant failed, 2 configuration error.

    \b
    Examples:
      batchsync discover customers.txt -o connectors.jsonl
      batchsync discover --gdap --connected-only | batchsync run - --format jsonl
      batchsync discover customers.csv --errors failed-tenants.jsonl
      batchsync discover --gdap --action device-sync --filter "operatingSystem eq 'Windows'" \\
        | batchsync run - --format jsonl --action device-sync
    """
    from ._discover import DiscoverConfig
    from ._discover import discover as discover_connectors
    from ._summary import DiscoverStats, discover_exit_status, format_discover_summary

    setup_logging(conn.verbose, conn.quiet)
    if gdap and tenants_path is not None:
        raise click.UsageError("give TENANTS or --gdap, not both")
    if not gdap and tenants_path is None:
        raise click.UsageError("give TENANTS (a file, or - for stdin) or --gdap")
    if partner_tenant is not None and not gdap:
        raise click.UsageError("--partner-tenant goes with --gdap")
    selected = _action(action, conn)
    listing = selected.listing
    if odata_filter is not None and (listing is None or not listing.filterable):
        raise click.UsageError(f"--filter: Graph takes no $filter on {selected.name}'s listing")
    config = DiscoverConfig(
        endpoints=conn.endpoints(selected.api_version),
        auth=conn.auth,
        tenants_path=tenants_path,
        gdap=gdap,
        partner_tenant=partner_tenant,
        sync_type=sync_type,
        connected_only=connected_only,
        output_path=output.path,
        errors_path=errors_path,
        overwrite=output.overwrite,
        engine=pace.engine,
        token_concurrency=pace.token_concurrency,
        ca_bundle=conn.ca_bundle,
        action=selected.name,
        filter=odata_filter,
    )
    stats = DiscoverStats()
    run_async(discover_connectors(config, echo=lambda m: click.echo(m, err=True), stats=stats))
    code = discover_exit_status(stats)
    if not conn.quiet or code:
        summary = format_discover_summary(
            stats,
            connected_only=connected_only,
            object_label=selected.object_label,
            kept=listing.ready_word if listing else "ready",
            empty_label=(listing.missing_label if listing else None) or selected.object_label,
        )
        click.echo(summary, err=True)
    sys.exit(code)


_REPORT_FORMATS = ("table", "jsonl", "csv", "html", "markdown")


@main.command(context_settings=CONTEXT)
@click.argument(
    "reports",
    metavar="REPORT...",
    nargs=-1,
    required=True,
    type=click.Path(dir_okay=False, allow_dash=True),
)
@click.option(
    "-o",
    "--output",
    "output_path",
    default="-",
    show_default=True,
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Where the result goes (- is stdout); replaced whole once complete.",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(_REPORT_FORMATS),
    help="Default: from -o's extension (.jsonl .csv .html .md .txt), else table on a "
    "terminal and jsonl (the merged report) in a pipe.",
)
@click.option(
    "--failed",
    "failed_only",
    is_flag=True,
    help="Only rows whose final outcome is failed or invalid; with jsonl, as the input of a "
    "new `batchsync run` (tenant and the object: connector and syncType, or id).",
)
def report(
    reports: tuple[str, ...], output_path: str, output_format: str | None, failed_only: bool
) -> None:
    """Settle one or more reports (shards, resumed runs, - for stdin) and show the outcome.

    Each row counts once, by its last line (keyed as --resume keys it), so a row that
    failed and then succeeded is ok. Formats: table (totals and one line per tenant, worst
    first, with its most common error and what to do), jsonl (the merged report: one final
    line per row, in input order), csv (for Excel), html (one self-contained page), markdown
    (for a ticket). A line that is not a report line is named on stderr and left out.
    Exit status: 0 every row ok, skipped or planned; 1 some row failed or invalid; 2 an
    input cannot be read.

    \b
    Examples:
      batchsync report report.jsonl
      batchsync report report-*.jsonl -o final.jsonl          # merge shards
      batchsync report report.jsonl --failed -o retry.jsonl   # rows to run again
      batchsync report report.jsonl -o report.html            # for the customer
      batchsync report report.jsonl --format markdown         # for a ticket
    """
    from ._report_cli import default_format, run_report

    if sum(1 for path in reports if path == "-") > 1:
        raise click.UsageError("- (stdin) can be given once")
    fmt = output_format or default_format(output_path, stdout_is_terminal=sys.stdout.isatty())
    code, message = run_report(
        reports, output_path=output_path, fmt=fmt, failed_only=failed_only, version=__version__
    )
    if message:
        fail(message, code)
    sys.exit(code)


@main.command(context_settings=CONTEXT)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "jsonl"]),
    default="table",
    show_default=True,
    help="table for people, jsonl (one action a line) for scripts.",
)
def actions(fmt: str) -> None:
    """List the Graph actions `run --action` and `discover --action` take.

    For each: the request, what counts as success, the permission to consent, the default
    --tenant-rate (Intune's write limit for one app in one tenant), the Graph version it
    needs and the input columns.

    \b
    Example:
      batchsync actions
      batchsync actions --format jsonl | jq -r 'select(.beta_only) | .name'
    """
    import orjson

    from .actions import ACTIONS, DEFAULT_ACTION

    if fmt == "jsonl":
        for action in ACTIONS.values():
            click.echo(orjson.dumps(action.describe()).decode())
        return
    for name, action in ACTIONS.items():
        d = action.describe()
        title = f"{name} (default)" if name == DEFAULT_ACTION else name
        click.echo(f"{title}\n  {d['summary']}")
        for label, key in (
            ("request", "request"),
            ("success", "success"),
            ("permission", "permission"),
            ("--tenant-rate", "tenant_rate"),
            ("Graph", "api_version"),
            ("input", "input"),
        ):
            extra = " (beta only)" if key == "api_version" and d["beta_only"] else ""
            click.echo(f"  {label:<14}{d[key]}{extra}")
        click.echo("")


@main.command(context_settings=CONTEXT)
@action_option
@click.option("-q", "--quiet", is_flag=True, help="Only errors and the report.")
@click.option("-v", "--verbose", count=True, help="Per-request logging on stderr.")
def demo(action: str, quiet: bool, verbose: int) -> None:
    """Run a bundled sample through the built-in Entra + Graph simulator.

    Starts the simulator on 127.0.0.1 (HTTPS with a throwaway CA), with throttling and a few
    transient faults on, runs the sample through `run` against it, prints the report on
    stdout and the summary on stderr. Needs no account and no network.

    With --action another Intune sync runs: discover lists the sample tenants' objects
    (devices, VPP tokens...), then run takes that list.

    \b
    Examples:
      batchsync demo | jq -c '{line, tenant, status, attempts, throttled}'
      batchsync demo --action device-sync
    """
    from ._demo import run_demo

    setup_logging(verbose, quiet)
    from ._summary import RunStats

    stats = RunStats()
    echo = (lambda _: None) if quiet else (lambda m: click.echo(m, err=True))
    run_async(run_demo(stats=stats, echo=echo, action=action))
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
    type=click.Choice(["seconds", "float", "date", "none", "zero"]),
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
@click.option(
    "--devices-per-tenant",
    type=click.IntRange(0),
    default=None,
    help="Managed devices in every tenant (default: 0-5, by a hash of the tenant).",
)
@click.option(
    "--autopilot-cooldown",
    type=click.FloatRange(0),
    default=600.0,
    show_default=True,
    help="Seconds after an accepted Autopilot sync during which another one gets 429.",
)
def simulator(
    port: int,
    write_limit: int,
    window: float,
    retry_after_form: str,
    fault_rate: float,
    latency: float,
    token_latency: float,
    seed: int,
    devices_per_tenant: int | None,
    autopilot_cooldown: float,
) -> None:
    """Serve the built-in Entra + Graph simulator until Ctrl-C.

    Prints on stderr the environment lines that point `run` and `login` at it. Its partner
    has the tenants of samples/tenants.csv as GDAP customers, with connectors in several
    states, so the README's MSP quick start runs against it; any other tenant exists too.
    It serves every Intune sync action (see `batchsync actions`): each tenant has managed
    devices, VPP tokens and DEP settings, Autopilot answers 409 while its sync runs and 429
    within --autopilot-cooldown of the last, and --write-limit is the Exchange connectors'
    limit (devices get twice it, as in Intune).

    \b
    Example (two terminals):
      batchsync simulator --port 8443 --write-limit 10 --window 5
      eval "$(...printed export lines...)"; batchsync discover --gdap
    """
    from .simulator import (
        FaultConfig,
        SimulatorConfig,
        ThrottleConfig,
        format_env_lines,
        sample_partner,
        serve_forever,
    )

    config = SimulatorConfig(
        throttle=ThrottleConfig(
            write_limit=write_limit,
            window_s=window,
            retry_after=retry_after_form,  # type: ignore[arg-type]  # click.Choice checked it
            autopilot_cooldown_s=autopilot_cooldown,
        ),
        default_devices_per_tenant=devices_per_tenant,
        faults=FaultConfig.mixed(fault_rate, seed=seed),
        graph_latency_s=latency,
        token_latency_s=token_latency,
        **sample_partner(),
    )

    def ready(sim: Any) -> None:
        click.echo(f"batchsync simulator listening on {sim.url} (Ctrl-C to stop)", err=True)
        for line in format_env_lines(sim):
            click.echo(line, err=True)

    try:
        serve_forever(config, host="127.0.0.1", port=port, on_ready=ready)
    except OSError as exc:
        fail(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}; pick another --port", 2)
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
@connection_options(credentials=False)
def login(tenant: str, status: bool, timeout_s: float, conn: Connection) -> None:
    """Sign in once with a device code; `run --auth delegated` then reaches every tenant.

    The URL and code go to stderr. The account is kept in the token cache (--token-cache),
    encrypted where the system offers it (DPAPI, Keychain, libsecret), else in a file only
    you can read (mode 0600). `login --status` shows who is signed in; exit 1 if nobody.

    \b
    Example:
      batchsync login --client-id 11111111-2222-3333-4444-555555555555
      batchsync login --status
    """
    from ._auth._login import login_device_code, token_cache_status

    setup_logging(conn.verbose, conn.quiet)
    if status:
        try:
            cache = token_cache_status(conn.auth)
        except BatchsyncError as exc:
            fail(exc.message, exc.exit_code)
        click.echo(cache.describe(), err=True)
        sys.exit(0 if cache.accounts else 1)
    try:
        import asyncio

        user = asyncio.run(
            login_device_code(
                conn.auth,
                conn.endpoints(),
                tenant=tenant,
                ca_bundle=conn.ca_bundle,
                echo=lambda m: click.echo(m, err=True),
                timeout_s=timeout_s,
            )
        )
    except BatchsyncError as exc:
        fail(exc.message, exc.exit_code)
    except KeyboardInterrupt:
        fail("sign-in cancelled", 130)
    click.echo(f"signed in as {user}", err=True)


@main.command(context_settings=CONTEXT)
@click.option(
    "--token-cache",
    envvar="BATCHSYNC_TOKEN_CACHE",
    type=click.Path(dir_okay=False),
    help="Token cache of `batchsync login` (env BATCHSYNC_TOKEN_CACHE; default in the "
    "user's cache directory).",
)
@click.option(
    "--client-id",
    envvar=["BATCHSYNC_CLIENT_ID", "AZURE_CLIENT_ID"],
    help="App registration (multi-tenant). Env: BATCHSYNC_CLIENT_ID, else AZURE_CLIENT_ID.",
)
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
    from ._auth._login import logout as sign_out

    setup_logging(0, False)  # a damaged cache that is removed whole is said on stderr
    settings = AuthSettings(
        mode=AuthMode.DELEGATED, client_id=client_id, token_cache_path=token_cache
    )
    try:
        removed = sign_out(settings, usernames=accounts or None)
    except BatchsyncError as exc:
        fail(exc.message, exc.exit_code)
    click.echo(
        f"signed out: {', '.join(removed)}" if removed else "no account was signed in", err=True
    )
