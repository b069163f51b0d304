"""Endpoints of each Microsoft cloud, as frozen data.

Tokens are not interchangeable across clouds, so the Graph root and the Entra authority
host are always chosen together; ``--graph-url`` and ``--authority-host`` override either.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
from urllib.parse import urlsplit

__all__ = [
    "CLOUDS",
    "Cloud",
    "CloudName",
    "Endpoints",
    "endpoint_problem",
    "is_microsoft_authority",
    "resolve_endpoints",
]


class CloudName(enum.StrEnum):
    GLOBAL = "global"
    USGOV = "usgov"
    USGOV_DOD = "usgov-dod"
    CHINA = "china"


@dataclasses.dataclass(frozen=True, slots=True)
class Cloud:
    name: CloudName
    graph_url: str
    authority_host: str


CLOUDS: dict[CloudName, Cloud] = {
    CloudName.GLOBAL: Cloud(
        CloudName.GLOBAL, "https://graph.microsoft.com", "https://login.microsoftonline.com"
    ),
    CloudName.USGOV: Cloud(
        CloudName.USGOV, "https://graph.microsoft.us", "https://login.microsoftonline.us"
    ),
    CloudName.USGOV_DOD: Cloud(
        CloudName.USGOV_DOD, "https://dod-graph.microsoft.us", "https://login.microsoftonline.us"
    ),
    CloudName.CHINA: Cloud(
        CloudName.CHINA,
        "https://microsoftgraph.chinacloudapi.cn",
        "https://login.chinacloudapi.cn",
    ),
}

# Hosts MSAL's instance discovery knows; anything else gets instance_discovery=False.
_MICROSOFT_AUTHORITY_HOSTS = frozenset(urlsplit(c.authority_host).hostname for c in CLOUDS.values())


@dataclasses.dataclass(frozen=True, slots=True)
class Endpoints:
    """Where tokens and Graph calls go for one run."""

    graph_url: str
    authority_host: str
    api_version: str = "v1.0"

    @property
    def scope(self) -> str:
        """The ``.default`` scope of the Graph resource (``{graph_url}/.default``)."""
        return f"{self.graph_url}/.default"

    @property
    def graph_base(self) -> str:
        return f"{self.graph_url}/{self.api_version}"

    def authority(self, tenant: str) -> str:
        return f"{self.authority_host}/{tenant}"

    def problem(self) -> str | None:
        """Why these endpoints must not be used (``endpoint_problem``), or None."""
        for option, url in (
            ("--graph-url", self.graph_url),
            ("--authority-host", self.authority_host),
        ):
            why = endpoint_problem(url)
            if why is not None:
                return f"{option} {url[:100]!r}: {why}"
        return None


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def endpoint_problem(url: str) -> str | None:
    """Why ``url`` cannot be a Graph root or authority host, or None.

    Bearer tokens, refresh tokens and client secrets travel to these hosts, so the scheme
    is ``https://``; plain ``http://`` only to this machine (127.0.0.0/8, ::1, localhost),
    where nothing crosses a network. No credentials, query or fragment in the URL.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return "not a URL"
    if parts.scheme not in ("https", "http") or not host:
        return "not an https:// URL with a host"
    if parts.scheme == "http" and not _is_loopback(host):
        return (
            "plain http:// would send tokens and secrets in cleartext; use https:// "
            "(http:// is accepted only for 127.0.0.1, ::1 and localhost)"
        )
    if parts.username is not None or parts.password is not None:
        return "credentials do not belong in the URL"
    if parts.query or parts.fragment:
        return "no query or fragment: give the root URL only"
    return None


def is_microsoft_authority(authority_host: str) -> bool:
    """True for a real Entra host, where MSAL's instance discovery is wanted."""
    return urlsplit(authority_host).hostname in _MICROSOFT_AUTHORITY_HOSTS


def resolve_endpoints(
    cloud: CloudName | str = CloudName.GLOBAL,
    *,
    graph_url: str | None = None,
    authority_host: str | None = None,
    api_version: str = "v1.0",
) -> Endpoints:
    """Pick the cloud's endpoints, then apply overrides (trailing slashes removed)."""
    base = CLOUDS[CloudName(cloud)]
    return Endpoints(
        graph_url=(graph_url or base.graph_url).rstrip("/"),
        authority_host=(authority_host or base.authority_host).rstrip("/"),
        api_version=api_version,
    )
