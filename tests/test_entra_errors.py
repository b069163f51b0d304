"""Classification of Entra token errors (pure: no MSAL, no network)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchsync._auth._entra_errors import (
    RETRY_CODES,
    RUN_STOP_CODES,
    TENANT_CODES,
    EntraError,
    TokenVerdict,
    classify,
    describe,
    entra_error_from_response,
    entra_error_from_text,
    first_sentence,
)

# graph-notes.md, "Entra errors: what to do with them", copied as the spec.
NOTES_RUN_STOP = (700082, 70008, 50173, 7000215, 7000222, 530034)
NOTES_TENANT = (
    50076,
    50079,
    53003,
    65001,
    90099,
    500011,
    700016,
    50020,
    50034,
    50177,
    90002,
    90038,
)
NOTES_RETRY = (50033, 50087, 90006, 90024, 90033, 90055, 90090, 650051)

_ERROR_OF = {  # the OAuth error real Entra sends with some codes
    7000215: "invalid_client",
    7000222: "invalid_client",
    700016: "unauthorized_client",
    90002: "invalid_tenant",
    50076: "interaction_required",
}


def _body(
    code: int, error: str | None = None, text: str = "Something happened."
) -> dict[str, object]:
    return {
        "error": error or _ERROR_OF.get(code, "invalid_grant"),
        "error_description": f"AADSTS{code}: {text} More words here.\r\nTrace ID: abc\r\n"
        "Correlation ID: def\r\nTimestamp: 2025-01-01 00:00:00Z",
        "error_codes": [code],
        "trace_id": "abc",
    }


@pytest.mark.parametrize(
    ("code", "action"),
    [(c, TokenVerdict.RUN_STOP) for c in NOTES_RUN_STOP]
    + [(c, TokenVerdict.TENANT) for c in NOTES_TENANT]
    + [(c, TokenVerdict.RETRY) for c in NOTES_RETRY],
)
def test_graph_notes_codes(code: int, action: TokenVerdict) -> None:
    """Every code of graph-notes.md maps to its class."""
    assert classify(entra_error_from_response(_body(code))) is action


def test_tables_cover_graph_notes() -> None:
    """The code tables hold every code graph-notes.md lists, each in one table only."""
    assert set(NOTES_RUN_STOP) <= set(RUN_STOP_CODES)
    assert set(NOTES_TENANT) <= set(TENANT_CODES)
    assert set(NOTES_RETRY) <= set(RETRY_CODES)
    assert not set(RUN_STOP_CODES) & set(TENANT_CODES)
    assert not set(RUN_STOP_CODES) & set(RETRY_CODES)
    assert not set(TENANT_CODES) & set(RETRY_CODES)


@pytest.mark.parametrize("code", [1, 50000, 70011, 9002313, 123456789])
def test_unknown_codes_fail_the_tenant(code: int) -> None:
    """An unknown code fails that tenant only."""
    assert (
        classify(entra_error_from_response(_body(code, "invalid_request"))) is TokenVerdict.TENANT
    )


def test_refresh_token_entra_does_not_know_stops_the_run() -> None:
    """``invalid_grant`` AADSTS9002313 refuses the refresh token every tenant shares: the run
    stops, pointing at BATCHSYNC_REFRESH_TOKEN and `batchsync login`; an ``invalid_grant``
    with a tenant's code still fails that tenant only."""
    refused = entra_error_from_response(_body(9002313, "invalid_grant"))
    assert classify(refused) is TokenVerdict.RUN_STOP
    text = describe(refused, tenant="t")
    assert "BATCHSYNC_REFRESH_TOKEN" in text
    assert "batchsync login" in text
    for code in (50020, 53003, 65001, 90099):
        assert classify(entra_error_from_response(_body(code, "invalid_grant"))) is (
            TokenVerdict.TENANT
        )


def test_temporarily_unavailable_is_retried_whatever_the_code() -> None:
    """``temporarily_unavailable`` is retried, even with an unknown code or none."""
    assert classify(EntraError(error="temporarily_unavailable")) is TokenVerdict.RETRY
    assert classify(EntraError(error="temporarily_unavailable", codes=(123,))) is TokenVerdict.RETRY


def test_invalid_client_stops_the_run() -> None:
    """``invalid_client`` (wrong secret or certificate) stops the run, code or not."""
    assert classify(EntraError(error="invalid_client")) is TokenVerdict.RUN_STOP
    assert classify(EntraError(error="invalid_client", codes=(700027,))) is TokenVerdict.RUN_STOP


def test_tenant_code_beats_invalid_client() -> None:
    """An app missing in one tenant stays that tenant's failure even as invalid_client."""
    assert classify(EntraError(error="invalid_client", codes=(700016,))) is TokenVerdict.TENANT


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_http_429_and_5xx_are_retried(status: int) -> None:
    """An unknown error with HTTP 429 or 5xx is retried."""
    assert classify(EntraError(error="server_error", status=status)) is TokenVerdict.RETRY


def test_http_400_unknown_fails_tenant() -> None:
    """An unknown error with HTTP 400 is not retried."""
    assert classify(EntraError(error="invalid_request", status=400)) is TokenVerdict.TENANT


def test_parse_keeps_first_sentence_and_code() -> None:
    """The parsed error keeps ``error``, the codes and the description's first sentence."""
    err = entra_error_from_response(_body(700016, text="Application 'x' was not found."))
    assert err.error == "unauthorized_client"
    assert err.codes == (700016,)
    assert err.code == "AADSTS700016"
    assert err.description == "Application 'x' was not found."


def test_parse_code_from_description_when_no_error_codes() -> None:
    """Without ``error_codes`` the AADSTS code is read from the description."""
    err = entra_error_from_response(
        {"error": "invalid_grant", "error_description": "AADSTS70008: Expired. Sign in."}
    )
    assert err.codes == (70008,)
    assert classify(err) is TokenVerdict.RUN_STOP


def test_code_falls_back_to_error() -> None:
    """Without an AADSTS code the report code is the OAuth error."""
    assert EntraError(error="invalid_request").code == "invalid_request"
    assert EntraError().code is None


def test_first_sentence_strips_trace_lines() -> None:
    """Trace, correlation and timestamp lines never reach the message."""
    text = "AADSTS90002: Tenant 'x' not found.\r\nTrace ID: 1\r\nCorrelation ID: 2"
    assert first_sentence(text) == "Tenant 'x' not found."


def test_first_sentence_is_bounded() -> None:
    """A long description is cut to a bounded length."""
    assert len(first_sentence("word " * 500)) <= 240


def test_error_from_text_with_embedded_json() -> None:
    """MSAL's discovery ValueError text yields the embedded Entra body."""
    body = json.dumps(_body(90002, "invalid_tenant", "Tenant 'nope' not found."))
    text = (
        f"OIDC Discovery failed on https://h/nope/v2.0/.well-known. HTTP status: 400, Error: {body}"
    )
    err = entra_error_from_text(text, status=400)
    assert err is not None
    assert err.codes == (90002,)
    assert err.error == "invalid_tenant"
    assert err.description == "Tenant 'nope' not found."
    assert classify(err) is TokenVerdict.TENANT


def test_error_from_text_with_bare_code() -> None:
    """A bare ``AADSTSnnnn`` in a text is found; a text without one yields None."""
    err = entra_error_from_text("boom AADSTS50173: revoked. more")
    assert err is not None
    assert err.codes == (50173,)
    assert entra_error_from_text("Unable to get authority configuration") is None


def test_describe_says_what_and_what_to_do() -> None:
    """The message names the tenant, the code, Entra's sentence and the fix."""
    err = entra_error_from_response(_body(700016, text="Application 'a' was not found."))
    message = describe(err, tenant="contoso.onmicrosoft.com")
    assert message.startswith("tenant 'contoso.onmicrosoft.com': token failed (AADSTS700016): ")
    assert "Application 'a' was not found" in message
    assert "an admin of the tenant must consent to the app" in message
    assert "Trace ID" not in message


def test_describe_counts_attempts_for_retries() -> None:
    """A retried error that gave up says how many attempts it made."""
    message = describe(
        EntraError(error="temporarily_unavailable", codes=(90033,)), tenant="t", attempts=4
    )
    assert "after 4 attempts" in message
    assert "try again later" in message


@given(
    error=st.one_of(st.none(), st.text(max_size=30)),
    codes=st.lists(st.integers(min_value=0, max_value=10**9), max_size=3),
    status=st.one_of(st.none(), st.integers(min_value=100, max_value=599)),
)
def test_classify_is_total(error: str | None, codes: list[int], status: int | None) -> None:
    """Any error gets exactly one class and a message that starts with the tenant."""
    err = EntraError(error=error, codes=tuple(codes), status=status)
    assert classify(err) in set(TokenVerdict)
    assert describe(err, tenant="t").startswith("tenant 't': token failed")


@given(st.text(max_size=400))
def test_error_from_text_never_raises(text: str) -> None:
    """Any exception text parses to an EntraError or None, never an exception."""
    result = entra_error_from_text(text)
    assert result is None or isinstance(result, EntraError)
