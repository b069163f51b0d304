"""Endpoints of each Microsoft cloud, as frozen data.

Tokens are not interchangeable across clouds, so the Graph root and the Entra authority
host are always chosen together; ``--graph-url`` and ``--authority-host`` override either.
"""

from __future__ import annotations

import dataclasses
import enum
from urllib.parse import urlsplit

__all__ = [
    "CLOUDS",
    "Cloud",
    "CloudName",
    "Endpoints",
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
