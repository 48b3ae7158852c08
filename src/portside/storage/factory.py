"""The driver factory: each driver module registers its name, constructor and parameter model when imported
(distribution's `factory.Register`); configuration and `create` ask here.

The built-in drivers live in `portside.storage.drivers`, imported on first use; their modules import their
SDKs only when a driver is made, so registering them costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from portside.storage.checked import CheckedDriver
from portside.storage.driver import StorageDriver
from portside.storage.parameters import DriverParameters

DriverConstructor = Callable[[Any], StorageDriver]


@dataclass(frozen=True)
class Registration:
    name: str
    constructor: DriverConstructor
    parameters: type[DriverParameters]


_DRIVERS: dict[str, Registration] = {}


def register(name: str, constructor: DriverConstructor, parameters: type[DriverParameters]) -> None:
    """Make a driver known by `name`; a second registration of a name is a programming error."""
    if name in _DRIVERS:
        raise ValueError(f"storage driver {name!r} is already registered")
    _DRIVERS[name] = Registration(name, constructor, parameters)


def _registrations() -> dict[str, Registration]:
    import portside.storage.drivers  # noqa: F401  (the built-in drivers register themselves)

    return _DRIVERS


def names() -> list[str]:
    return sorted(_registrations())


def registration(name: str) -> Registration:
    try:
        return _registrations()[name]
    except KeyError:
        raise ValueError(f"unknown storage driver {name!r} (known: {', '.join(names())})") from None


def parameters_model(name: str) -> type[DriverParameters]:
    """The model of `storage.<name>`'s keys; ValueError for an unknown driver."""
    return registration(name).parameters


def create(name: str, parameters: dict[str, Any]) -> StorageDriver:
    """A driver from its `storage.<name>` keys (validated by its model), with every path it is given checked
    once, whichever driver it is."""
    found = registration(name)
    return CheckedDriver(found.constructor(found.parameters.model_validate(parameters)))
