"""Simulated devices: valid wire messages of every kind and a publisher, for demos, tests and benchmarks."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from collector.mqtt_url import parse_broker_url
from contract.wire import Heartbeat, ModelRef, Status, encode, topic_for
from edge.roles.gait.message import GaitMeasure, GaitScreening
from edge.roles.headpose.message import HeadPoseStats, HeadPoseWindow
from edge.roles.posture.message import PostureWindow, WindowStats

_MODEL = ModelRef(name="pose_landmark_full", sha256="0" * 63 + "1")


def posture(
    site: str,
    device: str,
    seq: int,
    end: datetime,
    *,
    cva: float = 52.0,
    high: float = 0.1,
    minutes: float = 1.0,
) -> PostureWindow:
    return PostureWindow(
        device_id=device,
        site=site,
        seq=seq,
        window_start=end - timedelta(minutes=minutes),
        window_end=end,
        models=[_MODEL],
        frames=int(minutes * 60 * 15),
        presence_s=minutes * 60,
        posture_changes=3,
        metrics={
            # Names and bands as the posture role sends them (docs/metrics.md).
            "cva_deg": WindowStats(
                mean=cva,
                p10=cva - 5,
                p50=cva,
                p90=cva + 5,
                valid_frames=800,
                bands={"ok": round((1 - high) / 2, 6), "moderate": round((1 - high) / 2, 6), "high": high},
            ),
            "neck_flexion_deg": WindowStats(mean=8.0, p10=2.0, p50=8.0, p90=14.0, valid_frames=800, bands={}),
        },
    )


def gait(
    site: str, device: str, seq: int, end: datetime, *, predicted: str = "negative", p: float = 0.8
) -> GaitScreening:
    others = [c for c in ("negative", "neutral", "positive") if c != predicted]
    rest = round((1 - p) / 2, 6)
    return GaitScreening(
        device_id=device,
        site=site,
        seq=seq,
        window_start=end - timedelta(seconds=6),
        window_end=end,
        models=[_MODEL],
        outcome="screened",
        probabilities={predicted: p, others[0]: rest, others[1]: rest},  # type: ignore[dict-item]
        predicted=predicted,  # type: ignore[arg-type]
        measures={
            "shoulder_height_diff": GaitMeasure(value=1.5, cycles=3),
            "cadence": GaitMeasure(value=110, cycles=3),
        },
        frames=180,
    )


def headpose(site: str, device: str, seq: int, end: datetime, *, yaw: float = 5.0, rotation: int = 0) -> HeadPoseWindow:
    stats = HeadPoseStats(mean=yaw, minimum=yaw - 3, maximum=yaw + 3, range=6.0, time_above_s=0.0, valid_frames=500)
    return HeadPoseWindow(
        device_id=device,
        site=site,
        seq=seq,
        window_start=end - timedelta(minutes=1),
        window_end=end,
        frames=900,
        presence_s=60,
        metrics={
            "yaw_deg": stats,
            "roll_deg": stats.model_copy(update={"mean": 2.0}),
            "pitch_deg": stats.model_copy(update={"mean": -4.0}),
        },
        severity={"rotation": rotation, "laterocollis": 0, "antero_retrocollis": 1},
    )


def status(site: str, device: str, seq: int, at: datetime, *, state: str = "online", role: str = "posture") -> Status:
    return Status(device_id=device, site=site, seq=seq, state=state, at=at, role=role)  # type: ignore[arg-type]


def heartbeat(
    site: str,
    device: str,
    seq: int,
    at: datetime,
    *,
    fps: float = 28.0,
    outbox_depth: int = 0,
    outbox_dropped: int = 0,
    stages: dict[str, float] | None = None,
) -> Heartbeat:
    return Heartbeat(
        device_id=device,
        site=site,
        seq=seq,
        at=at,
        uptime_s=600.0,
        fps=stages if stages is not None else {"pose": fps, "grab": 30.0},
        frames_dropped=2,
        frames_corrupt=0,
        absent_windows=0,
        outbox_depth=outbox_depth,
        outbox_dropped=outbox_dropped,
        camera_state="open",
        backend="onnxruntime-cpu",
        models=[_MODEL],
    )


def mixed_stream(site: str, device: str, count: int, start_seq: int = 0, seed: int = 0) -> list[tuple[str, bytes]]:
    """`count` (topic, payload) pairs, mostly posture windows with heartbeats and a few screenings."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    out = []
    for i in range(count):
        seq = start_seq + i
        end = now - timedelta(minutes=count - i)
        r = rng.random()
        msg: PostureWindow | GaitScreening | Heartbeat
        if r < 0.1:
            msg = heartbeat(site, device, seq, end)
        elif r < 0.2:
            msg = gait(site, device, seq, end, predicted=rng.choice(["negative", "neutral", "positive"]))
        else:
            msg = posture(site, device, seq, end, cva=rng.uniform(35, 60), high=rng.uniform(0, 0.5))
        out.append((topic_for(site, device, msg.kind), encode(msg)))
    return out


class Publisher:
    """A QoS 1 MQTT v5 publisher that waits for every PUBACK."""

    def __init__(self, broker_url: str, client_id: str, max_inflight: int = 1000) -> None:
        address = parse_broker_url(broker_url)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(max_inflight)
        self.client.max_queued_messages_set(0)
        self._connected = threading.Event()
        self.client.on_connect = lambda *_a: self._connected.set()
        self.client.connect(address.host, address.port)
        self.client.loop_start()
        if not self._connected.wait(10):
            raise TimeoutError(f"publisher {client_id} could not connect to {broker_url}")

    def publish_all(self, messages: list[tuple[str, bytes]], qos: int = 1, timeout: float = 60.0) -> None:
        infos = [self.client.publish(topic, payload, qos=qos) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
