"""Configuration of the posture role (the `posture:` section of a device profile)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class PostureConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
