"""Entra token errors: what they mean and what to do with them.

Rules (graph-notes.md, "Entra errors: what to do with them"):

1. Every classification decision lives here; nothing here does I/O, sleeps or imports MSAL.
2. A definitive OAuth ``error`` decides first: ``temporarily_unavailable`` is retried and
   ``invalid_client`` (a wrong secret or certificate) stops the run. One exception: an
   AADSTS code that names a single tenant's problem (the app missing in *that* tenant,
   an unknown tenant) keeps the failure to that tenant, whatever ``error`` says, so one
   customer's missing consent never stops the other customers.
   ``invalid_grant`` with a code that refuses the refresh token itself
   (``REFRESH_TOKEN_CODES``: Entra does not know it) stops the run too: every tenant
   redeems that one token, so the first refusal speaks for all of them.
3. Then the AADSTS code, from the tables below; HTTP 429 and 5xx are retried.
4. Anything unknown fails that tenant only: stopping the run on a guess would hurt more.

Messages say what happened and what to do, carry the Entra description's first sentence,
and never the raw response (which may echo request data). The sentence is kept whole (up to
``_MAX_KEPT``) and cut to ``_MAX_SENTENCE`` only in ``describe``, after the caller's
redaction: a secret that straddled the cut would otherwise survive as a prefix.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import re
from collections.abc import Callable, Iterable, Mapping

__all__ = [
    "REFRESH_TOKEN_CODES",
    "RETRY_CODES",
    "RUN_STOP_CODES",
    "TENANT_CODES",
    "EntraError",
    "TokenVerdict",
    "classify",
    "describe",
    "entra_error_from_response",
    "entra_error_from_text",
    "first_sentence",
]


class TokenVerdict(enum.StrEnum):
    """What a failed token request means for the run."""

    RUN_STOP = "run-stop"  # nothing can work until a person acts
    TENANT = "tenant"  # fail this tenant's rows, go on with the others
    RETRY = "retry"  # transient: back off and try again


_SIGN_IN_AGAIN = (
    "sign in again with `batchsync login` (or, for unattended runs, set a new "
    "BATCHSYNC_REFRESH_TOKEN)"
)
_CONSENT = "an admin of the tenant must consent to the app"

# code -> (action, what it means and what to do). Codes beyond graph-notes.md's list are
# marked; they only add advice to errors whose ``error`` already classifies them.
RUN_STOP_CODES: Mapping[int, str] = {
    700082: f"the sign-in expired after 90 days without use; {_SIGN_IN_AGAIN}",
    70008: f"the sign-in (refresh token) has expired; {_SIGN_IN_AGAIN}",
    50173: f"the sign-in was revoked (password change or admin revocation); {_SIGN_IN_AGAIN}",
    7000215: (
        "the client secret is wrong; pass the secret's value (not its ID) with "
        "--client-secret or BATCHSYNC_CLIENT_SECRET"
    ),
    7000222: (
        "the client secret has expired; create a new secret in the app registration and "
        "pass it with --client-secret or BATCHSYNC_CLIENT_SECRET"
    ),
    530034: (
        "delegated admin access to customer tenants is blocked for this sign-in; check the "
        "partner tenant's delegated admin (GDAP) settings and sign in again"
    ),
    # Beyond graph-notes.md (these arrive as invalid_client):
    700027: (
        "the certificate's signature was refused; upload this certificate to the app "
        "registration or pass the registered one with --certificate"
    ),
    7000218: (
        "the app needs a client secret or certificate for this flow; enable 'Allow public "
        "client flows' in the app registration, or pass --client-secret / --certificate"
    ),
}

# invalid_grant + code: the refresh token every tenant redeems was refused as such. Alone
# (with another ``error``) such a code may be any malformed request: rule 4 applies then.
REFRESH_TOKEN_CODES: Mapping[int, str] = {
    9002313: (
        "Entra does not know this refresh token (malformed, cut short, or issued to another "
        f"app or cloud); {_SIGN_IN_AGAIN}"
    ),
}

TENANT_CODES: Mapping[int, str] = {
    50076: (
        "the tenant requires multi-factor authentication for this sign-in; sign in with MFA "
        "(`batchsync login`) or ask the tenant's admin about its conditional access"
    ),
    50079: (
        "the tenant requires the account to register for multi-factor authentication; "
        "complete MFA registration, then sign in again"
    ),
    53003: "the tenant's conditional access policies blocked the sign-in; ask its admin",
    65001: f"the app has not been consented in this tenant; {_CONSENT}",
    90099: (
        "the app has not been authorized in this tenant (no partner consent); "
        f"{_CONSENT} or grant it through the GDAP relationship"
    ),
    500011: (
        "Microsoft Graph is not available to the app in this tenant (missing service "
        f"principal or another cloud's tenant); {_CONSENT}, or check --cloud"
    ),
    700016: f"the app is not registered or not consented in this tenant; {_CONSENT}",
    50020: (
        "the signed-in account has no access to this tenant; give it a GDAP relationship "
        "with the customer (e.g. Intune Administrator) or use an account of the tenant"
    ),
    50034: (
        "the signed-in account does not exist in this tenant; check the GDAP relationship "
        "with the customer"
    ),
    50177: (
        "the signed-in account is not a member of this tenant (no GDAP relationship); "
        "check the GDAP relationship with the customer"
    ),
    90002: "the tenant was not found; check the tenant ID or domain (and --cloud)",
    90038: "the tenant belongs to another national cloud; pass the matching --cloud",
}

RETRY_CODES: Mapping[int, str] = {
    50033: "Entra had a transient error",
    50087: "Entra had a transient sign-in error",
    90006: "Entra had a transient error",
    90024: "Entra had a transient error",
    90033: "Entra had a transient error",
    90055: "Entra is throttling token requests",
    90090: "Entra had a transient error",
    650051: "consent is still being applied",
}

_RETRY_ERRORS = frozenset({"temporarily_unavailable"})
_RUN_STOP_ERRORS: Mapping[str, str] = {
    "invalid_client": (
        "the client credentials were refused; check --client-id and the client secret or "
        "certificate"
    ),
}
_TRANSIENT_HINT = "Entra kept failing for a transient reason; try again later"
_MAX_SENTENCE = 240  # what a message shows of Entra's sentence
_MAX_KEPT = 4096  # what an EntraError keeps of it, for redaction before the cut
_CODE_RE = re.compile(r"AADSTS(\d{4,9})")
_SENTENCE_END_RE = re.compile(r"(?<=[.!?])\s")


@dataclasses.dataclass(frozen=True, slots=True)
class EntraError:
    """The parts of an Entra error response batchsync keeps (never the raw body)."""

    error: str | None = None  # OAuth error, e.g. "invalid_grant"
    codes: tuple[int, ...] = ()  # from ``error_codes``, else from "AADSTSnnnn" in the text
    # First sentence of ``error_description`` without "AADSTSnnnn: ", uncut (``describe`` cuts).
    description: str = dataclasses.field(default="", repr=False)
    status: int | None = None  # HTTP status when known (MSAL hides it for 4xx)

    @property
    def code(self) -> str | None:
        """The report's ``error.code``: ``AADSTS700016``, else the OAuth error, else None."""
        if self.codes:
            return f"AADSTS{self.codes[0]}"
        return self.error


def first_sentence(text: str, *, limit: int = _MAX_SENTENCE) -> str:
    """The first sentence of an Entra description, without its code and trace lines."""
    text = text.strip()
    text = re.sub(r"^AADSTS\d+:\s*", "", text)
    text = re.split(r"[\r\n]|Trace ID:|Correlation ID:|Timestamp:", text, maxsplit=1)[0]
    text = _SENTENCE_END_RE.split(text.strip(), maxsplit=1)[0].strip()
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def _int_codes(value: object) -> tuple[int, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(v for v in value if isinstance(v, int) and not isinstance(v, bool))


def entra_error_from_response(
    body: Mapping[str, object], *, status: int | None = None
) -> EntraError:
    """Keep ``error``, ``error_codes`` and the description's first sentence of a response."""
    error = body.get("error")
    description = body.get("error_description")
    desc = description if isinstance(description, str) else ""
    codes = _int_codes(body.get("error_codes")) or tuple(int(m) for m in _CODE_RE.findall(desc)[:1])
    return EntraError(
        error=error if isinstance(error, str) and error else None,
        codes=codes,
        description=first_sentence(desc, limit=_MAX_KEPT) if desc else "",
        status=status,
    )


def _json_objects(text: str) -> Iterable[Mapping[str, object]]:
    """JSON objects embedded in ``text`` (MSAL puts a response body inside its messages)."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            value, _ = decoder.raw_decode(text, start)
        except ValueError:
            value = None
        if isinstance(value, dict):
            yield value
        start = text.find("{", start + 1)


def entra_error_from_text(text: str, *, status: int | None = None) -> EntraError | None:
    """An Entra error found in an exception's text: a JSON body, else an AADSTS code."""
    for obj in _json_objects(text):
        if "error" in obj or "error_codes" in obj:
            return entra_error_from_response(obj, status=status)
    match = _CODE_RE.search(text)
    if match is None:
        return None
    return EntraError(
        codes=(int(match.group(1)),),
        description=first_sentence(text[match.start() :], limit=_MAX_KEPT),
        status=status,
    )


def classify(err: EntraError) -> TokenVerdict:
    """RUN_STOP, TENANT or RETRY for one failed token request (rules in the module doc)."""
    if err.error in _RETRY_ERRORS:
        return TokenVerdict.RETRY
    if any(code in TENANT_CODES for code in err.codes):
        return TokenVerdict.TENANT
    if err.error in _RUN_STOP_ERRORS:
        return TokenVerdict.RUN_STOP
    if err.error == "invalid_grant" and any(code in REFRESH_TOKEN_CODES for code in err.codes):
        return TokenVerdict.RUN_STOP
    for code in err.codes:
        if code in RUN_STOP_CODES:
            return TokenVerdict.RUN_STOP
        if code in RETRY_CODES:
            return TokenVerdict.RETRY
    if err.status is not None and (err.status == 429 or err.status >= 500):
        return TokenVerdict.RETRY
    return TokenVerdict.TENANT


def _advice(err: EntraError, action: TokenVerdict) -> str:
    if err.error == "invalid_grant":
        for code in err.codes:
            if code in REFRESH_TOKEN_CODES:
                return REFRESH_TOKEN_CODES[code]
    for code in err.codes:
        for table in (RUN_STOP_CODES, TENANT_CODES, RETRY_CODES):
            if code in table:
                advice = table[code]
                return f"{advice}; {_TRANSIENT_HINT}" if action is TokenVerdict.RETRY else advice
    if err.error is not None and err.error in _RUN_STOP_ERRORS:
        return _RUN_STOP_ERRORS[err.error]
    if action is TokenVerdict.RETRY:
        return _TRANSIENT_HINT
    return "check the tenant and the app's permissions in it"


def describe(
    err: EntraError,
    *,
    tenant: str,
    attempts: int = 1,
    failed: str = "token failed",
    redact: Callable[[str], str] | None = None,
) -> str:
    """``tenant 'x': token failed (AADSTS700016): <Entra's sentence>; <what to do>``; the
    HTTP status too when it was a 429 or 5xx (``(AADSTS90033, HTTP 503)``).

    Entra's sentence is passed through ``redact`` first, then cut to ``_MAX_SENTENCE``.
    """
    action = classify(err)
    status = (
        err.status if err.status is not None and (err.status == 429 or err.status >= 500) else None
    )
    parts_code = [p for p in (err.code, f"HTTP {status}" if status else None) if p]
    code = f" ({', '.join(parts_code)})" if parts_code else ""
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    sentence = redact(err.description) if redact is not None else err.description
    if len(sentence) > _MAX_SENTENCE:
        sentence = sentence[: _MAX_SENTENCE - 1].rstrip() + "…"
    parts = [p for p in (sentence.rstrip("."), _advice(err, action)) if p]
    return f"tenant '{tenant}': {failed}{code}{tries}: " + "; ".join(parts)
