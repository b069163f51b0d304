"""The Intune sync family: one module per action, and the registry that names them.

Adding an action is one module here (it builds an ``Action`` named as the module, ``_`` as
``-``) and one line in ``_MODULES``. ``exchange-connector-sync`` is the default, its
contract unchanged. The modules load on first use: ``--help`` only needs the names.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from .._errors import ConfigError
from .._lazy import lazy_exports

if TYPE_CHECKING:
    from ._base import Action, CheckAction, Listing, forbidden_hint

__all__ = [
    "ACTIONS",
    "DEFAULT_ACTION",
    "Action",
    "CheckAction",
    "Listing",
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


__getattr__, __dir__ = lazy_exports(
    __name__,
    {"Action": "_base", "CheckAction": "_base", "Listing": "_base", "forbidden_hint": "_base"},
    globals(),
)


class _Registry(Mapping[str, "Action"]):
    """Action name -> Action, each module imported when its action is first asked for."""

    def __init__(self, modules: tuple[str, ...]) -> None:
        self._modules = {module.replace("_", "-"): module for module in modules}
        self._loaded: dict[str, Action] = {}

    def __getitem__(self, name: str) -> Action:
        action = self._loaded.get(name)
        if action is None:
            module = self._modules[name]  # KeyError for an unknown name, as a Mapping does
            action = importlib.import_module(f"{__name__}.{module}").ACTION
            assert action.name == name, f"{module} must define the action {name!r}"
            self._loaded[name] = action
        return action

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __len__(self) -> int:
        return len(self._modules)


ACTIONS: Mapping[str, Action] = _Registry(_MODULES)


def action_names() -> list[str]:
    """Every action's name, the default first (nothing imported)."""
    return list(ACTIONS)


def get_action(name: str, *, api_version: str | None = None) -> Action:
    """The action called ``name``; ConfigError (exit 2) naming the others if there is none,
    or if it exists in Graph beta only and ``api_version`` is another."""
    if name not in ACTIONS:
        raise ConfigError(f"no action {name!r}; the actions are: {', '.join(ACTIONS)}")
    action = ACTIONS[name]
    if action.beta_only and api_version not in (None, "beta"):
        raise ConfigError(
            f"{action.name} exists in Graph beta only: use --api-version beta (its default) "
            f"instead of {api_version}"
        )
    return action
