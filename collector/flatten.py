"""Numbers out of a device message, named `metric.stat`, for trend plots, aggregates and alert rules."""

from __future__ import annotations

from contract.wire import DeviceMessage, GaitScreening, HeadPoseWindow, Heartbeat, PostureWindow


def flatten(message: DeviceMessage) -> dict[str, float]:
    """Flat name -> value map. Names: posture `cva_deg.mean`, `cva_deg.band.high`;
    gait `prob.positive`, `measure.cadence`; head pose `yaw_deg.mean`, `severity.rotation`;
    heartbeat `fps.min`, `outbox_depth`."""
    out: dict[str, float] = {}
    if isinstance(message, PostureWindow):
        out["presence_s"] = message.presence_s
        if message.risk_score is not None:
            out["risk_score"] = message.risk_score
        for name, stats in message.metrics.items():
            if stats.mean is not None:
                out[f"{name}.mean"] = stats.mean
            for band, fraction in stats.bands.items():
                out[f"{name}.band.{band}"] = fraction
            # Percentiles and flags stay in the stored payload; rows here are what trends and rules read.
            if stats.sustained_risk:
                out[f"{name}.sustained"] = 1.0
    elif isinstance(message, GaitScreening):
        for cls, p in (message.probabilities or {}).items():
            out[f"prob.{cls}"] = p
        for name, measure in message.measures.items():
            if measure.value is not None:
                out[f"measure.{name}"] = measure.value
    elif isinstance(message, HeadPoseWindow):
        out["presence_s"] = message.presence_s
        for name, hp in message.metrics.items():
            if hp.mean is not None:
                out[f"{name}.mean"] = hp.mean
            if hp.range is not None:
                out[f"{name}.range"] = hp.range
            out[f"{name}.time_above_s"] = hp.time_above_s
        for item, score in message.severity.items():
            out[f"severity.{item}"] = float(score)
        if message.severity:
            out["severity.total"] = float(sum(message.severity.values()))
    elif isinstance(message, Heartbeat):
        for stage, fps in message.fps.items():
            out[f"fps.{stage}"] = fps
        if message.fps:
            out["fps.min"] = min(message.fps.values())
        out["outbox_depth"] = float(message.outbox_depth)
        out["outbox_dropped"] = float(message.outbox_dropped)
        out["frames_dropped"] = float(message.frames_dropped)
    return out
