"""The CLI's option groups, each collapsing into one settings object, and its process plumbing.

A group is a decorator that adds its click options and hands the command one value instead
of their keyword arguments: ``@connection_options`` -> ``conn: Connection`` (endpoints,
trust, credentials, verbosity), ``@pace_options`` -> ``pace: Pace``, ``@output_options`` ->
``output: Output``. ``run_async`` runs a command's coroutine and maps what escapes it to the
contract's exit statuses, in one line on stderr, never a traceback.
"""

from __future__ import annotations

import dataclasses
import functools
import getpass
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click
from click.core import ParameterSource

from ._auth._settings import AuthMode, AuthSettings
from ._clouds import CloudName, Endpoints, endpoint_problem, resolve_endpoints
from ._errors import BatchsyncError
from ._filters import parse_shard
from ._pacing import RetryPolicy, TenantRate
from ._rows import SyncType
from ._signals import interrupt_like_ctrl_c

if TYPE_CHECKING:  # asyncio, the engine (and aiohttp) load only when a command runs
    import asyncio

    from ._engine import EngineSettings

__all__ = [
    "CONTEXT",
    "Connection",
    "Output",
    "Pace",
    "action_option",
    "connection_options",
    "endpoint_url",
    "fail",
    "output_options",
    "pace_options",
    "parse_rate",
    "parse_shard_option",
    "parse_sync_type",
    "positive",
    "run_async",
    "setup_logging",
]

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

log = logging.getLogger("batchsync")

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


# --------------------------------------------------------------------------- process


def fail(message: str, code: int) -> NoReturn:
    """One line on stderr, then exit with the contract's status."""
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


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` with the contract's exit statuses for errors and Ctrl-C.

    A ``BatchsyncError`` (also one raised inside a task group) exits with its
    ``exit_code``; anything else is a bug: one line, and the traceback with ``-v``.
    """
    import asyncio  # not at import: --help, --version and completion never need it

    interrupt_like_ctrl_c()  # until the engine routes signals itself: exit 130
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(coro)
    except* BatchsyncError as group:
        first = _leaves(group)[0]
        assert isinstance(first, BatchsyncError)
        fail(first.message, first.exit_code)
    except* KeyboardInterrupt:
        click.echo("batchsync: interrupted", err=True)
        sys.exit(130)
    except* Exception as group:  # a bug: one line for people, the traceback with -v
        leaf = _leaves(group)[0]
        log.debug("internal error", exc_info=leaf)
        fail(f"internal error: {type(leaf).__name__}: {leaf} (-v shows the traceback)", 1)


def _leaves(group: BaseExceptionGroup[Any]) -> list[BaseException]:
    """The exceptions inside (nested) groups, in order."""
    found: list[BaseException] = []
    for exc in group.exceptions:
        found.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return found


_OFF = logging.CRITICAL + 1
_CLIP = 300  # a third party's message is clipped to this many characters, on one line


class _OneVoice(logging.Formatter):
    """batchsync's lines as they are (an internal error's traceback with -v included); a
    third party's as one clipped line with its logger's name and no traceback, since what
    went wrong reaches the user through batchsync's own report and summary."""

    def format(self, record: logging.LogRecord) -> str:
        if record.name == "batchsync" or record.name.startswith("batchsync."):
            return super().format(record)
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            text = f"{text} ({type(exc).__name__}: {exc})"
        text = " ".join(text.split())
        if len(text) > _CLIP:
            text = text[: _CLIP - 1] + "…"
        return f"batchsync: {record.levelname}: [{record.name}] {text}"


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """The one stderr handler (a class of its own, so a second setup replaces it)."""


def setup_logging(verbose: int, quiet: bool) -> None:
    """Only batchsync speaks on stderr, through one handler.

    Its own lines: errors only with -q, warnings by default, per-request lines with -v.
    Third-party loggers (MSAL, aiohttp, asyncio...) and Python warnings reach that handler
    only with -v (their warnings) or -vv (their info), each as one line: nothing of theirs
    with -q or by default, so a transient answer batchsync absorbed leaves no trace.
    """
    own = logging.ERROR if quiet else logging.DEBUG if verbose else logging.WARNING
    others = _OFF if quiet or not verbose else logging.WARNING if verbose == 1 else logging.INFO
    handler = _Stderr(sys.stderr)
    handler.setFormatter(_OneVoice("batchsync: %(levelname)s: %(message)s"))
    mine = logging.getLogger("batchsync")
    mine.handlers[:] = [handler]
    mine.setLevel(own)
    mine.propagate = False
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, _Stderr)] + [handler]
    root.setLevel(others)
    logging.captureWarnings(True)


# --------------------------------------------------------------------------- converters


def parse_rate(_: click.Context, __: click.Parameter, value: str | None) -> TenantRate | None:
    if value is None:
        return None
    try:
        return TenantRate.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def parse_sync_type(_: click.Context, __: click.Parameter, value: str) -> SyncType:
    """fullSync or deltaSync, any case (the help shows the canonical names)."""
    try:
        return SyncType.parse(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not fullSync or deltaSync") from None


def parse_shard_option(
    _: click.Context, __: click.Parameter, value: str | None
) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        return parse_shard(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def endpoint_url(_: click.Context, __: click.Parameter, value: str | None) -> str | None:
    """--graph-url / --authority-host: https://, or http:// to this machine only."""
    if value is not None:
        why = endpoint_problem(value)
        if why is not None:
            raise click.BadParameter(why)
    return value


def positive(_: click.Context, param: click.Parameter, value: float) -> float:
    if value is not None and value <= 0:
        raise click.BadParameter("must be greater than 0")
    return value


# --------------------------------------------------------------------------- groups


def _collapse(
    options: list[Callable[[F], F]], name: str, build: Callable[[dict[str, Any]], Any]
) -> Callable[[F], F]:
    """A decorator adding ``options`` whose values reach the command as ``name=build(...)``.

    ``build`` pops the values it uses from the mapping it is given.
    """

    def decorate(f: F) -> F:
        @functools.wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            kwargs[name] = build(kwargs)
            return f(*args, **kwargs)

        command: Any = wrapper
        for option in reversed(options):
            command = option(command)
        return command  # type: ignore[no-any-return]

    return decorate


@dataclasses.dataclass(frozen=True, slots=True)
class Connection:
    """Where and how to connect: credentials, endpoints, trust, and how much to say."""

    auth: AuthSettings
    cloud: str = CloudName.GLOBAL.value
    graph_url: str | None = None
    authority_host: str | None = None
    api_version: str | None = None  # None: what the action needs
    ca_bundle: str | None = None
    verbose: int = 0
    quiet: bool = False

    def endpoints(self, default_api_version: str = "v1.0") -> Endpoints:
        """The endpoints, on ``--api-version`` or, when none was given, the action's."""
        return resolve_endpoints(
            self.cloud,
            graph_url=self.graph_url,
            authority_host=self.authority_host,
            api_version=self.api_version or default_api_version,
        )


def connection_options(*, credentials: bool = True) -> Callable[[F], F]:
    """Auth, cloud and network options (``run``, ``discover``; ``login`` without the
    credentials, which are always a delegated sign-in), as ``conn: Connection``."""
    options: list[Callable[[F], F]] = []
    if credentials:
        options += [
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
                metavar="SECRET|-",
                help="App secret. Set it in the env BATCHSYNC_CLIENT_SECRET (else "
                "AZURE_CLIENT_SECRET): a value on the command line is visible to other local "
                "users and kept in shell history. '-' reads it from the terminal (not shown), "
                "or from stdin when stdin is not the input.",
            ),
            click.option(
                "--certificate",
                envvar=["BATCHSYNC_CLIENT_CERTIFICATE_PATH", "AZURE_CLIENT_CERTIFICATE_PATH"],
                type=click.Path(dir_okay=False),
                help="PEM with the app's private key and certificate (env "
                "BATCHSYNC_CLIENT_CERTIFICATE_PATH, else AZURE_CLIENT_CERTIFICATE_PATH).",
            ),
            click.option(
                "--api-version",
                type=click.Choice(["v1.0", "beta"]),
                default=None,
                show_default="the action's: v1.0, beta for the beta-only actions",
                help="Graph version of the requests.",
            ),
        ]
    options += [
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
            callback=endpoint_url,
            help="Override the Graph root (env BATCHSYNC_GRAPH_URL); https:// (http:// only to "
            "127.0.0.1).",
        ),
        click.option(
            "--authority-host",
            envvar="BATCHSYNC_AUTHORITY_HOST",
            callback=endpoint_url,
            help="Override the Entra authority host (env BATCHSYNC_AUTHORITY_HOST); https:// "
            "(http:// only to 127.0.0.1).",
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

    def build(kw: dict[str, Any]) -> Connection:
        mode = AuthMode(kw.pop("auth_mode", AuthMode.DELEGATED.value))
        secret = kw.pop("client_secret", None)
        if secret is not None:
            stdin_is_input = "-" in (kw.get("input_path"), kw.get("tenants_path"))
            secret = client_secret_value(secret, stdin_is_input=stdin_is_input)
        auth = AuthSettings(
            mode=mode,
            client_id=kw.pop("client_id"),
            client_secret=secret,
            certificate_path=kw.pop("certificate", None),
            token_cache_path=kw.pop("token_cache"),
            # What only the environment may carry (never a flag): the refresh token and
            # the certificate's password.
            certificate_password=os.environ.get("BATCHSYNC_CLIENT_CERTIFICATE_PASSWORD")
            if credentials
            else None,
            refresh_token=(os.environ.get("BATCHSYNC_REFRESH_TOKEN") or None)
            if credentials
            else None,
        )
        return Connection(
            auth=auth,
            cloud=kw.pop("cloud"),
            graph_url=kw.pop("graph_url"),
            authority_host=kw.pop("authority_host"),
            api_version=kw.pop("api_version", None),
            ca_bundle=kw.pop("ca_bundle"),
            verbose=kw.pop("verbose"),
            quiet=kw.pop("quiet"),
        )

    return _collapse(options, "conn", build)


_FLAG_WARNING = (
    "batchsync: warning: --client-secret on the command line can be read by other local users "
    "(ps, /proc) and stays in shell history; set BATCHSYNC_CLIENT_SECRET instead, or pass "
    "--client-secret - to type it"
)


def client_secret_value(value: str, *, stdin_is_input: bool) -> str:
    """The secret ``--client-secret`` stands for: ``-`` reads it (``read_client_secret``); a
    value typed as a flag, not taken from the environment, is used with one warning."""
    if value == "-":
        return read_client_secret(stdin_is_input=stdin_is_input)
    context = click.get_current_context(silent=True)
    if context is not None and context.get_parameter_source("client_secret") in (
        ParameterSource.COMMANDLINE,
        ParameterSource.PROMPT,
    ):
        click.echo(_FLAG_WARNING, err=True)
    return value


def _terminal() -> bool:
    """Whether getpass can read from a terminal without echo: stdin is one, or (Unix) the
    process has a controlling terminal even though stdin is redirected."""
    if sys.stdin is not None and sys.stdin.isatty():
        return True
    if sys.platform == "win32":
        return False
    try:
        os.close(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY))
    except OSError:
        return False
    return True


def read_client_secret(*, stdin_is_input: bool) -> str:
    """``--client-secret -``: one line of stdin when it is piped and is not the input (``run
    -`` reads rows from it), else the terminal without echo; exit 2 when neither is there."""
    where = "the input (INPUT is -)" if stdin_is_input else "not there"
    if not stdin_is_input and sys.stdin is not None and not sys.stdin.isatty():
        secret = sys.stdin.readline()
    elif _terminal():
        try:
            secret = getpass.getpass("client secret (not shown): ")
        except (EOFError, KeyboardInterrupt):
            fail("no client secret was typed", 2)
    else:
        fail(
            f"--client-secret -: stdin is {where} and there is no terminal to type the secret "
            "on; set BATCHSYNC_CLIENT_SECRET instead",
            2,
        )
    secret = secret.strip()
    if not secret:
        fail("--client-secret -: the secret read is empty", 2)
    return secret


@dataclasses.dataclass(frozen=True, slots=True)
class Pace:
    """The pace options: the engine's bounds and the token acquisitions at once."""

    engine: EngineSettings
    token_concurrency: int


def pace_options(f: F) -> F:
    """The pace options shared by ``run`` and ``discover``, as ``pace: Pace``."""
    options: list[Callable[[F], F]] = [
        click.option(
            "--concurrency",
            type=click.IntRange(1, 4096),
            default=32,
            show_default=True,
            help="Graph requests in flight at once, across all tenants.",
        ),
        click.option(
            "--token-concurrency",
            type=click.IntRange(1, 4096),
            default=None,
            show_default="the --concurrency value",
            help="Token acquisitions at once (they run ahead of the rows that need them; "
            "tokens of different tenants are independent Entra requests).",
        ),
        click.option(
            "--tenant-rate",
            default=None,
            show_default="the action's Intune write limit (see `batchsync actions`)",
            callback=parse_rate,
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
            callback=positive,
            help="Longest Retry-After waited (seconds); longer ends the row `throttled`.",
        ),
        click.option(
            "--timeout",
            type=float,
            default=30.0,
            show_default=True,
            callback=positive,
            help="Bound of one request (seconds).",
        ),
    ]

    def build(kw: dict[str, Any]) -> Pace:
        from ._engine import EngineSettings

        concurrency = kw.pop("concurrency")
        token_concurrency = kw.pop("token_concurrency")
        engine = EngineSettings(
            concurrency=concurrency,
            tenant_rate=kw.pop("tenant_rate"),
            retry=RetryPolicy(
                max_attempts=kw.pop("max_attempts"),
                max_throttled=kw.pop("max_throttled"),
                max_retry_after_s=kw.pop("max_retry_after"),
            ),
            timeout_s=kw.pop("timeout"),
        )
        return Pace(engine=engine, token_concurrency=token_concurrency or concurrency)

    return _collapse(options, "pace", build)(f)


@dataclasses.dataclass(frozen=True, slots=True)
class Output:
    """Where a command's JSONL goes, and whether an existing file may be replaced."""

    path: str
    overwrite: bool


def output_options(*, long: str, what: str, overwrite_help: str) -> Callable[[F], F]:
    """``-o/{long}`` and ``--overwrite``, as ``output: Output``."""
    options: list[Callable[[F], F]] = [
        click.option(
            "-o",
            long,
            "output_path",
            default="-",
            show_default=True,
            type=click.Path(dir_okay=False, allow_dash=True),
            help=f"Where {what} goes (- is stdout).",
        ),
        click.option("--overwrite", is_flag=True, help=overwrite_help),
    ]

    def build(kw: dict[str, Any]) -> Output:
        return Output(path=kw.pop("output_path"), overwrite=kw.pop("overwrite"))

    return _collapse(options, "output", build)


def action_option(f: F) -> F:
    """``--action NAME`` (``batchsync actions`` lists them), as ``action: str``."""
    from .actions import DEFAULT_ACTION, action_names

    return click.option(
        "--action",
        type=click.Choice(action_names()),
        default=DEFAULT_ACTION,
        show_default=True,
        help="The Graph action (`batchsync actions` lists them).",
    )(f)


def sync_type_option(help_text: str) -> Callable[[F], F]:
    """``--sync-type`` (fullSync|deltaSync, any case), as ``sync_type: SyncType``."""
    return click.option(
        "--sync-type",
        callback=parse_sync_type,
        metavar="[fullSync|deltaSync]",
        default=SyncType.DELTA.value,
        show_default=True,
        help=help_text,
    )
