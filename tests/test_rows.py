"""The row schema: sync types, canonical tenants and connectors, the Row factory."""

from __future__ import annotations

import pytest
from _input_support import G1, G2, INJECTIONS

from batchsync._rows import (
    Row,
    SyncType,
    canonical_connector,
    canonical_tenant,
    new_row,
)

# --------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("fullSync", SyncType.FULL),
        ("FULLSYNC", SyncType.FULL),
        (" deltasync ", SyncType.DELTA),
        ("DeltaSync", SyncType.DELTA),
    ],
)
def test_sync_type_parse_is_case_insensitive(text: str, expected: SyncType) -> None:
    """fullSync/deltaSync match in any case and come back canonical."""
    assert SyncType.parse(text) is expected
    assert str(SyncType.parse(text)) == expected.value


@pytest.mark.parametrize("text", ["full", "", "fullSync2", "delta sync", "fullſync"])
def test_sync_type_parse_rejects_others(text: str) -> None:
    """Anything else is a ValueError naming the accepted values."""
    with pytest.raises(ValueError, match="fullSync or deltaSync"):
        SyncType.parse(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (G1.upper(), G1),
        ("{" + G1.upper() + "}", G1),
        ("Contoso.OnMicrosoft.com", "contoso.onmicrosoft.com"),
        ("a-b.example.co.uk", "a-b.example.co.uk"),
        ("xn--caf-dma.com", "xn--caf-dma.com"),
        ("1password.com", "1password.com"),
        ("a" * 63 + ".com", "a" * 63 + ".com"),
    ],
)
def test_canonical_tenant_accepts_guids_and_domains(text: str, expected: str) -> None:
    """A GUID (braces optional) or DNS name is accepted and lower-cased."""
    assert canonical_tenant(text) == expected


@pytest.mark.parametrize("text", INJECTIONS)
def test_canonical_tenant_rejects_anything_that_could_bend_a_url(text: str) -> None:
    """Path, query and fragment characters, encodings, spaces, controls, non-ASCII: rejected."""
    assert canonical_tenant(text) is None


@pytest.mark.parametrize(
    ("text", "expected"), [(G1, G1), (G1.upper(), G1), ("{" + G1 + "}", G1), (G2, G2)]
)
def test_canonical_connector_accepts_guids(text: str, expected: str) -> None:
    """A connector is a GUID in any case, braces optional, written lower-case."""
    assert canonical_connector(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        G1.replace("-", ""),
        "abc",
        G1 + "0",
        "../" + G1,
        G1 + "/sync",
        "{" + G1,
        "urn:uuid:" + G1,
        G1.replace("a", "g"),
        " " + G1 + "x",
        "contoso.com",
    ],
)
def test_canonical_connector_rejects_non_guids(text: str) -> None:
    """Anything but a GUID is not a connector."""
    assert canonical_connector(text) is None


def test_fast_row_factory_builds_the_same_row() -> None:
    """The internal fast constructor makes a Row equal to the dataclass constructor's."""
    extra = {"a": "b"}
    assert new_row(3, "t.com", G1, SyncType.FULL, extra) == Row(
        3, "t.com", G1, SyncType.FULL, extra
    )
    assert Row(3, "t.com", G1, SyncType.FULL).key == ("t.com", G1, "fullSync")
