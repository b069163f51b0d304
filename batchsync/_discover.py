"""``batchsync discover``: each tenant's objects of an action, as rows ``batchsync run`` takes.

::

    TENANTS file / stdin ──┐                          one task per tenant (TaskGroup,
    --gdap: partner's      ├─> tenants ─> bounded ─>  semaphore-bounded): token (ahead,
      GDAP customers ──────┘                          under --token-concurrency), then
                                                      GET the action's listing, every
                                                      page, one Graph slot per request
                                                        │
                          stdout / -o: {"tenant", "connector"|"id", ("syncType"), the
                          action's fields}   --errors: {"tenant", "kind", "code", "message"}

The same auth, cloud and pace settings as ``run``: ``TokenProvider`` for tokens, one
``GraphClient`` session, ``_pacing.assess`` for every retry (a 429's Retry-After pauses that
tenant alone: its pages are fetched one after the other, so the tenant's task sleeping *is*
the pause), a per-tenant ``AsyncLimiter`` for ``--tenant-rate``, and ``concurrency`` Graph
requests in flight at most. A tenant's rows are written together once all its pages are in,
so a tenant that fails half-way leaves no partial list. A tenant with no object (no
connector, no VPP token, no Autopilot setting...) is a normal outcome (counted), not an error.

``@odata.nextLink`` is followed only when it points under the Graph base URL (same scheme,
host and port): the bearer token is never sent anywhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import sys
import time
from collections.abc import Callable, Iterable
from typing import IO, Any, BinaryIO, cast
from urllib.parse import quote

import orjson
from aiolimiter import AsyncLimiter

from ._auth._settings import AccessToken, AuthMode, AuthSettings, TokenSource
from ._clouds import Endpoints
from ._connect import connect
from ._engine import EngineSettings
from ._errors import AuthError, ConfigError, ErrorKind, ReportError, RunStoppingAuthError
from ._feed import Feed, default_stdin, on_daemon_thread, prime
from ._graph import GraphClient, GraphRequest, next_page_request
from ._input import read_tenants
from ._pacing import GiveUp, Refresh, Success, Tries, assess, parse_retry_after
from ._report import ReportWriter
from ._rows import Rejected, SyncType, canonical_tenant
from ._summary import DiscoverStats, TenantFailure
from .actions import DEFAULT_ACTION, Action, get_action

__all__ = ["DiscoverConfig", "discover"]

log = logging.getLogger(__name__)

_MULTI_TENANT_AUTHORITIES = frozenset({"organizations", "common"})
_MAX_PAGES = 100_000  # a loop guard: no real tenant has 100,000 pages of objects
_GDAP_CUSTOMERS = GraphRequest("GET", "/tenantRelationships/delegatedAdminCustomers")


@dataclasses.dataclass(frozen=True, slots=True)
class DiscoverConfig:
    """Everything one ``discover`` needs; built by the CLI or by library users.

    Exactly one of ``tenants_path`` (a file, or ``-`` for stdin) and ``gdap`` is set.
    ``partner_tenant`` is the authority for the GDAP customer list: None means
    ``organizations`` (the signed-in account's home tenant), which app-only auth cannot use.
    ``engine`` carries the pace options shared with ``run`` (concurrency, tenant rate,
    retries, timeout); its other fields are ignored here.
    """

    endpoints: Endpoints
    auth: AuthSettings
    tenants_path: str | None = None
    gdap: bool = False
    partner_tenant: str | None = None
    sync_type: SyncType = SyncType.DELTA
    connected_only: bool = False
    output_path: str = "-"
    errors_path: str | None = None
    overwrite: bool = False
    engine: EngineSettings = EngineSettings()
    token_concurrency: int | None = None  # None: as many as engine.concurrency
    ca_bundle: str | None = None
    preflight: bool = True  # check that Graph and Entra are reachable and trusted first
    action: str = DEFAULT_ACTION  # whose objects are listed (``batchsync actions``)
    filter: str | None = None  # an OData $filter for the listing, where the action takes one

    def selected_action(self) -> Action:
        """The action, checked: it exists, has a listing, runs on this Graph version, and
        takes ``filter`` if one is given (ConfigError, exit 2, otherwise)."""
        action = get_action(self.action, api_version=self.endpoints.api_version)
        if action.listing is None:
            raise ConfigError(f"{action.name} has no listing for discover")
        if self.filter is not None and not action.listing.filterable:
            takers = [a.name for a in _actions() if a.listing and a.listing.filterable]
            raise ConfigError(
                f"--filter: Graph takes no $filter on {action.name}'s listing "
                f"(it does on: {', '.join(takers)})"
            )
        return action


def _actions() -> list[Action]:
    from .actions import ACTIONS

    return list(ACTIONS.values())


def listing_request(action: Action, odata_filter: str | None) -> GraphRequest:
    """The first request of an action's listing, with its $select and the user's $filter
    (percent-encoded: it only ever lands in the query string)."""
    listing = action.listing
    assert listing is not None
    query = []
    if odata_filter:
        query.append("$filter=" + quote(odata_filter, safe=""))
    if listing.select:
        query.append("$select=" + ",".join(listing.select))
    return GraphRequest("GET", listing.path + ("?" + "&".join(query) if query else ""))


# --------------------------------------------------------------------------- the work


class _TenantFailed(Exception):
    """Internal: ends one tenant's listing with a ``TenantFailure``."""

    def __init__(self, failure: TenantFailure, *, run_stopping: bool = False) -> None:
        super().__init__(failure.error.message)
        self.failure = failure
        self.run_stopping = run_stopping  # said once on stderr, not once per tenant


class _Discoverer:
    def __init__(
        self,
        config: DiscoverConfig,
        *,
        tokens: TokenSource,
        graph: GraphClient,
        out: ReportWriter,
        errors: ReportWriter | None,
        echo: Callable[[str], None],
        stats: DiscoverStats,
    ) -> None:
        self._c = config
        self._s = config.engine
        self._tokens = tokens
        self._graph = graph
        self._out = out
        self._errors = errors
        self._echo = echo
        self.stats = stats
        self._slots = asyncio.Semaphore(self._s.concurrency)
        self._rng = random.Random()
        self._graph_base = config.endpoints.graph_base
        self._stop: RunStoppingAuthError | None = None
        self._action = config.selected_action()
        self._rate = self._s.tenant_rate or self._action.tenant_rate

    def __repr__(self) -> str:
        st = self.stats
        return (
            f"<Discoverer tenants={st.tenants} listed={st.listed} failed={st.failed} "
            f"paused={st.paused_tenants} stopped={self._stop is not None}>"
        )

    # -- outcomes ---------------------------------------------------------------------

    def fail(self, failure: TenantFailure, *, quiet_line: bool = False) -> None:
        self.stats.note_failure(failure)
        if self._errors is not None:
            self._errors.write_bytes(failure.to_json())
        if not quiet_line:
            error = failure.error
            code = f" ({error.code})" if error.code else ""
            message = error.message.removeprefix(f"tenant '{failure.tenant}': ")
            self._echo(
                f"batchsync: tenant {failure.tenant or '?'}: {error.kind.value}{code}: {message}"
            )

    def _write_rows(self, tenant: str, objects: list[dict[str, Any]]) -> None:
        action, listing = self._action, self._action.listing
        assert listing is not None
        found = 0
        for item in objects:
            row = action.discovered_row(tenant, item, self._c.sync_type)
            if row is None:
                log.warning(
                    "tenant %s: a %s id that is not a GUID, left out", tenant, action.object_label
                )
                continue
            self.stats.connectors += 1
            found += 1
            if self._c.connected_only and listing.ready is not None and not listing.ready(item):
                self.stats.left_out += 1
                continue
            self._out.write_bytes(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE))
            self.stats.written += 1
        self.stats.listed += 1
        if found == 0:
            self.stats.empty += 1
            log.info("tenant %s has no %s", tenant, action.object_label)

    # -- Graph ------------------------------------------------------------------------

    async def _token(self, tenant: str) -> AccessToken:
        try:
            return await self._tokens.get(tenant)
        except RunStoppingAuthError as exc:
            if self._stop is None:
                # Nothing can work until a person acts: say so once, not once per tenant.
                self._stop = exc
                self.stats.stop_reason = f"{exc.code or 'auth'}, see the error above"
                self._echo(
                    f"batchsync: error: {exc.message}; the tenants not yet listed fail with it"
                )
            raise _TenantFailed(
                TenantFailure(tenant, exc.report_error()), run_stopping=True
            ) from None
        except AuthError as exc:
            raise _TenantFailed(TenantFailure(tenant, exc.report_error())) from None

    async def _get(
        self, tenant: str, request: GraphRequest, limiter: AsyncLimiter, *, missing_ok: bool = False
    ) -> Any:
        """One page's JSON, after the retries ``assess`` allows; raises ``_TenantFailed``.

        ``missing_ok``: a 404 is None (a tenant without the action's singleton setting).
        """
        tries = Tries()
        while True:
            token = await self._token(tenant)
            await limiter.acquire()
            async with self._slots:
                answer = await self._graph.send(
                    request, token=token.value, timeout_s=self._s.timeout_s, read_body=True
                )
            self.stats.requests += 1
            status = answer.status
            log.debug(
                "tenant %s: GET %s -> %s (client-request-id %s)",
                tenant,
                request.path.split("?", 1)[0],
                status if status is not None else answer.code,
                answer.client_request_id,
            )
            before = tries
            decision, tries = assess(
                self._s.retry,
                before,
                status=status,
                ok=status == 200,
                failure=answer.failure,
                retry_after_s=parse_retry_after(answer.retry_after, now_epoch=time.time()),
                draw=self._rng.random(),
                code=answer.code,
                message=answer.message,
            )
            if tries.throttled > before.throttled:
                self.stats.throttled_answers += 1
            if isinstance(decision, Success):
                try:
                    return orjson.loads(answer.body or b"")
                except orjson.JSONDecodeError:
                    raise _TenantFailed(
                        TenantFailure(
                            tenant,
                            ReportError(
                                ErrorKind.HTTP, "BadResponse", "Graph sent a body that is not JSON"
                            ),
                        )
                    ) from None
            if isinstance(decision, Refresh):
                self._tokens.invalidate(token)  # refused token (revoked, or expired early)
                continue
            if isinstance(decision, GiveUp):
                if missing_ok and status == 404:
                    return None
                error = decision.error
                message = self._action.explain(status, error.message, self._tokens.mode)
                raise _TenantFailed(
                    TenantFailure(tenant, dataclasses.replace(error, message=message))
                )
            if decision.pause_tenant:
                log.info(
                    "tenant %s throttled (HTTP %s): pausing it %.1f s",
                    tenant,
                    status,
                    decision.wait_s,
                )
                self.stats.paused_tenants += 1
                try:
                    await asyncio.sleep(decision.wait_s)
                finally:
                    self.stats.paused_tenants -= 1
            else:
                await asyncio.sleep(decision.wait_s)

    async def fetch_all(self, tenant: str, first: GraphRequest) -> list[dict[str, Any]]:
        """Every item of a paged collection (``value`` + ``@odata.nextLink``)."""
        limiter = AsyncLimiter(*self._rate.limiter_params())
        items: list[dict[str, Any]] = []
        request = first
        seen: set[str] = set()
        for _ in range(_MAX_PAGES):
            page = await self._get(tenant, request, limiter)
            value = page.get("value") if isinstance(page, dict) else None
            if not isinstance(value, list):
                raise _TenantFailed(
                    TenantFailure(
                        tenant,
                        ReportError(
                            ErrorKind.HTTP, "BadResponse", "Graph's answer has no 'value' list"
                        ),
                    )
                )
            items.extend(v for v in value if isinstance(v, dict))
            link = page.get("@odata.nextLink")
            if link is None:
                return items
            if not isinstance(link, str) or link in seen:
                raise _TenantFailed(
                    TenantFailure(
                        tenant,
                        ReportError(
                            ErrorKind.HTTP, "BadNextLink", "Graph's nextLink repeats itself"
                        ),
                    )
                )
            seen.add(link)
            try:
                request = next_page_request(link, self._graph_base)
            except ValueError as exc:
                raise _TenantFailed(
                    TenantFailure(tenant, ReportError(ErrorKind.HTTP, "ForeignNextLink", str(exc)))
                ) from None
        raise _TenantFailed(
            TenantFailure(
                tenant, ReportError(ErrorKind.HTTP, "TooManyPages", f"more than {_MAX_PAGES} pages")
            )
        )

    # -- tenants ----------------------------------------------------------------------

    async def list_tenant(self, tenant: str) -> None:
        try:
            if self._stop is not None:
                raise _TenantFailed(
                    TenantFailure(tenant, self._stop.report_error()),
                    run_stopping=True,
                )
            objects = await self._list(tenant)
        except _TenantFailed as exc:
            # A run-stopping auth error had its one stderr line already.
            self.fail(exc.failure, quiet_line=exc.run_stopping)
            return
        finally:
            self._tokens.forget(tenant)  # memory stays flat on long tenant lists
        self._write_rows(tenant, objects)

    async def _list(self, tenant: str) -> list[dict[str, Any]]:
        """The tenant's objects of the action: every page of its collection, or its one
        setting ([] when the tenant has none)."""
        listing = self._action.listing
        assert listing is not None
        request = listing_request(self._action, self._c.filter)
        if not listing.singleton:
            return await self.fetch_all(tenant, request)
        limiter = AsyncLimiter(*self._rate.limiter_params())
        setting = await self._get(tenant, request, limiter, missing_ok=True)
        return [setting] if isinstance(setting, dict) else []

    async def gdap_customers(self, partner: str) -> list[str] | None:
        """The partner's GDAP customer tenants, or None after reporting why they cannot be had."""
        try:
            customers = await self.fetch_all(partner, _GDAP_CUSTOMERS)
        except _TenantFailed as exc:
            failure = exc.failure
            self.fail(
                TenantFailure(
                    failure.tenant,
                    dataclasses.replace(
                        failure.error,
                        message=f"cannot list the GDAP customers: {failure.error.message}",
                    ),
                )
            )
            return None
        tenants: dict[str, None] = {}
        for customer in customers:
            raw = customer.get("tenantId") or customer.get("id")
            tenant = canonical_tenant(raw) if isinstance(raw, str) else None
            if tenant is None:
                log.warning("a GDAP customer without a usable tenantId, left out")
                continue
            tenants.setdefault(tenant)
        return list(tenants)

    async def list_all(self, tenants: Iterable[str | Rejected]) -> None:
        """List every tenant once, ``concurrency`` Graph requests at most.

        ``tenants`` is read on a daemon thread as the listing goes (a long file or a slow
        stdin streams). More tenant tasks than Graph slots run at once (``concurrency + 2 *
        token concurrency``), so tokens of the next tenants are being acquired while the
        slots are busy, under the token provider's own bound.
        """
        token_slots = self._c.token_concurrency or self._s.concurrency
        in_progress = asyncio.Semaphore(self._s.concurrency + 2 * token_slots)
        seen: set[str] = set()
        feed = Feed(tenants, asyncio.get_running_loop())
        feed.start()

        async def one(tenant: str) -> None:
            try:
                await self.list_tenant(tenant)
            finally:
                in_progress.release()

        try:
            async with asyncio.TaskGroup() as tg:
                while batch := await feed.take():
                    for item in batch:
                        if isinstance(item, Rejected):
                            self.fail(_rejected(item))
                            continue
                        if item in seen:
                            continue
                        seen.add(item)
                        self.stats.tenants += 1
                        await in_progress.acquire()
                        tg.create_task(one(item), name=f"discover:{item}")
        finally:
            feed.stop()


# --------------------------------------------------------------------------- wiring


def _partner_tenant(config: DiscoverConfig) -> str:
    mode = config.auth.resolved_mode()
    partner = config.partner_tenant
    if partner is None:
        if mode is AuthMode.APP:
            raise ConfigError(
                "--gdap with app-only auth needs --partner-tenant (the partner's own tenant "
                "ID or domain): client credentials cannot use 'organizations'"
            )
        return "organizations"
    lowered = partner.strip().lower()
    if lowered in _MULTI_TENANT_AUTHORITIES and mode is not AuthMode.APP:
        return lowered
    tenant = canonical_tenant(partner.strip())
    if tenant is None:
        raise ConfigError(
            f"--partner-tenant {partner[:80]!r} is not a tenant ID (GUID) or domain name"
            + ("" if mode is AuthMode.APP else " (or 'organizations')")
        )
    return tenant


def _open_output(path: str, stdout: IO[bytes], *, overwrite: bool, what: str) -> ReportWriter:
    if path == "-":
        return ReportWriter.to_stream(stdout)
    return ReportWriter.open_path(path, resume=False, overwrite=overwrite, what=what)


def _rejected(item: Rejected) -> TenantFailure:
    return TenantFailure(item.tenant or "", item.error)


def _open_tenants(path: str, stdin: IO[bytes]) -> IO[bytes]:
    if path == "-":
        return stdin
    try:
        return open(path, "rb")
    except OSError as exc:
        raise ConfigError(f"cannot read tenants {path!r}: {exc.strerror}") from None


async def discover(
    config: DiscoverConfig,
    *,
    stdin: IO[bytes] | None = None,
    stdout: IO[bytes] | None = None,
    echo: Callable[[str], None] = lambda _: None,
    stats: DiscoverStats | None = None,
    tokens: TokenSource | None = None,
) -> DiscoverStats:
    """List the connectors of every tenant; ``ConfigError`` (exit 2) before any request.

    ``echo`` receives one line per tenant that failed (for stderr). Nothing but connector
    rows goes to ``stdout`` (or ``config.output_path``). ``tokens`` replaces the MSAL token
    provider built from ``config.auth`` (tests, or an application with its own tokens).
    """
    stats = stats or DiscoverStats()
    stdout = stdout if stdout is not None else sys.stdout.buffer
    if config.gdap == (config.tenants_path is not None):
        raise ConfigError("give either TENANTS (a file, or - for stdin) or --gdap, not both")
    if config.errors_path is not None and config.errors_path == config.output_path != "-":
        raise ConfigError("--errors and -o must be different files")
    config.selected_action()  # an unknown action or a bad --filter: exit 2, nothing sent
    partner = _partner_tenant(config) if config.gdap else None
    tenants: Iterable[str | Rejected] = ()
    with contextlib.ExitStack() as stack:
        if config.tenants_path is not None:
            source = _open_tenants(
                config.tenants_path, stdin if stdin is not None else default_stdin()
            )
            if config.tenants_path != "-":
                stack.callback(source.close)
            # The first row now: a header without a tenant column fails before any token.
            tenants = await on_daemon_thread(prime, read_tenants(cast(BinaryIO, source)))
        out = _open_output(config.output_path, stdout, overwrite=config.overwrite, what="output")
        stack.callback(out.close)
        errors = None
        if config.errors_path is not None:
            errors = _open_output(
                config.errors_path, stdout, overwrite=config.overwrite, what="--errors file"
            )
            stack.callback(errors.close)

        try:
            async with connect(
                config, check_reach=config.preflight, with_tokens=tokens is None
            ) as (provider, graph):
                tokens = tokens or provider
                assert tokens is not None
                worker = _Discoverer(
                    config,
                    tokens=tokens,
                    graph=graph,
                    out=out,
                    errors=errors,
                    echo=echo,
                    stats=stats,
                )
                if partner is not None:
                    found = await worker.gdap_customers(partner)
                    tenants = found or []
                    if found is not None:
                        log.info("%d GDAP customers of %s", len(found), partner)
                await worker.list_all(tenants)
        finally:
            stats.finished = time.monotonic()
    return stats
