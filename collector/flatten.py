"""Numbers out of a device message, named `metric.stat`, for trend plots, aggregates and alert rules.

Each role flattens its own message (its `message.flatten`, found through the role registry); the heartbeat
is flattened here.
"""

from __future__ import annotations

from contract.roles import spec_for_kind
from contract.wire import DeviceMessage, Heartbeat


def flatten(message: DeviceMessage) -> dict[str, float]:
    """Flat name -> value map. Names: posture `cva_deg.mean`, `cva_deg.band.high`;
    gait `prob.positive`, `measure.cadence`; head pose `yaw_deg.mean`, `severity.rotation`;
    heartbeat `fps.min`, `outbox_depth`."""
    spec = spec_for_kind(message.kind)
    if spec is not None:
        return spec.flatten(message)
    out: dict[str, float] = {}
    if isinstance(message, Heartbeat):
        for stage, fps in message.fps.items():
            out[f"fps.{stage}"] = fps
        if message.fps:
            out["fps.min"] = min(message.fps.values())
        out["outbox_depth"] = float(message.outbox_depth)
        out["outbox_dropped"] = float(message.outbox_dropped)
        out["scores_lost"] = float(message.scores_lost)
        out["frames_dropped"] = float(message.frames_dropped)
    return out
