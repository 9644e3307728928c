"""Configuration of the gait role (the `gait:` section of a device profile)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class GaitConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
