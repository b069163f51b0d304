"""Tokens the simulator issues and the client assertions it checks.

Access and refresh tokens are self-validating: ``prefix.base64url(claims).base64url(mac)``
with an HMAC-SHA256 key made per simulator instance, so Graph checks tenant and expiry
without shared state, and tokens of another instance (or edited ones) are rejected. Clients
must treat them as opaque strings, as they must treat Entra's.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import secrets
import uuid
from typing import Any

import orjson
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

__all__ = [
    "AccessClaims",
    "RegisteredCertificate",
    "TokenInvalid",
    "TokenMint",
    "b64url",
    "check_client_assertion",
    "unb64url",
    "unsigned_jwt",
]

_ACCESS_PREFIX = "sim-at"
_REFRESH_PREFIX = "sim-rt"


def b64url(data: bytes) -> str:
    """Padding-less base64url, as JWTs use."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenInvalid(Exception):
    """A token or assertion failed validation; ``reason`` is safe to show (no token text)."""

    def __init__(self, reason: str, *, code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


@dataclasses.dataclass(frozen=True, slots=True)
class AccessClaims:
    """What Graph needs from an access token."""

    tenant: str
    kind: str  # "app" (client credentials) or "user" (delegated)
    exp: int


class TokenMint:
    """Issues and opens this instance's tokens."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)

    def __repr__(self) -> str:
        return "TokenMint()"

    def _seal(self, prefix: str, claims: dict[str, Any]) -> str:
        body = f"{prefix}.{b64url(orjson.dumps(claims))}"
        mac = hmac.new(self._key, body.encode("ascii"), hashlib.sha256).digest()
        return f"{body}.{b64url(mac)}"

    def _open(self, prefix: str, token: str) -> dict[str, Any]:
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != prefix:
            raise TokenInvalid("token is not well formed")
        body = f"{parts[0]}.{parts[1]}"
        mac = hmac.new(self._key, body.encode("ascii"), hashlib.sha256).digest()
        try:
            given = unb64url(parts[2])
            if not hmac.compare_digest(mac, given):
                raise TokenInvalid("token signature is invalid")
            claims = orjson.loads(unb64url(parts[1]))
        except (ValueError, orjson.JSONDecodeError) as exc:
            raise TokenInvalid("token is not well formed") from exc
        if not isinstance(claims, dict):
            raise TokenInvalid("token is not well formed")
        return claims

    def access_token(self, *, tenant: str, kind: str, lifetime_s: int, now: float) -> str:
        exp = int(now) + lifetime_s
        return self._seal(
            _ACCESS_PREFIX, {"tid": tenant, "kind": kind, "exp": exp, "jti": uuid.uuid4().hex}
        )

    def open_access_token(self, token: str, *, now: float) -> AccessClaims:
        """The claims of a valid, unexpired token, else ``TokenInvalid``."""
        claims = self._open(_ACCESS_PREFIX, token)
        exp = int(claims.get("exp", 0))
        if now >= exp:
            raise TokenInvalid("Lifetime validation failed, the token is expired.")
        return AccessClaims(tenant=str(claims["tid"]), kind=str(claims["kind"]), exp=exp)

    def refresh_token(self, *, subject: str, home_tenant: str, now: float) -> str:
        """A refresh token of ``subject``; like Entra's, redeemable at any tenant."""
        return self._seal(
            _REFRESH_PREFIX,
            {"oid": subject, "utid": home_tenant, "iat": int(now), "jti": uuid.uuid4().hex},
        )

    def open_refresh_token(self, token: str) -> dict[str, Any]:
        return self._open(_REFRESH_PREFIX, token)


def unsigned_jwt(claims: dict[str, Any]) -> str:
    """An id_token: MSAL only decodes the claims (it does not validate id tokens)."""
    header = b64url(orjson.dumps({"typ": "JWT", "alg": "none"}))
    return f"{header}.{b64url(orjson.dumps(claims))}."


@dataclasses.dataclass(frozen=True, slots=True)
class RegisteredCertificate:
    """The public certificate registered on the app, with both thumbprints."""

    public_key: rsa.RSAPublicKey
    sha1: bytes
    sha256: bytes

    @classmethod
    def from_pem(cls, pem: bytes) -> RegisteredCertificate:
        cert = x509.load_pem_x509_certificate(pem)
        key = cert.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise ValueError("the registered certificate must have an RSA key")
        return cls(
            public_key=key,
            sha1=cert.fingerprint(hashes.SHA1()),  # noqa: S303 - x5t is defined as SHA-1
            sha256=cert.fingerprint(hashes.SHA256()),
        )


def check_client_assertion(
    assertion: str,
    *,
    cert: RegisteredCertificate | None,
    client_id: str,
    audience: str,
    now: float,
) -> None:
    """Verify a ``private_key_jwt`` client assertion as Entra does, else ``TokenInvalid``.

    RS256 (``x5t``, SHA-1 thumbprint, MSAL's choice with a ``thumbprint``) and PS256
    (``x5t#S256``, MSAL's choice with a ``public_certificate``) are accepted. The codes:
    50027 malformed, 700027 unknown key or bad signature, 700021 iss/sub is not the
    client id, 700023 aud is not this token endpoint, 700024 outside its lifetime.
    """
    try:
        head_b64, claims_b64, sig_b64 = assertion.split(".")
        header = orjson.loads(unb64url(head_b64))
        claims = orjson.loads(unb64url(claims_b64))
        signature = unb64url(sig_b64)
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise TokenInvalid("JWT token is invalid or malformed.", code=50027) from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise TokenInvalid("JWT token is invalid or malformed.", code=50027)
    thumbprint = header.get("x5t#S256") or header.get("x5t")
    if cert is None or not isinstance(thumbprint, str):
        raise TokenInvalid(
            "The certificate with identifier used to sign the client assertion is not "
            "registered on application.",
            code=700027,
        )
    registered = cert.sha256 if "x5t#S256" in header else cert.sha1
    try:
        known = hmac.compare_digest(unb64url(thumbprint), registered)
    except ValueError:
        known = False
    if not known:
        raise TokenInvalid(
            "The certificate with identifier used to sign the client assertion is not "
            "registered on application. [Reason - The key was not found.]",
            code=700027,
        )
    signed = f"{head_b64}.{claims_b64}".encode("ascii")
    alg = header.get("alg")
    pad: padding.AsymmetricPadding
    if alg == "RS256":
        pad = padding.PKCS1v15()
    elif alg == "PS256":
        pad = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)
    else:
        raise TokenInvalid(f"Client assertion algorithm '{alg}' is not supported.", code=700027)
    try:
        cert.public_key.verify(signature, signed, pad, hashes.SHA256())
    except InvalidSignature as exc:
        raise TokenInvalid("Client assertion failed signature validation.", code=700027) from exc
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        raise TokenInvalid(
            "Client assertion application identifier doesn't match 'client_id' parameter.",
            code=700021,
        )
    if str(claims.get("aud", "")).rstrip("/").lower() != audience.rstrip("/").lower():
        raise TokenInvalid(
            "Client assertion audience claim does not match Realm issuer.", code=700023
        )
    exp, nbf = claims.get("exp"), claims.get("nbf", 0)
    if not isinstance(exp, int | float) or not isinstance(nbf, int | float):
        raise TokenInvalid("JWT token is invalid or malformed.", code=50027)
    if not nbf - 300 <= now < exp:
        raise TokenInvalid("Client assertion is not within its valid time range.", code=700024)
