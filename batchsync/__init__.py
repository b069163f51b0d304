"""batchsync: run one Microsoft Graph action across many Microsoft 365 tenants.

The command line (``batchsync run``) is the main way in; this package also exposes the same
engine to Python code: ``batchsync.run(rows, settings)`` yields one ``Outcome`` per row, and
``run_batch(RunConfig(...))`` is exactly what the CLI runs.

Names load on first use (PEP 562): ``import batchsync`` costs nothing until a name is used,
so ``batchsync --version`` and ``--help`` never load aiohttp or MSAL.
"""

from __future__ import annotations

# Nothing else is imported here, not even typing or the version: the
# console script (``__main__``) installs its signal handlers right after this module has run.
from ._lazy import lazy_exports

TYPE_CHECKING = False
if TYPE_CHECKING:
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
        ReportError,
        ReportWriteError,
        RunStoppingAuthError,
        ThrottledError,
    )
    from ._pacing import RetryPolicy, TenantRate
    from ._report import Outcome, Status
    from ._rows import InputFormat, Rejected, Row, SyncType
    from ._runner import RunConfig, run_batch
    from ._summary import RunStats
    from ._version import __version__

_HOME = {
    "AccessToken": "_auth",
    "AuthError": "_errors",
    "AuthMode": "_auth",
    "AuthSettings": "_auth",
    "BatchsyncError": "_errors",
    "CloudName": "_clouds",
    "ConfigError": "_errors",
    "Endpoints": "_clouds",
    "EngineSettings": "_engine",
    "ErrorKind": "_errors",
    "GraphError": "_errors",
    "InputError": "_errors",
    "InputFormat": "_rows",
    "Outcome": "_report",
    "Rejected": "_rows",
    "ReportError": "_errors",
    "ReportWriteError": "_errors",
    "RetryPolicy": "_pacing",
    "Row": "_rows",
    "RunConfig": "_runner",
    "RunStats": "_summary",
    "RunStoppingAuthError": "_errors",
    "Settings": "_api",
    "Status": "_report",
    "SyncType": "_rows",
    "TenantRate": "_pacing",
    "ThrottledError": "_errors",
    "TokenProvider": "_auth",
    "__version__": "_version",
    "resolve_endpoints": "_clouds",
    "run": "_api",
    "run_batch": "_runner",
}

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

__getattr__, __dir__ = lazy_exports(__name__, _HOME, globals())
