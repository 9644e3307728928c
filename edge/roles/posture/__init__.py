"""The posture role: `config` (its profile section), `message` (its wire message and flattening),
`analyzer` and its helpers (device only). This module stays light: the collector reads it too."""

from contract.roles import RoleSpec
from edge.roles.posture.config import PostureConfig
from edge.roles.posture.message import PostureWindow, flatten

ROLE = RoleSpec(
    name="posture",
    description="office posture role settings",
    config=PostureConfig,
    message=PostureWindow,
    flatten=flatten,
    analyzer="edge.roles.posture.analyzer:PostureAnalyzer",
)
