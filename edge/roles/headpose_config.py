"""Configuration of the headpose role (the `headpose:` section of a device profile)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class HeadPoseConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
