"""`edgescreen edge run` (the device runtime) and `edgescreen edge check` (is this device ready to run?)."""

from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from contract.errors import UsageError

if TYPE_CHECKING:
    from edge.config import Profile
    from edgescreen.cli import Groups

log = logging.getLogger(__name__)


def register(groups: Groups) -> None:
    edge = groups.group("edge")
    run = edge.add_parser(
        "run",
        help="run the device: camera → perception → role → outbox → MQTT",
        description="Run the device runtime from a profile; flags override the profile.",
    )
    _profile_arg(run)
    run.add_argument("--source", help="camera URI overriding camera.source (a video file, /dev/video0, rtsp://...)")
    run.add_argument("--broker", help="broker URL overriding broker.url (mqtt://HOST:PORT or mqtts://...)")
    run.add_argument(
        "--outbox",
        type=Path,
        help="outbox file overriding outbox.path; outside systemd without either, a per-user file "
        "($XDG_STATE_HOME/edgescreen/SITE-DEVICE/outbox.sqlite), not the service's shared one",
    )
    run.add_argument("--model-dir", type=Path, help="converted models (default $EDGESCREEN_MODEL_DIR)")
    run.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames")
    run.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    run.add_argument(
        "--replay", type=Path, metavar="FILE",
        help="perception results from a replay .npz (edge/replay.py) instead of camera + perception",
    )  # fmt: skip
    run.set_defaults(func=_run)

    check = edge.add_parser(
        "check",
        help="validate the profile, open the camera, load the models, connect to the broker",
        description="One line per check with its result; exit status 1 if any check fails.",
    )
    _profile_arg(check)
    check.add_argument("--source", help="camera URI overriding camera.source")
    check.add_argument("--broker", help="broker URL overriding broker.url")
    check.add_argument("--model-dir", type=Path, help="converted models (default $EDGESCREEN_MODEL_DIR)")
    check.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for camera and broker")
    check.set_defaults(func=_check)


def _profile_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", required=True, type=Path, help="device profile (firmware_config/profiles/)")


def load_with_overrides(args: argparse.Namespace) -> Profile:
    """Load the profile and apply command-line overrides (validated like the profile itself)."""
    from edge.config import load_profile, validate_profile

    profile = load_profile(args.profile)
    data = profile.model_dump(mode="json", exclude_none=True)
    changed = False
    if getattr(args, "source", None):
        data["camera"]["source"] = args.source
        changed = True
    if getattr(args, "broker", None):
        data["broker"]["url"] = args.broker
        if args.broker.startswith("mqtt://"):
            data["broker"].pop("tls", None)  # a plain mqtt:// override (a local test broker) has no TLS
        changed = True
    if getattr(args, "outbox", None):
        data["outbox"]["path"] = str(args.outbox.resolve())
        changed = True
    if not changed:
        return profile
    return validate_profile(data, source=f"{args.profile} (with command-line overrides)")


def _own_outbox_outside_systemd(profile: Profile) -> Profile:
    """A run by hand (no systemd: no $INVOCATION_ID or $STATE_DIRECTORY, no state dir, no outbox given) gets a
    per-user outbox named after its device, instead of /var/lib/edgescreen/outbox.sqlite, which the service
    and every other run would share (each would send and delete the others' scores)."""
    import os

    from edge.config import STATE_DIR_ENV

    managed = any(os.environ.get(v) for v in ("INVOCATION_ID", "STATE_DIRECTORY", STATE_DIR_ENV))
    if profile.outbox.path is not None or managed:
        return profile
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "edgescreen"
    path = base / f"{profile.device.site}-{profile.device.device_id}" / "outbox.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    log.warning("no outbox given outside systemd: using %s (give --outbox or outbox.path to choose)", path)
    return profile.model_copy(update={"outbox": profile.outbox.model_copy(update={"path": path})})


def _model_dir(args: argparse.Namespace) -> Path:
    from edge.model_store import default_model_dir

    return Path(args.model_dir) if args.model_dir else default_model_dir()


def _run(args: argparse.Namespace) -> int:
    from contract.sdnotify import Notifier
    from edge.assembly import build_runtime
    from edge.config import ProfileError, SecretError
    from edge.frame_loop import RunLimits
    from edge.replay import ReplayError
    from edge.result_sources import ReplayResults

    try:
        profile = load_with_overrides(args)
    except ProfileError as exc:
        raise UsageError(str(exc)) from exc
    profile = _own_outbox_outside_systemd(profile)
    notifier = Notifier()
    try:
        runtime = build_runtime(
            profile,
            model_dir=_model_dir(args),
            limits=RunLimits(max_frames=args.max_frames, duration_s=args.duration),
            notifier=notifier,
            results=ReplayResults(args.replay) if args.replay is not None else None,
        )
    except ReplayError as exc:
        raise UsageError(str(exc)) from exc
    except (SecretError, RuntimeError, OSError, ValueError) as exc:
        log.error("cannot start the device runtime: %s", exc)
        notifier.status(f"failed to start: {exc}")
        return 1

    def on_signal(signum: int, _frame: Any) -> None:
        runtime.request_stop(f"signal {signal.Signals(signum).name}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    lost_before = runtime.outbox.lost
    summary = runtime.run()
    lost = runtime.outbox.lost - lost_before
    log.info(
        "stopped (%s): %d frames, %d score message(s), %d heartbeat(s), outbox %s",
        summary.reason or "done",
        summary.frames,
        summary.messages,
        summary.heartbeats,
        "drained" if summary.drained else f"{runtime.outbox.depth()} still queued",
    )
    runtime.outbox.close()
    notifier.close()
    if summary.failed:
        log.error("exiting with status 1: the camera failed for good (see the grabber log above)")
        return 1
    if lost:
        # A run that lost scores did not do its job, even if it ran to the end: say so, and let the caller see it.
        log.error(
            "exiting with status 1: %d score(s) made during this run were lost (the outbox could not store them)", lost
        )
        return 1
    return 0


def _check(args: argparse.Namespace) -> int:
    results: list[tuple[str, bool, str]] = []

    def report(name: str, ok: bool, detail: str) -> None:
        results.append((name, ok, detail))
        print(f"{name:<8} {'ok' if ok else 'FAIL':<4} {detail}", flush=True)

    from edge.config import ProfileError

    try:
        profile = load_with_overrides(args)
    except ProfileError as exc:
        report("profile", False, str(exc).replace("\n", " "))
        return 1
    report(
        "profile", True, f"{args.profile}: role {profile.role}, device {profile.device.site}/{profile.device.device_id}"
    )
    _check_camera(profile, args.timeout, report)
    _check_models(profile, _model_dir(args), report)
    _check_broker(profile, args.timeout, report)
    return 0 if all(ok for _, ok, _ in results) else 1


def _check_camera(profile: Profile, timeout: float, report: Any) -> None:
    try:
        from edge.grabber import probe_camera

        detail = probe_camera(profile.camera, timeout=timeout)
    except Exception as exc:  # any failure to open or read is this check's result
        report("camera", False, f"{profile.camera.source}: {exc}")
    else:
        report("camera", True, detail)


def _check_models(profile: Profile, model_dir: Path, report: Any) -> None:
    try:
        from edge.assembly import build_pipeline
        from edge.roles.registry import analyzer_class

        needs = analyzer_class(profile.role).needs
        pipeline, fallback = build_pipeline(profile, model_dir, needs.face, needs.segmentation)
        pipeline.warmup()
        names = ", ".join(f"{m.name} ({m.sha256[:12]})" for m in pipeline.models)
    except Exception as exc:  # a missing or broken model is this check's result
        report("models", False, f"{model_dir}: {exc}")
    else:
        backend = "onnxruntime (fallback)" if fallback else profile.perception.backend.type
        report("models", True, f"{backend}: {names}")


def _check_broker(profile: Profile, timeout: float, report: Any) -> None:
    try:
        from edge.config import read_secret
        from edge.mqtt_client import check_broker

        password = read_secret(profile.broker.password, "broker.password") if profile.broker.password else None
        detail = check_broker(profile.broker, profile.client_id, password, timeout=timeout)
    except Exception as exc:  # an unreachable or refusing broker is this check's result
        report("broker", False, str(exc))
    else:
        report("broker", True, detail)
