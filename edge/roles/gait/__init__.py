"""The gait role: `config` (its profile section), `message` (its wire message and flattening),
`analyzer` and its helpers (device only). This module stays light: the collector reads it too."""

from contract.roles import RoleSpec
from edge.roles.gait.config import GaitConfig
from edge.roles.gait.message import GaitScreening, flatten

ROLE = RoleSpec(
    name="gait",
    description="gait booth role settings",
    config=GaitConfig,
    message=GaitScreening,
    flatten=flatten,
    analyzer="edge.roles.gait.analyzer:GaitAnalyzer",
)
