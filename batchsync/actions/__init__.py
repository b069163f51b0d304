"""The Intune sync family: one module per action, and the registry that names them.

Adding an action is one module here (it builds an ``Action``) and one line in ``_MODULES``.
``exchange-connector-sync`` is the default, its contract unchanged.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from .._errors import ConfigError
from .._report import Settled
from ._base import Action, CheckAction, Listing, forbidden_hint

__all__ = [
    "ACTIONS",
    "DEFAULT_ACTION",
    "Action",
    "CheckAction",
    "Listing",
    "Settled",
    "action_names",
    "forbidden_hint",
    "get_action",
]

DEFAULT_ACTION = "exchange-connector-sync"
_MODULES = (
    "exchange_connector_sync",
    "device_sync",
    "vpp_license_sync",
    "dep_sync",
    "autopilot_sync",
    "managed_play_sync",
)


def _load() -> dict[str, Action]:
    found: dict[str, Action] = {}
    for module in _MODULES:
        action: Action = importlib.import_module(f"{__name__}.{module}").ACTION
        found[action.name] = action
    return found


ACTIONS: Mapping[str, Action] = _load()


def action_names() -> list[str]:
    """Every action's name, the default first."""
    return list(ACTIONS)


def get_action(name: str, *, api_version: str | None = None) -> Action:
    """The action called ``name``; ConfigError (exit 2) naming the others if there is none,
    or if it exists in Graph beta only and ``api_version`` is another."""
    action = ACTIONS.get(name)
    if action is None:
        raise ConfigError(f"no action {name!r}; the actions are: {', '.join(ACTIONS)}")
    if action.beta_only and api_version not in (None, "beta"):
        raise ConfigError(
            f"{action.name} exists in Graph beta only: use --api-version beta (its default) "
            f"instead of {api_version}"
        )
    return action
