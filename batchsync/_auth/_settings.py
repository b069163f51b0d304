"""Auth settings and values: the modes, the credentials, a token, and what consumers need.

No MSAL and no network here: the engine, discover and the actions import these names
without loading the token machinery.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import re
from typing import Protocol

from .._errors import ConfigError

__all__ = [
    "LOGIN_HINT",
    "AccessToken",
    "AuthMode",
    "AuthSettings",
    "BearerToken",
    "Certificate",
    "TokenSource",
    "default_token_cache_path",
    "load_certificate",
]

LOGIN_HINT = "run `batchsync login`"
_CACHE_FILE_NAME = "token_cache.json"


class AuthMode(enum.StrEnum):
    """How tokens are obtained (``--auth``)."""

    AUTO = "auto"
    DELEGATED = "delegated"
    REFRESH_TOKEN = "refresh-token"  # noqa: S105 - a mode name, not a secret
    APP = "app"


@dataclasses.dataclass(frozen=True, slots=True)
class AuthSettings:
    """Credentials and mode; secrets never show in the repr."""

    mode: AuthMode = AuthMode.AUTO
    client_id: str | None = None
    client_secret: str | None = dataclasses.field(default=None, repr=False)
    certificate_path: str | None = None  # PEM: private key + certificate
    certificate_password: str | None = dataclasses.field(default=None, repr=False)
    refresh_token: str | None = dataclasses.field(default=None, repr=False)
    token_cache_path: str | None = None  # delegated; default: default_token_cache_path()
    account: str | None = None  # delegated: username to use; else env BATCHSYNC_ACCOUNT

    def resolved_mode(self) -> AuthMode:
        """``auto``: refresh-token if a refresh token is set, else app if a secret or a
        certificate is given, else delegated."""
        if self.mode is not AuthMode.AUTO:
            return AuthMode(self.mode)
        if self.refresh_token:
            return AuthMode.REFRESH_TOKEN
        if self.client_secret or self.certificate_path:
            return AuthMode.APP
        return AuthMode.DELEGATED


@dataclasses.dataclass(frozen=True, slots=True)
class AccessToken:
    """A bearer token for one tenant; ``expires_at`` is on the provider's clock.

    ``renewed``: issued in place of a token Graph refused (401). A 401 for it is not
    refreshed again: the refresh-once rule holds per tenant and token, not per row.
    """

    value: str = dataclasses.field(repr=False)
    expires_at: float  # monotonic seconds (the provider's clock)
    tenant: str
    renewed: bool = False


class TokenSource(Protocol):
    """What the engine and discover need from auth (``TokenProvider`` is one)."""

    @property
    def mode(self) -> AuthMode | None:
        """How tokens are obtained (worded into 403 messages); None when unknown."""
        ...

    async def get(self, tenant: str) -> AccessToken: ...

    def invalidate(self, token: AccessToken) -> None: ...

    def forget(self, tenant: str) -> None: ...


class BearerToken(Protocol):
    """Anything carrying a token value (``AccessToken``, or the engine's ``TokenLike``)."""

    @property
    def value(self) -> str: ...


def default_token_cache_path() -> str:
    """``{user cache dir}/batchsync/token_cache.json`` (platformdirs)."""
    import platformdirs  # only where the default cache is used: not at every start

    return os.path.join(platformdirs.user_cache_dir("batchsync"), _CACHE_FILE_NAME)


@dataclasses.dataclass(frozen=True, slots=True)
class Certificate:
    """A client certificate: the decrypted key (memory only) and both thumbprints."""

    private_key_pem: str = dataclasses.field(repr=False)
    certificate_pem: str
    sha1_thumbprint: str
    sha256_thumbprint: str

    def msal_credential(self) -> dict[str, str]:
        # With ``public_certificate`` MSAL signs PS256 with the SHA-256 thumbprint
        # (x5t#S256) and sends x5c; the SHA-1 one stays for display and ADFS.
        return {"private_key": self.private_key_pem, "public_certificate": self.certificate_pem}


_PEM_BLOCK_RE = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.DOTALL)


def load_certificate(path: str, password: str | None) -> Certificate:
    """Read a PEM with an RSA private key and its certificate, or raise ConfigError."""
    # Only app-only runs with a certificate need cryptography: imported here, not at start.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the certificate file {path!r} ({exc.strerror or exc}); pass a PEM "
            "file with the private key and the certificate to --certificate"
        ) from None
    keys: list[bytes] = []
    certs: list[bytes] = []
    for match in _PEM_BLOCK_RE.finditer(data):
        label = match.group(1)
        if label.endswith(b"PRIVATE KEY"):
            keys.append(match.group(0))
        elif label == b"CERTIFICATE":
            certs.append(match.group(0))
    if not keys or not certs:
        raise ConfigError(
            f"the certificate file {path!r} must hold both the private key and the "
            "certificate in PEM (e.g. `openssl pkcs12 -in cert.pfx -out cert.pem -nodes`)"
        )
    try:
        key = serialization.load_pem_private_key(keys[0], password.encode() if password else None)
    except TypeError:
        raise ConfigError(
            f"the private key in {path!r} is encrypted: give its password"
            if not password
            else f"the private key in {path!r} is not encrypted: drop the password"
        ) from None
    except ValueError:
        raise ConfigError(
            f"cannot load the private key in {path!r}: wrong password or not a PEM key"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(f"the private key in {path!r} must be RSA (Entra needs RSA)")
    public = key.public_key().public_numbers()
    for block in certs:
        try:
            cert = x509.load_pem_x509_certificate(block)
        except ValueError:
            continue
        cert_key = cert.public_key()
        if isinstance(cert_key, rsa.RSAPublicKey) and cert_key.public_numbers() == public:
            break
    else:
        raise ConfigError(f"no certificate in {path!r} matches its private key")
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    return Certificate(
        private_key_pem=key_pem,
        certificate_pem=cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        sha1_thumbprint=cert.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303
        sha256_thumbprint=cert.fingerprint(hashes.SHA256()).hex().upper(),
    )
