"""The installed package version (from the package metadata, like aiolimiter)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("batchsync")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"
