"""Assembling the device runtime from a profile: perception (with the one backend fallback rule), camera,
role analyzer, outbox and publisher, handed to the frame loop (edge/frame_loop.py)."""

from __future__ import annotations

import logging
from pathlib import Path

from contract.sdnotify import Notifier
from contract.wire import ModelRef
from edge.backends.selection import choose_backend
from edge.config import Profile, SecretError, read_secret
from edge.frame_loop import EdgeRuntime, RunLimits
from edge.mqtt_client import MqttPublisher
from edge.outbox import Outbox
from edge.perception.pipeline import PerceptionConfig, PerceptionPipeline
from edge.result_sources import CameraResults, FrameFeed, FrameResultSource
from edge.roles.base import EmitContext
from edge.roles.registry import analyzer_class, create_analyzer

log = logging.getLogger(__name__)


def build_pipeline(profile: Profile, model_dir: Path, needs_face: bool, needs_segmentation: bool) -> tuple[
    PerceptionPipeline, bool
]:  # fmt: skip
    """Load the perception models the role needs, on the profile's backend, or on ONNX Runtime when
    `edge.backends.selection.choose_backend` falls back (only where the profile allows it, and reported).
    Returns the pipeline and whether it fell back."""
    config = profile.perception.model_copy(
        update={"face": needs_face, "segmentation": needs_segmentation, "pose": True}
    )
    config = PerceptionConfig.model_validate(config.model_dump())
    choice = choose_backend(config.backend)
    if choice.fallback:
        config = config.model_copy(update={"backend": choice.config})
    return PerceptionPipeline(config, model_dir), choice.fallback


def build_runtime(
    profile: Profile,
    *,
    model_dir: Path,
    feed: FrameFeed | None = None,
    results: FrameResultSource | None = None,
    limits: RunLimits | None = None,
    notifier: Notifier | None = None,
    connect: bool = True,
) -> EdgeRuntime:
    """Assemble a runtime from a profile: outbox, models (loaded and warmed), analyzer, publisher, camera.

    `results` replaces camera + perception (the replay seam); otherwise `feed` or the profile's camera is
    used through the frame grabber.
    """
    notifier = notifier or Notifier()
    cls = analyzer_class(profile.role)
    outbox = Outbox(profile.outbox_path(), max_messages=profile.outbox.max_messages)
    models: list[ModelRef] = []
    backend, fallback = profile.perception.backend.type, False
    if results is None:
        notifier.status("loading models")
        pipeline, fallback = build_pipeline(profile, model_dir, cls.needs.face, cls.needs.segmentation)
        if fallback:
            backend = "onnxruntime"
        pipeline.warmup()
        models = pipeline.models
        if feed is None:
            feed = open_camera_feed(profile)
        results = CameraResults(feed, pipeline)
    ctx = EmitContext(
        site=profile.device.site, device_id=profile.device.device_id, models=models, next_seq=outbox.next_seq
    )
    analyzer = create_analyzer(profile.role, ctx, profile.role_config())
    if isinstance(results, CameraResults):
        results.keep_image = analyzer.reads_image  # e.g. the head-pose shift regressor cuts its crop from the frame
    if getattr(analyzer, "needs_site_key", False):  # the gait booth hashes student codes with the site secret
        if profile.secrets.site_hmac_key is None:
            raise SecretError("gait.subject_codes.input is set but secrets.site_hmac_key is not")
        analyzer.use_site_key(read_secret(profile.secrets.site_hmac_key, "secrets.site_hmac_key"))  # type: ignore[attr-defined]
    publisher = None
    if connect:
        password = read_secret(profile.broker.password, "broker.password") if profile.broker.password else None
        publisher = MqttPublisher(
            profile.broker,
            outbox,
            site=profile.device.site,
            device_id=profile.device.device_id,
            role=profile.role,
            client_id=profile.client_id,
            password=password,
            delivery=profile.delivery,
        )
        publisher.start()
    return EdgeRuntime(
        profile,
        results,
        analyzer,
        outbox,
        publisher,
        notifier=notifier,
        models=models,
        backend=backend,
        backend_fallback=fallback,
        limits=limits,
    )


def open_camera_feed(profile: Profile) -> FrameFeed:
    """The profile's camera behind the frame grabber (latest frame wins, reopened with backoff)."""
    from edge.grabber import grabber_for_profile

    feed: FrameFeed = grabber_for_profile(profile.camera)
    return feed
