"""Entra tokens with MSAL: settings, the token provider, the sign-in verbs.

::

    _settings       AuthMode, AuthSettings, AccessToken, TokenSource, certificates (no MSAL)
    _provider       TokenProvider: one token per tenant, single-flight, bounded pool
    _msal           the blocking side: MSAL apps, LoopSession, failures classified
    _entra_errors   Entra's error codes and what they mean (pure)
    _token_cache    the persistent, encrypted-where-possible token cache
    _login          batchsync login / logout / login --status
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from ._login import (
        TokenCacheStatus,
        login_device_code,
        logout,
        signed_in_accounts,
        token_cache_status,
    )
    from ._provider import TokenProvider
    from ._settings import (
        AccessToken,
        AuthMode,
        AuthSettings,
        TokenSource,
        default_token_cache_path,
    )

# Loaded on first use: the settings are light, the provider and login bring MSAL.
_HOME = {
    "AccessToken": "_settings",
    "AuthMode": "_settings",
    "AuthSettings": "_settings",
    "TokenSource": "_settings",
    "default_token_cache_path": "_settings",
    "TokenProvider": "_provider",
    "TokenCacheStatus": "_login",
    "login_device_code": "_login",
    "logout": "_login",
    "signed_in_accounts": "_login",
    "token_cache_status": "_login",
}

__all__ = [
    "AccessToken",
    "AuthMode",
    "AuthSettings",
    "TokenCacheStatus",
    "TokenProvider",
    "TokenSource",
    "default_token_cache_path",
    "login_device_code",
    "logout",
    "signed_in_accounts",
    "token_cache_status",
]

__getattr__, __dir__ = lazy_exports(__name__, _HOME, globals())
