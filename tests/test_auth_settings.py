"""Auth settings and values: modes, secrets hidden from reprs, certificates checked at open."""

from __future__ import annotations

from pathlib import Path

import pytest
from _auth_support import (
    CLIENT_ID,
    REFRESH,
    SECRET,
    endpoints_for,
    rsa_cert_pem,
)

from batchsync._auth import (
    AccessToken,
    AuthMode,
    AuthSettings,
    TokenProvider,
)
from batchsync._errors import ConfigError

# --- settings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "mode"),
    [
        (AuthSettings(), AuthMode.DELEGATED),
        (AuthSettings(client_secret="x"), AuthMode.APP),
        (AuthSettings(certificate_path="c.pem"), AuthMode.APP),
        (AuthSettings(client_secret="x", refresh_token="r"), AuthMode.REFRESH_TOKEN),
        (AuthSettings(mode=AuthMode.DELEGATED, client_secret="x"), AuthMode.DELEGATED),
        (AuthSettings(mode=AuthMode.APP), AuthMode.APP),
    ],
)
def test_resolved_mode(settings: AuthSettings, mode: AuthMode) -> None:
    """auto picks refresh-token, then app (secret or certificate), then delegated."""
    assert settings.resolved_mode() is mode


def test_settings_repr_hides_secrets() -> None:
    """AuthSettings' repr shows no secret, password or refresh token."""
    text = repr(
        AuthSettings(client_secret=SECRET, refresh_token=REFRESH, certificate_password="pw-123")
    )
    assert SECRET not in text
    assert REFRESH not in text
    assert "pw-123" not in text


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        (AuthSettings(mode=AuthMode.APP, client_secret="x"), "--client-id"),
        (AuthSettings(mode=AuthMode.APP, client_id=CLIENT_ID), "--client-secret"),
        (
            AuthSettings(mode=AuthMode.REFRESH_TOKEN, client_id=CLIENT_ID),
            "BATCHSYNC_REFRESH_TOKEN",
        ),
        (
            AuthSettings(client_id=CLIENT_ID, certificate_path="/nonexistent/cert.pem"),
            "cannot read the certificate file",
        ),
    ],
)
async def test_open_rejects_bad_settings(settings: AuthSettings, needle: str) -> None:
    """open() raises ConfigError (exit 2) with a message naming the fix."""
    provider = TokenProvider(settings, endpoints_for("https://127.0.0.1:9"))
    with pytest.raises(ConfigError, match=needle) as info:
        await provider.open()
    assert info.value.exit_code == 2


async def test_open_delegated_without_account_says_login(tmp_path: Path) -> None:
    """Delegated mode with an empty token cache tells the user to run `batchsync login`."""
    settings = AuthSettings(
        mode=AuthMode.DELEGATED,
        client_id=CLIENT_ID,
        token_cache_path=str(tmp_path / "cache.json"),
    )
    with pytest.raises(ConfigError, match="batchsync login"):
        await TokenProvider(settings, endpoints_for("https://127.0.0.1:9")).open()


async def test_open_rejects_cert_without_key(tmp_path: Path) -> None:
    """A certificate file without a private key is a configuration error."""
    _, cert_pem = rsa_cert_pem(tmp_path)
    only_cert = tmp_path / "only-cert.pem"
    only_cert.write_bytes(cert_pem)
    settings = AuthSettings(client_id=CLIENT_ID, certificate_path=str(only_cert))
    with pytest.raises(ConfigError, match="private key and the certificate"):
        await TokenProvider(settings, endpoints_for("https://127.0.0.1:9")).open()


async def test_open_rejects_wrong_cert_password(tmp_path: Path) -> None:
    """An encrypted key with a missing or wrong password is a configuration error."""
    path, _ = rsa_cert_pem(tmp_path, password="right-pw")
    for password in (None, "wrong-pw"):
        settings = AuthSettings(
            client_id=CLIENT_ID, certificate_path=str(path), certificate_password=password
        )
        with pytest.raises(ConfigError, match="password") as info:
            await TokenProvider(settings, endpoints_for("https://127.0.0.1:9")).open()
        assert "right-pw" not in str(info.value)


async def test_open_accepts_encrypted_cert(tmp_path: Path) -> None:
    """An encrypted key with the right password opens, and the repr shows no secret."""
    path, _ = rsa_cert_pem(tmp_path, password="right-pw")
    settings = AuthSettings(
        client_id=CLIENT_ID, certificate_path=str(path), certificate_password="right-pw"
    )
    async with TokenProvider(settings, endpoints_for("https://127.0.0.1:9")) as provider:
        assert provider.mode is AuthMode.APP
        assert "right-pw" not in repr(provider)
        assert "PRIVATE KEY" not in repr(provider)


def test_access_token_repr_hides_value() -> None:
    """An AccessToken's repr never shows the token."""
    assert "at-secret" not in repr(AccessToken(value="at-secret", expires_at=1.0, tenant="t"))
