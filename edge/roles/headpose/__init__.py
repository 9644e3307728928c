"""The headpose role: `config` (its profile section), `message` (its wire message and flattening),
`analyzer` and its helpers (device only). This module stays light: the collector reads it too."""

from contract.roles import RoleSpec
from edge.roles.headpose.config import HeadPoseConfig
from edge.roles.headpose.message import HeadPoseWindow, flatten

ROLE = RoleSpec(
    name="headpose",
    description="head-pose station role settings",
    config=HeadPoseConfig,
    message=HeadPoseWindow,
    flatten=flatten,
    analyzer="edge.roles.headpose.analyzer:HeadPoseAnalyzer",
)
