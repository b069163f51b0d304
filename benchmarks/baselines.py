"""The baselines batchsync is measured against, each run as its own process.

``python benchmarks/baselines.py KIND --input CSV [--url URL --ca-pem PEM --client-id ID]``
prints one JSON line: ``work_s`` (from before reading the input to the last answer; imports
and interpreter start are not in it), ``rows``, ``ok``, ``failed`` and ``statuses``. The
client secret comes from the environment (``BENCH_CLIENT_SECRET``).

* ``bare``: what a competent script on aiohttp does: one ``ClientSession``, one
  ``asyncio.Semaphore(concurrency)``; per row, inside the semaphore, the tenant's token (a
  raw ``client_credentials`` POST, once per tenant, shared by its rows) then the sync POST.
  No MSAL, no retries, no report.
* ``sequential``: a PowerShell ``foreach``: one row after the other, a token POST then the
  sync POST (one session, connections reused), over the first ``--limit-rows`` rows.
* ``peer``: msgraph-sdk-python with azure-identity, as its docs suggest and an MSP would
  write it: per tenant an ``azure.identity.aio.ClientSecretCredential`` and a
  ``GraphServiceClient``, then
  ``client.device_management.exchange_connectors.by_device_management_exchange_connector_id(
  id).sync.post(SyncPostRequestBody(sync_type=...))``, all rows under
  ``asyncio.gather`` with an ``asyncio.Semaphore(concurrency)``. Pointing it at the local
  server needs three things the default constructor does not expose: the credential's
  ``authority=`` (and ``connection_verify=`` for the local CA), the request adapter's
  ``base_url``, and ``allowed_hosts`` for the auth provider. The HTTP client is built like
  ``GraphServiceClient``'s default (kiota's ``httpx.AsyncClient(timeout, http2=True)`` per
  client, with msgraph's default middleware), trusting the system store plus the local CA.
  ``--shared-http 1`` shares one such client between all tenants' adapters (an
  optimisation the SDK allows but its docs do not show).
* ``plain-input``: the floor for ``--dry-run``: ``csv.reader`` + ``orjson.dumps`` of a
  five-field ``planned`` line per row to a file.
* ``report-input``: the yardstick of issue 10: ``csv.reader`` + ``orjson.dumps`` of the same
  report dict batchsync writes (its sixteen fields, in its order, ``started_at`` and
  ``finished_at`` from the row's own ``time.time()``, the second formatted once as batchsync
  does), no validation, no duplicate check, no summary.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import csv
import os
import ssl
import sys
import time
from pathlib import Path
from typing import Any

import orjson

_SECRET_ENV = "BENCH_CLIENT_SECRET"  # noqa: S105 - the name of a variable


def _rows(path: Path) -> list[tuple[str, str, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        next(reader)
        return [(r[0], r[1], r[2]) for r in reader]


def _result(start: float, statuses: collections.Counter[str], **extra: Any) -> dict[str, Any]:
    ok = statuses.get("204", 0)
    return {
        "work_s": round(time.perf_counter() - start, 4),
        "rows": sum(statuses.values()),
        "ok": ok,
        "failed": sum(statuses.values()) - ok,
        "statuses": dict(statuses),
        **extra,
    }


# --- bare aiohttp loop and sequential loop --------------------------------------------------


async def _bare(args: argparse.Namespace, secret: str, *, sequential: bool) -> dict[str, Any]:
    import aiohttp

    start = time.perf_counter()
    rows = _rows(args.input)
    if sequential:
        rows = rows[: args.limit_rows]
    ctx = ssl.create_default_context(cafile=args.ca_pem)
    limit = 1 if sequential else args.concurrency
    statuses: collections.Counter[str] = collections.Counter()
    first_error: list[str] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=limit)) as s:

        async def fetch_token(tenant: str) -> str:
            async with s.post(
                f"{args.url}/{tenant}/oauth2/v2.0/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": args.client_id,
                    "client_secret": secret,
                    "scope": f"{args.url}/.default",
                },
            ) as resp:
                body = await resp.json()
                return str(body["access_token"])

        async def sync(tenant: str, connector: str, sync_type: str, token: str) -> None:
            try:
                async with s.post(
                    f"{args.url}/v1.0/deviceManagement/exchangeConnectors/{connector}/sync",
                    json={"syncType": sync_type},
                    headers={"Authorization": f"Bearer {token}"},
                ) as resp:
                    await resp.read()
                    statuses[str(resp.status)] += 1
            except (aiohttp.ClientError, OSError) as exc:
                statuses["error"] += 1
                first_error[:] = first_error or [type(exc).__name__]

        if sequential:
            for tenant, connector, sync_type in rows:
                await sync(tenant, connector, sync_type, await fetch_token(tenant))
        else:
            sem = asyncio.Semaphore(args.concurrency)
            tokens: dict[str, asyncio.Task[str]] = {}

            async def one(tenant: str, connector: str, sync_type: str) -> None:
                async with sem:
                    task = tokens.get(tenant)
                    if task is None:
                        task = tokens[tenant] = asyncio.ensure_future(fetch_token(tenant))
                    await sync(tenant, connector, sync_type, await task)

            await asyncio.gather(*(one(*row) for row in rows))
    return _result(start, statuses, first_error=first_error[0] if first_error else None)


# --- msgraph-sdk-python + azure-identity ------------------------------------------------------


async def _peer(args: argparse.Namespace, secret: str) -> dict[str, Any]:
    import certifi
    import httpx
    from azure.identity.aio import ClientSecretCredential
    from kiota_abstractions.api_error import APIError
    from msgraph.generated.device_management.exchange_connectors.item.sync.sync_post_request_body import (  # noqa: E501
        SyncPostRequestBody,
    )
    from msgraph.generated.models.device_management_exchange_connector_sync_type import (
        DeviceManagementExchangeConnectorSyncType as SyncType,
    )
    from msgraph.graph_request_adapter import GraphRequestAdapter
    from msgraph.graph_request_adapter import options as graph_options
    from msgraph.graph_service_client import GraphServiceClient
    from msgraph_core import GraphClientFactory  # type: ignore[import-untyped]
    from msgraph_core.authentication import (  # type: ignore[import-untyped]
        AzureIdentityAuthenticationProvider,
    )

    start = time.perf_counter()
    rows = _rows(args.input)
    scopes = [f"{args.url}/.default"]
    statuses: collections.Counter[str] = collections.Counter()
    first_error: list[str] = []
    sem = asyncio.Semaphore(args.concurrency)

    def http_client() -> httpx.AsyncClient:
        # KiotaClientFactory.get_default_client() + msgraph's default middleware, trusting
        # the system store (certifi, loaded per client as httpx does) plus the local CA.
        trust = ssl.create_default_context(cafile=certifi.where())
        trust.load_verify_locations(cafile=args.ca_pem)
        http = httpx.AsyncClient(timeout=httpx.Timeout(100, connect=30), http2=True, verify=trust)
        wrapped: httpx.AsyncClient = GraphClientFactory.create_with_default_middleware(
            client=http, options=graph_options
        )
        return wrapped

    shared = http_client() if args.shared_http else None

    def graph_client(
        credential: ClientSecretCredential, http: httpx.AsyncClient
    ) -> GraphServiceClient:
        # GraphServiceClient(credential, scopes), with the three local-server settings.
        auth = AzureIdentityAuthenticationProvider(
            credential, scopes=scopes, allowed_hosts=["127.0.0.1"]
        )
        adapter = GraphRequestAdapter(auth, client=http)
        adapter.base_url = f"{args.url}/v1.0"
        return GraphServiceClient(request_adapter=adapter)

    async def one(tenant: str, connector: str, sync_type: str) -> None:
        async with sem:
            credential = ClientSecretCredential(
                tenant,
                args.client_id,
                secret,
                authority=args.url,
                disable_instance_discovery=True,
                connection_verify=args.ca_pem,
            )
            http = shared or http_client()
            client = graph_client(credential, http)
            try:
                await client.device_management.exchange_connectors.by_device_management_exchange_connector_id(  # noqa: E501
                    connector
                ).sync.post(
                    SyncPostRequestBody(
                        sync_type=SyncType.FullSync
                        if sync_type == "fullSync"
                        else SyncType.DeltaSync
                    )
                )
                statuses["204"] += 1
            except APIError as exc:
                statuses[str(exc.response_status_code)] += 1
                first_error[:] = first_error or [f"APIError {exc.response_status_code}"]
            except Exception as exc:
                statuses["error"] += 1
                first_error[:] = first_error or [f"{type(exc).__name__}: {exc}"[:300]]
            finally:
                await credential.close()
                if shared is None:
                    await http.aclose()

    try:
        await asyncio.gather(*(one(*row) for row in rows))
    finally:
        if shared is not None:
            await shared.aclose()
    return _result(start, statuses, first_error=first_error[0] if first_error else None)


# --- plain input loop ---------------------------------------------------------------------------


def _plain_input(args: argparse.Namespace) -> dict[str, Any]:
    start = time.perf_counter()
    rows = 0
    with (
        open(args.input, encoding="utf-8", newline="") as f,
        open(args.output, "wb") as out,
    ):
        reader = csv.reader(f)
        next(reader)
        dumps, write = orjson.dumps, out.write
        for rows, rec in enumerate(reader, 1):
            write(
                dumps(
                    {
                        "line": rows,
                        "tenant": rec[0],
                        "connector": rec[1],
                        "syncType": rec[2],
                        "status": "planned",
                    }
                )
                + b"\n"
            )
    statuses = collections.Counter({"planned": rows})
    result = _result(start, statuses)
    result["ok"] = rows
    result["failed"] = 0
    return result


def _report_input(args: argparse.Namespace) -> dict[str, Any]:
    """The same report dict as a ``--dry-run`` line, from a plain loop."""
    import datetime as dt

    start = time.perf_counter()
    rows = 0
    utc, clock, fromtimestamp = dt.UTC, time.time, dt.datetime.fromtimestamp
    with (
        open(args.input, encoding="utf-8", newline="") as f,
        open(args.output, "wb") as out,
    ):
        reader = csv.reader(f)
        next(reader)
        dumps, write, option = orjson.dumps, out.write, orjson.OPT_APPEND_NEWLINE
        second, prefix = -1, ""
        for rows, rec in enumerate(reader, 1):
            t = clock()
            if int(t) != second:  # the second formatted once, as batchsync does
                second = int(t)
                prefix = fromtimestamp(second, utc).strftime("%Y-%m-%dT%H:%M:%S.")
            stamp = f"{prefix}{int(t * 1000) % 1000:03d}Z"
            doc = {
                "line": rows,
                "action": "exchange-connector-sync",
                "tenant": rec[0],
                "connector": rec[1],
                "syncType": rec[2],
                "status": "planned",
                "http_status": None,
                "attempts": 0,
                "throttled": 0,
                "error": None,
                "request_id": None,
                "client_request_id": None,
                "started_at": stamp,
                "finished_at": stamp,
                "duration_ms": 0,
            }
            write(dumps(doc, option=option))
    result = _result(start, collections.Counter({"planned": rows}))
    result["ok"] = rows
    result["failed"] = 0
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "kind", choices=["bare", "sequential", "peer", "plain-input", "report-input"]
    )
    parser.add_argument("--input", type=Path, required=True)
    parser.add_argument("--output", type=Path, default=Path(os.devnull))
    parser.add_argument("--url")
    parser.add_argument("--ca-pem")
    parser.add_argument("--client-id")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--limit-rows", type=int, default=100)
    parser.add_argument(
        "--shared-http",
        type=int,
        default=0,
        help="peer: 1 = one httpx client for all tenants (a per-tenant adapter and credential)",
    )
    args = parser.parse_args(argv)
    if args.kind == "plain-input":
        result = _plain_input(args)
    elif args.kind == "report-input":
        result = _report_input(args)
    else:
        secret = os.environ.get(_SECRET_ENV, "")
        if args.kind == "peer":
            result = asyncio.run(_peer(args, secret))
        else:
            result = asyncio.run(_bare(args, secret, sequential=args.kind == "sequential"))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
