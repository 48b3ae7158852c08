"""The base of every driver's parameter model (its `storage.<driver>` keys), kept beside the driver itself."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class DriverParameters(BaseModel):
    """Unknown keys are errors, so a misspelt setting is never silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    def driver_arguments(self) -> dict[str, Any]:
        """The keyword arguments of the driver's constructor."""
        return self.model_dump()
