"""Helpers shared by the CLI tests of discover, --check, the summary, shards and the schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

# Every variable that could point a CLI run elsewhere than the test's simulator.
PROXY_VARS = (
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "https_proxy",
    "http_proxy",
    "all_proxy",
    "no_proxy",
)
ENV_NAMES = (
    "BATCHSYNC_GRAPH_URL",
    "BATCHSYNC_AUTHORITY_HOST",
    "BATCHSYNC_CA_BUNDLE",
    "BATCHSYNC_CLIENT_ID",
    "BATCHSYNC_REFRESH_TOKEN",
    "BATCHSYNC_CLIENT_SECRET",
    "BATCHSYNC_CLIENT_CERTIFICATE_PATH",
    "BATCHSYNC_CLIENT_CERTIFICATE_PASSWORD",
    "BATCHSYNC_ACCOUNT",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "BATCHSYNC_TOKEN_CACHE",
    *PROXY_VARS,
)

# Pace options that keep CLI tests fast against the simulator.
FAST = ["--tenant-rate", "1000/1", "--timeout", "5"]


def scrub_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No batchsync or Azure variable of the developer's shell leaks into a test."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BATCHSYNC_TOKEN_CACHE", str(tmp_path / "token-cache.json"))


def json_lines(text: str | bytes) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL text (blank lines ignored)."""
    raw = text.encode() if isinstance(text, str) else text
    return [orjson.loads(line) for line in raw.splitlines() if line.strip()]
