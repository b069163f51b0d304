"""batchsync: run one Microsoft Graph action across many Microsoft 365 tenants.

The command line (``batchsync run``) is the main way in; this package also exposes the same
engine to Python code: ``batchsync.run(rows, settings)`` yields one ``Outcome`` per row, and
``run_batch(RunConfig(...))`` is exactly what the CLI runs.
"""

from __future__ import annotations

from ._api import Settings, run
from ._auth import AccessToken, AuthMode, AuthSettings, TokenProvider
from ._clouds import CloudName, Endpoints, resolve_endpoints
from ._engine import EngineSettings
from ._errors import (
    AuthError,
    BatchsyncError,
    ConfigError,
    ErrorKind,
    GraphError,
    InputError,
    ReportWriteError,
    RunStoppingAuthError,
    ThrottledError,
)
from ._pacing import RetryPolicy, TenantRate
from ._report import Outcome, ReportError, Status
from ._rows import InputFormat, Rejected, Row, SyncType
from ._runner import RunConfig, run_batch
from ._summary import RunStats
from ._version import __version__

__all__ = [
    "AccessToken",
    "AuthError",
    "AuthMode",
    "AuthSettings",
    "BatchsyncError",
    "CloudName",
    "ConfigError",
    "Endpoints",
    "EngineSettings",
    "ErrorKind",
    "GraphError",
    "InputError",
    "InputFormat",
    "Outcome",
    "Rejected",
    "ReportError",
    "ReportWriteError",
    "RetryPolicy",
    "Row",
    "RunConfig",
    "RunStats",
    "RunStoppingAuthError",
    "Settings",
    "Status",
    "SyncType",
    "TenantRate",
    "ThrottledError",
    "TokenProvider",
    "__version__",
    "resolve_endpoints",
    "run",
    "run_batch",
]
