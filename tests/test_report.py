"""Report lines: shape, whole-line writes, resume keys, refusing to clobber a report."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchsync._errors import (
    AuthError,
    BatchsyncError,
    ConfigError,
    ErrorKind,
    GraphError,
    InputError,
    ThrottledError,
)
from batchsync._filters import read_resume_keys, resume_key
from batchsync._report import (
    Outcome,
    ReportError,
    ReportWriter,
    Status,
    encode_outcome,
    rfc3339,
    settled_outcome,
)
from batchsync.actions import DEFAULT_ACTION

FIELDS = {
    "tenant": "contoso.onmicrosoft.com",
    "connector": "a2701597-be3f-59c6-9697-3e92078e447e",
    "syncType": "fullSync",
}
CONTRACT_KEYS = [
    "line",
    "tenant",
    "connector",
    "syncType",
    "status",
    "http_status",
    "attempts",
    "throttled",
    "error",
    "request_id",
    "client_request_id",
    "started_at",
    "finished_at",
    "duration_ms",
]


def _outcome(status: Status = Status.OK, **kw: object) -> Outcome:
    base: dict[str, object] = {
        "line": 3,
        "fields": FIELDS,
        "status": status,
        "http_status": 204,
        "attempts": 2,
        "throttled": 1,
        "request_id": "rid",
        "client_request_id": "crid",
        "started_at": 1_800_000_000.0,
        "finished_at": 1_800_000_000.25,
    }
    base.update(kw)
    return Outcome(**base)  # type: ignore[arg-type]


def test_line_has_every_contract_field_in_order() -> None:
    """A report line carries the contract's fields, in a stable order, and ends in a newline."""
    line = encode_outcome(_outcome())
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    doc = orjson.loads(line)
    assert list(doc) == CONTRACT_KEYS
    assert doc["status"] == "ok"
    assert doc["duration_ms"] == 250
    assert doc["started_at"] == "2027-01-15T08:00:00.000Z"
    assert doc["error"] is None


def test_error_object_and_extra() -> None:
    """A failed line carries error {kind, code, message}; extra appears only when kept."""
    out = _outcome(
        Status.FAILED,
        error=ReportError(ErrorKind.AUTH, "AADSTS700016", "not consented"),
        extra={"Customer": "Contoso"},
    )
    doc = orjson.loads(encode_outcome(out))
    assert doc["error"] == {"kind": "auth", "code": "AADSTS700016", "message": "not consented"}
    assert doc["extra"] == {"Customer": "Contoso"}
    assert "extra" not in orjson.loads(encode_outcome(_outcome()))


def test_rfc3339_is_utc_with_millis() -> None:
    """Timestamps are RFC 3339 in UTC with a Z suffix."""
    assert rfc3339(0.5) == "1970-01-01T00:00:00.500Z"


def test_rfc3339_repeats_and_alternates_exactly() -> None:
    """The kept stamp and second never leak into another time's stamp."""
    times = [1_800_000_000.25, 1_800_000_000.25, 1_800_000_001.0, 0.0, 1_800_000_000.25, 0.0]
    assert [rfc3339(t) for t in times] == [
        "2027-01-15T08:00:00.250Z",
        "2027-01-15T08:00:00.250Z",
        "2027-01-15T08:00:01.000Z",
        "1970-01-01T00:00:00.000Z",
        "2027-01-15T08:00:00.250Z",
        "1970-01-01T00:00:00.000Z",
    ]


@pytest.mark.parametrize(
    "error", [None, ReportError(ErrorKind.DUPLICATE, "duplicate", "duplicate of line 2")]
)
def test_settled_outcome_is_the_same_object_as_outcome(error: ReportError | None) -> None:
    """The fast constructor of rows settled where they are read builds an equal Outcome,
    and its line is the same bytes."""
    extra = {"Customer": "Contoso"}
    fast = settled_outcome(7, FIELDS, Status.SKIPPED, error, 1_800_000_000.5, extra)
    slow = Outcome(
        line=7,
        fields=FIELDS,
        status=Status.SKIPPED,
        error=error,
        started_at=1_800_000_000.5,
        finished_at=1_800_000_000.5,
        extra=extra,
    )
    assert fast == slow
    assert encode_outcome(fast) == encode_outcome(slow)


@given(st.floats(min_value=0, max_value=4e9))
def test_rfc3339_matches_datetime(epoch: float) -> None:
    """The cached-second formatting equals datetime's own, to the millisecond."""
    stamp = dt.datetime.fromtimestamp(epoch, tz=dt.UTC)
    want = stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"
    assert rfc3339(epoch) == want


def test_refuses_to_overwrite_existing_report(tmp_path: Path) -> None:
    """An existing report without --resume or --overwrite is refused, naming both options."""
    path = tmp_path / "r.jsonl"
    path.write_bytes(encode_outcome(_outcome()))
    with pytest.raises(ConfigError, match=r"--resume.*--overwrite"):
        ReportWriter.open_path(str(path), resume=False, overwrite=False)


def test_overwrite_truncates(tmp_path: Path) -> None:
    """--overwrite replaces the old report."""
    path = tmp_path / "r.jsonl"
    path.write_bytes(b"old\n" * 10)
    writer = ReportWriter.open_path(str(path), resume=False, overwrite=True)
    writer.write(_outcome())
    writer.close()
    assert path.read_bytes() == encode_outcome(_outcome())


def test_resume_appends_and_cuts_torn_tail(tmp_path: Path) -> None:
    """--resume cuts a torn last line off before appending, so the report stays valid JSONL."""
    path = tmp_path / "r.jsonl"
    whole = encode_outcome(_outcome())
    path.write_bytes(whole + b'{"line": 4, "tena')
    done, count = read_resume_keys(str(path), unnamed_action=DEFAULT_ACTION)
    assert count == 1
    assert (
        resume_key(
            DEFAULT_ACTION, "Contoso.onmicrosoft.com", FIELDS["connector"].upper(), "fullSync"
        )
        in done
    )
    writer = ReportWriter.open_path(str(path), resume=True, overwrite=False)
    writer.write(_outcome(line=5))
    writer.close()
    lines = path.read_bytes().splitlines()
    assert len(lines) == 2
    assert [orjson.loads(x)["line"] for x in lines] == [3, 5]


@pytest.fixture
def append_only(tmp_path: Path) -> Iterator[Path]:
    """A report file with the append-only attribute (chattr +a), removed afterwards."""
    path = tmp_path / "r.jsonl"
    path.write_bytes(encode_outcome(_outcome()) + b'{"line": 4, "tena')
    if shutil.which("chattr") is None:
        pytest.skip("needs chattr")
    if subprocess.run(["chattr", "+a", str(path)], capture_output=True, check=False).returncode:
        pytest.skip("chattr +a needs root and a filesystem that supports it")
    try:
        yield path
    finally:
        subprocess.run(["chattr", "-a", str(path)], check=False)


def test_resume_on_append_only_torn_report_is_a_config_error(append_only: Path) -> None:
    """--resume on an append-only report whose torn tail cannot be cut: ConfigError (exit 2)
    naming the file and what to do, the report untouched."""
    before = append_only.read_bytes()
    with pytest.raises(ConfigError, match="torn line") as info:
        ReportWriter.open_path(str(append_only), resume=True, overwrite=False)
    assert str(append_only) in info.value.message
    assert "chattr -a" in info.value.message
    assert append_only.read_bytes() == before


def test_writer_uses_one_write_per_line(tmp_path: Path) -> None:
    """Lines reach the file whole even when the descriptor is shared (append mode)."""
    path = tmp_path / "r.jsonl"
    a = ReportWriter.open_path(str(path), resume=False, overwrite=False)
    fd = os.open(str(path), os.O_WRONLY | os.O_APPEND)
    b = ReportWriter(fd, name="second", owns_fd=True)
    for i in range(200):
        (a if i % 2 else b).write(_outcome(line=i))
    a.close()
    b.close()
    lines = path.read_bytes().splitlines()
    assert sorted(orjson.loads(x)["line"] for x in lines) == list(range(200))
    assert "lines_written=100" in repr(a)


@pytest.mark.parametrize(
    ("kind", "status", "expected"),
    [
        (ErrorKind.AUTH, None, AuthError),
        (ErrorKind.THROTTLED, 429, ThrottledError),
        (ErrorKind.HTTP, 403, GraphError),
        (ErrorKind.INPUT, None, InputError),
        (ErrorKind.TIMEOUT, None, BatchsyncError),
    ],
)
def test_raise_for_error_raises_the_matching_error(
    kind: ErrorKind, status: int | None, expected: type[BatchsyncError]
) -> None:
    """A failed row raises its error as the exception of its kind, with code and tenant."""
    outcome = Outcome(
        line=1,
        fields=FIELDS,
        status=Status.FAILED,
        http_status=status,
        error=ReportError(kind, "Code", "what happened; what to do"),
    )
    with pytest.raises(expected, match="what to do") as info:
        outcome.raise_for_error()
    assert type(info.value) is expected
    assert info.value.code == "Code"
    assert info.value.tenant == FIELDS["tenant"]
    if isinstance(info.value, GraphError):
        assert info.value.status == status


@pytest.mark.parametrize("status", [Status.OK, Status.SKIPPED, Status.PLANNED])
def test_raise_for_error_is_quiet_for_rows_that_did_not_fail(status: Status) -> None:
    """ok, skipped and planned rows raise nothing, even with an error attached (a duplicate)."""
    error = ReportError(ErrorKind.DUPLICATE, "duplicate", "duplicate of line 1")
    Outcome(line=2, fields=FIELDS, status=status, error=error).raise_for_error()


def test_resume_reads_a_crafted_report_without_crashing(tmp_path: Path) -> None:
    """--resume of a report anyone could have shaped (nesting past orjson's limits, a 2 MiB
    line, names that are not text) counts only its real ok lines and never raises."""
    deep = "[" * 3000 + "]" * 3000
    ok = encode_outcome(_outcome())
    lines = [
        b'{"status": "ok", "tenant": ' + deep.encode() + b"}\n",
        b'{"status": "ok", "tenant": ["a"], "connector": {}, "syncType": 1}\n',
        b'{"status": "ok", "extra": ' + ("[" * 1000 + "]" * 1000).encode() + b"}\n",
        b'{"status": "ok", "tenant": "' + b"x" * (2 << 20) + b'"}\n',
        b"\xff\xfe\x00 not text\n",
        ok,
    ]
    path = tmp_path / "r.jsonl"
    path.write_bytes(b"".join(lines))
    done, count = read_resume_keys(str(path), unnamed_action=DEFAULT_ACTION)
    key = resume_key(DEFAULT_ACTION, FIELDS["tenant"], FIELDS["connector"], FIELDS["syncType"])
    assert done == {key}
    assert count == len(lines)


@pytest.mark.parametrize(("resume", "overwrite"), [(False, True), (True, False), (False, False)])
def test_report_is_never_written_through_a_link_to_a_file(
    tmp_path: Path, resume: bool, overwrite: bool
) -> None:
    """A report path that is a symbolic link to a file is refused in one line: --overwrite
    no longer truncates the link's target, --resume no longer cuts and appends to it."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious, with a torn last line")
    link = tmp_path / "report.jsonl"
    link.symlink_to(victim)
    with pytest.raises(ConfigError, match="symbolic link to a file") as info:
        ReportWriter.open_path(str(link), resume=resume, overwrite=overwrite)
    assert "\n" not in info.value.message
    assert victim.read_bytes() == b"precious, with a torn last line"


def test_report_through_a_link_to_a_device_or_pipe_works(tmp_path: Path) -> None:
    """A link to something that is not a file (/dev/null here, /dev/stdout or a >(...) pipe
    in a shell) is written through: nothing there can be truncated."""
    link = tmp_path / "report.jsonl"
    link.symlink_to(os.devnull)
    writer = ReportWriter.open_path(str(link), resume=False, overwrite=True)
    writer.write(_outcome())
    writer.close()
    assert link.is_symlink()
