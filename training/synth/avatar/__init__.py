"""Avatar generator: posed human bodies (anny) with their truth, and a headless renderer for them.

Importing this package stays light (numpy only); the body model and the GL context load on first use.
"""

from training.synth.avatar.mesh import ANATOMICAL_POINTS, AvatarMesh, BodyPoints, Region, SeatedPlacement

__all__ = ["ANATOMICAL_POINTS", "AvatarMesh", "BodyPoints", "Region", "SeatedPlacement"]
