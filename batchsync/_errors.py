"""The exception tree and the closed set of error kinds.

::

    BatchsyncError                 exit_code 1
    ├── ConfigError                exit_code 2  bad option, missing account, untrusted endpoint
    ├── InputError                 exit_code 2  the input as a whole cannot be read (missing column)
    ├── ReportWriteError           exit_code 1  the report cannot be written (disk full, pipe)
    ├── AuthError                  kind auth    a token could not be had
    │   └── RunStoppingAuthError   exit_code 1  nothing can work until a person acts
    └── GraphError                 kind http    Graph answered with an error
        └── ThrottledError         kind throttled

Row failures are not raised to the user: the engine turns them into report lines. Only
run-stopping failures and configuration problems escape to the CLI, which maps
``exit_code`` to the process exit status. ``GraphError`` and ``ThrottledError`` are what
``Outcome.raise_for_error()`` raises for a library caller who prefers exceptions.

``ReportError`` is the one problem value: a report line's ``error`` (kind, code, message);
an input row's refusal, a row's give-up and a tenant's failure all carry one.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import ClassVar

__all__ = [
    "AuthError",
    "BatchsyncError",
    "ConfigError",
    "ErrorKind",
    "GraphError",
    "InputError",
    "ReportError",
    "ReportWriteError",
    "RunStoppingAuthError",
    "ThrottledError",
]


class ErrorKind(enum.StrEnum):
    """The ``error.kind`` of a report line (fixed by the contract)."""

    AUTH = "auth"
    THROTTLED = "throttled"
    HTTP = "http"
    NETWORK = "network"
    TIMEOUT = "timeout"
    INPUT = "input"
    DUPLICATE = "duplicate"
    INTERRUPTED = "interrupted"


@dataclasses.dataclass(frozen=True, slots=True)
class ReportError:
    """A problem as a report line states it: ``{"kind", "code", "message"}``.

    ``code`` is Graph's error code, Entra's ``AADSTSnnnn`` or batchsync's own (``bad_tenant``,
    ``duplicate``...); the message says what happened and what to do.
    """

    kind: ErrorKind
    code: str | None
    message: str


class BatchsyncError(Exception):
    """Base of every error batchsync raises on purpose."""

    exit_code: ClassVar[int] = 1
    kind: ClassVar[ErrorKind | None] = None

    def __init__(self, message: str, *, code: str | None = None, tenant: str | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.tenant = tenant

    def report_error(self) -> ReportError:
        """This error as the ``error`` of the report lines it ends (kind ``http`` if none)."""
        return ReportError(self.kind or ErrorKind.HTTP, self.code, self.message)


class ConfigError(BatchsyncError):
    """A usage or configuration error found before any row was sent."""

    exit_code = 2


class InputError(BatchsyncError):
    """The input cannot be read at all (single bad rows become ``invalid`` lines instead)."""

    exit_code = 2
    kind = ErrorKind.INPUT


class ReportWriteError(BatchsyncError):
    """The report cannot be written any more; the run stops (rows not reported can resume)."""


class AuthError(BatchsyncError):
    """A tenant's token could not be acquired; fails that tenant's rows."""

    kind = ErrorKind.AUTH


class RunStoppingAuthError(AuthError):
    """An auth failure that dooms every tenant (expired sign-in, wrong client secret)."""


class GraphError(BatchsyncError):
    """Graph answered a request with an error status."""

    kind = ErrorKind.HTTP

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        tenant: str | None = None,
        status: int | None = None,
    ):
        super().__init__(message, code=code, tenant=tenant)
        self.status = status


class ThrottledError(GraphError):
    """Graph kept answering 429 (or 503/504 with Retry-After) past the limits."""

    kind = ErrorKind.THROTTLED
