"""The public API is pinned: changing it is a decision, not an accident."""

from __future__ import annotations

import batchsync

EXPECTED = [
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


def test_public_names_are_pinned() -> None:
    """batchsync exports exactly the pinned names, and each one exists."""
    assert sorted(batchsync.__all__) == sorted(EXPECTED)
    for name in EXPECTED:
        assert hasattr(batchsync, name), name


def test_private_modules_declare_all() -> None:
    """Every private module declares __all__ (what it offers to the rest of the package)."""
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(batchsync.__path__):
        if info.name.startswith("_") and info.name != "__main__":
            module = importlib.import_module(f"batchsync.{info.name}")
            assert hasattr(module, "__all__"), info.name


def test_lazy_packages_resolve_every_name() -> None:
    """batchsync and batchsync._auth load names on first use; every exported name resolves."""
    import batchsync._auth

    for package in (batchsync, batchsync._auth):
        for name in package.__all__:
            assert getattr(package, name) is not None, (package.__name__, name)
        assert set(package.__all__) <= set(dir(package))
