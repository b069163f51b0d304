"""The package version: one literal, read by the build (hatch's version source) and at run time.

A literal, not ``importlib.metadata.version()``: reading the installed metadata costs ~40 ms
at every start (``batchsync --version``, ``--help``, each completion TAB), and this file is
the single source pyproject.toml takes the version from (httpx does the same).
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
