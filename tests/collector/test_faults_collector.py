"""Malformed and hostile payloads: the wire decoder refuses them with a reason, and a running collector
counts each refusal by reason, keeps running, and still stores the next valid message exactly once."""

from __future__ import annotations

import json
import math
import random
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select

from collector.simulate import Publisher, mixed_stream
from collector.storage import Database, open_database, schema
from contract.wire import MAX_PAYLOAD_BYTES, WireError, decode
from tests.support.broker import MosquittoBroker
from tests.support.collector import collector_cmd

REPO = Path(__file__).resolve().parents[2]
REASONS = {"oversized", "encoding", "malformed_json", "unknown_version", "invalid", "wrong_topic"}
SAMPLES = mixed_stream("school-f", "booth-9", 12, seed=7)  # one of every kind, valid, with their topics

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def refused(payload: bytes, topic: str | None = None) -> WireError:
    """Decode must refuse with a known reason; any other exception is a bug in the boundary."""
    with pytest.raises(WireError) as info:
        decode(payload, topic)
    assert info.value.reason in REASONS
    return info.value


# --- property-based, on the decoder ---------------------------------------------------------------


@FAST
@given(st.dictionaries(st.text(max_size=16), json_values, max_size=8))
def test_random_json_objects_are_refused_with_a_reason(obj: dict[str, Any]) -> None:
    refused(json.dumps(obj).encode())


@FAST
@given(st.binary(max_size=2048))
def test_random_bytes_are_refused_with_a_reason(payload: bytes) -> None:
    refused(payload)


@FAST
@given(st.sampled_from(SAMPLES), st.data())
def test_mutated_valid_messages_are_valid_or_refused(sample: tuple[str, bytes], data: st.DataObject) -> None:
    topic, payload = sample
    raw = bytearray(payload)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(raw) - 1))
        op = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        if op == "flip":
            raw[at] ^= data.draw(st.integers(1, 255))
        elif op == "insert":
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        else:
            del raw[at]
    try:
        message = decode(bytes(raw), topic)
    except WireError as exc:
        assert exc.reason in REASONS
    else:  # a mutation that still validates must still match its topic and round-trip
        assert (message.site, message.device_id) == ("school-f", "booth-9")


@FAST
@given(st.sampled_from(SAMPLES), st.data())
def test_valid_messages_with_one_field_replaced_are_valid_or_refused(
    sample: tuple[str, bytes], data: st.DataObject
) -> None:
    topic, payload = sample
    raw = json.loads(payload)
    key = data.draw(st.sampled_from(sorted(raw)))
    raw[key] = data.draw(json_values)
    try:
        message = decode(json.dumps(raw).encode(), topic)
    except WireError as exc:
        assert exc.reason in REASONS
    else:
        assert message.kind == raw["kind"]


@FAST
@given(st.sampled_from(SAMPLES), st.text(min_size=1, max_size=20).filter(lambda k: k.isidentifier()), json_values)
def test_an_added_field_is_always_refused(sample: tuple[str, bytes], key: str, value: Any) -> None:
    topic, payload = sample
    raw = json.loads(payload)
    if key in raw:
        return
    raw[key] = value
    # A NUL anywhere is refused before the schema is read.
    assert refused(json.dumps(raw).encode(), topic).reason == ("encoding" if _holds_nul(value) else "invalid")


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(v) for v in value)
    return False


# --- hostile payloads, named ----------------------------------------------------------------------


def _valid() -> tuple[str, dict[str, Any]]:
    topic, payload = SAMPLES[0]
    return topic, json.loads(payload)


def hostile_payloads() -> list[tuple[str, str, bytes, str]]:
    """(name, topic, payload, expected reason)."""
    topic, raw = _valid()
    text = json.dumps(raw)
    number_field = next(k for k in ("presence_s", "uptime_s", "frames") if k in raw)
    cases: list[tuple[str, str, bytes, str]] = [
        ("deep list", topic, b"[" * 50_000 + b"]" * 50_000, "oversized"),
        ("deep list under the limit", topic, b"[" * 30_000 + b"]" * 30_000, "malformed_json"),
        ("deep object field", topic, text[:-1].encode() + b', "x": ' + b'{"a":' * 10_000 + b"1" + b"}" * 10_001, ""),
        ("nested 300 in a known field", topic, json.dumps({**raw, "models": _nest(300)}).encode(), "invalid"),
        ("huge integer", topic, text.replace(f'"seq": {raw["seq"]}', '"seq": ' + "9" * 5000).encode(), ""),
        ("seq above 2**53", topic, json.dumps({**raw, "seq": 2**64}).encode(), "invalid"),
        ("huge float", topic, json.dumps({**raw, number_field: 1.0}).replace("1.0", "1e400").encode(), "invalid"),
        ("NaN literal", topic, json.dumps({**raw, number_field: math.nan}).encode(), "malformed_json"),
        ("Infinity literal", topic, json.dumps({**raw, number_field: math.inf}).encode(), "malformed_json"),
        ("-Infinity literal", topic, json.dumps({**raw, number_field: -math.inf}).encode(), "malformed_json"),
        ("UTF-16 with BOM", topic, text.encode("utf-16"), "encoding"),
        ("UTF-16-LE without BOM", topic, text.encode("utf-16-le"), "encoding"),
        ("UTF-32", topic, text.encode("utf-32"), "encoding"),
        ("UTF-8 BOM", topic, b"\xef\xbb\xbf" + text.encode(), "malformed_json"),
        ("invalid UTF-8", topic, text.encode()[:20] + b"\xc3\x28\xff" + text.encode()[20:], "encoding"),
        ("Latin-1 text", topic, json.dumps({**raw, "site": "écolé"}, ensure_ascii=False).encode("latin-1"), "encoding"),
        ("lone surrogate escape", topic, json.dumps({**raw, "device_id": "\ud800"}).encode(), "invalid"),
        ("NUL bytes", topic, b"\x00" * 1000, "encoding"),
        ("a NUL byte in a string", topic, text.replace('"site"', '"si\x00te"').encode(), "encoding"),
        ("escaped NUL in a string", topic, json.dumps({**raw, "device_id": "booth-9\u0000"}).encode(), "encoding"),
        ("escaped NUL as a key", topic, json.dumps({**raw, "\u0000": 1}).encode(), "encoding"),
        ("escaped backslash, then u0000", topic, json.dumps({**raw, "device_id": "b\\u0000"}).encode(), "invalid"),
        ("empty", topic, b"", "malformed_json"),
        ("top-level array", topic, json.dumps([raw]).encode(), "malformed_json"),
        ("top-level string", topic, b'"hello"', "malformed_json"),
        ("schema_version true", topic, json.dumps({**raw, "schema_version": True}).encode(), "unknown_version"),
        ("duplicate keys", topic, text[:-1].encode() + b', "kind": "gait"}', "invalid"),
        ("extra image field", topic, json.dumps({**raw, "frame_jpeg": "/9j/4AAQ" * 100}).encode(), "invalid"),
        ("64 KiB + 1", topic, b" " * (MAX_PAYLOAD_BYTES + 1), "oversized"),
        ("10 MB", topic, b"{" + b'"a":1,' * (10 * 1024 * 1024 // 6) + b'"b":2}', "oversized"),
        ("another site's topic", topic.replace("school-f", "school-x"), text.encode(), "wrong_topic"),
        ("unknown kind topic", topic.rsplit("/", 1)[0] + "/frames", text.encode(), "wrong_topic"),
    ]
    return cases


def _nest(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("case", hostile_payloads(), ids=lambda c: c[0])
def test_hostile_payload_is_refused_with_its_reason(case: tuple[str, str, bytes, str]) -> None:
    name, topic, payload, reason = case
    started = time.monotonic()
    error = refused(payload, topic)
    assert time.monotonic() - started < 2.0, f"{name}: decoding took too long"
    if reason:
        assert error.reason == reason, f"{name}: {error}"
    assert len(str(error)) < 1000, "the error must be short enough to log and store"


# --- a running collector through a real broker --------------------------------------------------


def _wait_until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _stored(db: Database) -> tuple[int, dict[str, int]]:
    with db.reader.connect() as conn:
        scores = int(conn.execute(select(func.count()).select_from(schema.scores)).scalar() or 0)
        rejects = dict(conn.execute(select(schema.reject_counts.c.reason, schema.reject_counts.c["count"])).all())
    return scores, {str(k): int(v) for k, v in rejects.items()}


def _expected_reason(topic: str, payload: bytes) -> str | None:
    try:
        decode(payload, topic)
    except WireError as exc:
        return exc.reason
    return None


def test_running_collector_refuses_hostile_payloads_counts_them_and_stores_the_next_valid_one(
    tmp_path: Path, broker: MosquittoBroker
) -> None:
    db_url = f"sqlite:///{tmp_path}/c.db"
    db = open_database(db_url)
    log = tmp_path / "collector.log"
    cmd = collector_cmd(broker.url, db_url, "collector-faults")
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    try:
        _wait_until(lambda: "subscribed to" in log.read_text(), 30, f"collector start ({log})")
        rng = random.Random(8)
        topic = SAMPLES[0][0]
        messages = [(t, p) for _, t, p, _ in hostile_payloads()]
        messages += [(topic, rng.randbytes(rng.randrange(0, 3000))) for _ in range(100)]
        messages += [(t, _mutate(p, rng)) for t, p in SAMPLES for _ in range(10)]
        expected = Counter(r for t, p in messages if (r := _expected_reason(t, p)) is not None)
        valid_among_mutants = sum(1 for t, p in messages if _expected_reason(t, p) is None)
        _publish(broker, messages)
        # After all of it, one valid message (sent twice) is stored once.
        fresh = mixed_stream("school-f", "booth-10", 1, seed=99)
        _publish(broker, fresh + fresh)
        total = valid_among_mutants + 1
        _wait_until(lambda: _stored(db) == (total, dict(expected)), 60, f"counts (now {_stored(db)})")
        time.sleep(0.5)
        assert _stored(db) == (total, dict(expected)), "something was counted or stored twice"
        assert proc.poll() is None, f"collector stopped: {log.read_text()[-2000:]}"
        with db.reader.connect() as conn:
            ids = [
                r[0]
                for r in conn.execute(select(schema.scores.c.message_id).where(schema.scores.c.device_id == "booth-10"))
            ]
            dead_max = conn.execute(select(func.max(schema.dead_letters.c.payload_size))).scalar()
            dead_longest = conn.execute(select(func.max(func.length(schema.dead_letters.c.payload)))).scalar()
        assert ids == [json.loads(fresh[0][1])["message_id"]]
        assert dead_max is not None and dead_max > 10 * 1024 * 1024 - 100, "the 10 MB payload reached the collector"
        assert dead_longest is not None and dead_longest <= 4096, "dead letters keep only a prefix of a payload"
        print(f"\nrefused by reason: {dict(sorted(expected.items()))}; valid mutants stored: {valid_among_mutants}")
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        db.dispose()


def test_broker_with_the_shipped_packet_limit_refuses_10_mb_and_the_collector_goes_on(tmp_path: Path) -> None:
    """The shipped broker configuration caps packets; a 10 MB publish is cut off at the broker."""
    shipped = (REPO / "firmware_config/mosquitto/edgescreen.conf").read_text()
    limit = next(line for line in shipped.splitlines() if line.startswith("max_packet_size"))
    broker = MosquittoBroker(tmp_path / "broker", extra_config=limit).start()
    try:
        from collector.ingest import Ingestor, IngestSettings

        db = open_database(f"sqlite:///{tmp_path}/c.db")
        ing = Ingestor(IngestSettings(broker.url, "collector-limit"), db)
        ing.start()
        assert ing.wait_connected()
        time.sleep(0.3)
        topic = SAMPLES[0][0]
        client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="big", protocol=mqtt.MQTTv5)
        disconnected: list[object] = []
        client.on_disconnect = lambda *a: disconnected.append(a[3])
        client.connect(broker.host, broker.port)
        client.loop_start()
        client.publish(topic, b"x" * (10 * 1024 * 1024), qos=1)
        _wait_until(lambda: bool(disconnected), 20, "the broker to drop the 10 MB publisher")
        client.loop_stop()
        good = mixed_stream("school-f", "booth-11", 3, seed=5)
        _publish(broker, good)
        _wait_until(lambda: _stored(db)[0] == 3, 20, "valid messages after the refusal")
        assert ing.stats.received == 3, "the 10 MB payload never reached the collector"
        ing.stop()
        db.dispose()
    finally:
        broker.stop()


def _mutate(payload: bytes, rng: random.Random) -> bytes:
    raw = bytearray(payload)
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(len(raw))
        raw[at] ^= rng.randrange(1, 256)
    return bytes(raw)


def _publish(broker: MosquittoBroker, messages: list[tuple[str, bytes]]) -> None:
    pub = Publisher(broker.url, f"hostile-{time.monotonic_ns()}")
    try:
        pub.publish_all(messages)
    finally:
        pub.close()
