"""MQTT ingest: validate each payload, store a batch in one transaction, then acknowledge it.

Acknowledgement is manual (paho `manual_ack=True`): a PUBACK goes out only after the batch holding the
message has committed. While the database is down nothing is acknowledged, the broker keeps the
messages (persistent session), and the writer retries the same batch with backoff.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

from collector.mqtt_client import BufferedClient
from collector.mqtt_url import parse_broker_url
from collector.storage.engine import Database
from collector.storage.writes import Accepted, Rejected, write_batch
from collector.timeutil import utcnow_naive
from edge.wire import TOPIC_ROOT, WireError, decode

log = logging.getLogger(__name__)

NewMessages = Callable[[list[Accepted]], None]


@dataclass
class IngestSettings:
    broker_url: str
    client_id: str
    share_group: str | None = None
    batch_max: int = 2000
    # MQTT v5 Receive Maximum: how many unacknowledged messages the broker may have in flight to us.
    receive_maximum: int = 4000
    session_expiry_s: int = 7 * 24 * 3600
    keepalive_s: int = 30
    dead_letter_limit: int = 10_000
    backoff_max_s: float = 5.0

    @property
    def subscription(self) -> str:
        topic = f"{TOPIC_ROOT}/+/+/+"
        return f"$share/{self.share_group}/{topic}" if self.share_group else topic


@dataclass
class IngestStats:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    batches: int = 0
    db_errors: int = 0
    connected: bool = False
    db_ok: bool = True
    validate_s: float = 0.0  # time spent validating payloads
    commit_s: float = 0.0  # time spent writing batches (including retries)


@dataclass(frozen=True)
class _Incoming:
    generation: int
    mid: int
    qos: int
    topic: str
    payload: bytes


_RETRYABLE = (OperationalError, InterfaceError, DisconnectionError)


class Ingestor:
    """Subscribes, validates, stores and acknowledges; `on_new` gets each committed batch of new messages."""

    def __init__(self, settings: IngestSettings, db: Database, on_new: NewMessages | None = None) -> None:
        self.settings = settings
        self.db = db
        self.on_new = on_new
        self.stats = IngestStats()
        self._queue: queue.Queue[_Incoming] = queue.Queue()
        self._stop = threading.Event()
        self._ack_lock = threading.Lock()
        self._generation = 0
        self._writer = threading.Thread(target=self._write_loop, name="collector-writer", daemon=True)
        self.client: BufferedClient = self._make_client()

    # --- MQTT -------------------------------------------------------------------------------------
    def _make_client(self) -> BufferedClient:
        address = parse_broker_url(self.settings.broker_url)
        client = BufferedClient(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.settings.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        if address.username:
            client.username_pw_set(address.username, address.password)
        if address.tls:
            client.tls_set()
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_raw_message = self._on_raw_message
        self._address = address
        return client

    def _connect_properties(self) -> Properties:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.settings.session_expiry_s
        props.ReceiveMaximum = self.settings.receive_maximum
        return props

    def _on_connect(self, client: mqtt.Client, _u: object, flags: object, reason: object, _p: object) -> None:
        if getattr(reason, "is_failure", False):
            log.error("broker refused the connection: %s", reason)
            return
        with self._ack_lock:
            self._generation += 1
        self.stats.connected = True
        log.info("connected to %s:%d (session present: %s)", self._address.host, self._address.port, flags)
        client.subscribe(self.settings.subscription, options=SubscribeOptions(qos=1))

    def _on_disconnect(self, _c: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        # Messages of the old connection are redelivered by the broker; their packet ids must not be acked now.
        with self._ack_lock:
            self._generation += 1
        self.stats.connected = False
        if not self._stop.is_set():
            log.warning("disconnected from broker (%s); reconnecting", reason)

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        topic = msg._topic.decode("utf-8", "replace")
        self._queue.put(_Incoming(self._generation, msg.mid, msg.qos, topic, bytes(msg.payload)))

    def _on_raw_message(self, topic: bytes, mid: int, qos: int, payload: bytes) -> None:
        self._queue.put(_Incoming(self._generation, mid, qos, topic.decode("utf-8", "replace"), payload))

    # --- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        self._writer.start()
        self.client.connect_async(
            self._address.host,
            self._address.port,
            keepalive=self.settings.keepalive_s,
            clean_start=False,
            properties=self._connect_properties(),
        )
        self.client.loop_start()

    def stop(self) -> None:
        self._stop.set()
        self._writer.join(timeout=30)
        self.client.disconnect()
        self.client.loop_stop()

    def wait_connected(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.stats.connected:
                return True
            time.sleep(0.02)
        return False

    # --- writer ------------------------------------------------------------------------------------
    def _take_batch(self) -> list[_Incoming]:
        try:
            first = self._queue.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        while len(batch) < self.settings.batch_max:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _write_loop(self) -> None:
        while not self._stop.is_set():
            batch = self._take_batch()
            if not batch:
                continue
            t0 = time.perf_counter()
            accepted, rejected = self._validate(batch)
            t1 = time.perf_counter()
            new = self._commit(accepted, rejected)
            self.stats.validate_s += t1 - t0
            self.stats.commit_s += time.perf_counter() - t1
            if new is None:
                return  # stopping while the database is down: nothing acknowledged, the broker keeps it
            self._acknowledge(batch)
            self.stats.batches += 1
            self.stats.received += len(batch)
            self.stats.stored += len(new)
            self.stats.duplicates += len(accepted) - len(new)
            for item in rejected:
                self.stats.rejected[item.reason] += 1
            if new and self.on_new is not None:
                try:
                    self.on_new(new)
                except Exception:
                    # Alerting must never stop ingest; the stored scores are safe either way.
                    log.exception("alert evaluation failed for a batch of %d messages", len(new))

    def _validate(self, batch: list[_Incoming]) -> tuple[list[Accepted], list[Rejected]]:
        accepted: list[Accepted] = []
        rejected: list[Rejected] = []
        now = utcnow_naive()
        for item in batch:
            try:
                message = decode(item.payload, item.topic)
            except WireError as exc:
                log.debug("rejected message on %s: %s", item.topic, exc)
                rejected.append(Rejected(item.topic, exc.reason, exc.detail, item.payload, now))
                continue
            accepted.append(Accepted(message, item.payload.decode("utf-8"), now))
        return accepted, rejected

    def _commit(self, accepted: list[Accepted], rejected: list[Rejected]) -> list[Accepted] | None:
        """Write until it commits; None when asked to stop before it could."""
        delay = 0.1
        while True:
            try:
                new = self._commit_once(accepted, rejected)
                if not self.stats.db_ok:
                    log.info("database reachable again; resuming")
                self.stats.db_ok = True
                return new
            except _RETRYABLE as exc:
                self.stats.db_errors += 1
                if self.stats.db_ok:
                    log.warning("database unavailable (%s); holding acknowledgements and retrying", exc)
                self.stats.db_ok = False
            if self._stop.wait(delay):
                return None
            delay = min(delay * 2, self.settings.backoff_max_s)

    def _commit_once(self, accepted: list[Accepted], rejected: list[Rejected]) -> list[Accepted]:
        try:
            with self.db.engine.begin() as conn:
                return write_batch(conn, self.db, accepted, rejected, self.settings.dead_letter_limit)
        except _RETRYABLE:
            raise
        except Exception as exc:
            # Not an outage but something in this batch (a constraint, or a message the flattening chokes
            # on): store message by message and dead-letter what fails, so one message cannot stop ingest.
            log.error("batch of %d failed to store (%s); storing one by one", len(accepted), exc)
            return self._commit_one_by_one(accepted, rejected)

    def _commit_one_by_one(self, accepted: list[Accepted], rejected: list[Rejected]) -> list[Accepted]:
        new: list[Accepted] = []
        failed = list(rejected)
        for item in accepted:
            try:
                with self.db.engine.begin() as conn:
                    new += write_batch(conn, self.db, [item], [], self.settings.dead_letter_limit)
            except _RETRYABLE:
                raise
            except Exception as exc:
                log.error("message %s could not be stored: %s", item.message.message_id, exc)
                topic = f"{TOPIC_ROOT}/{item.message.site}/{item.message.device_id}/{item.message.kind}"
                failed.append(Rejected(topic, "store_error", str(exc)[:500], item.payload.encode(), item.received_at))
        with self.db.engine.begin() as conn:
            write_batch(conn, self.db, [], failed, self.settings.dead_letter_limit)
        return new

    def _acknowledge(self, batch: list[_Incoming]) -> None:
        with self._ack_lock:
            current = [item for item in batch if item.qos > 0 and item.generation == self._generation]
            self.client.ack_batch(item.mid for item in current if item.qos == 1)
            for item in current:
                if item.qos == 2:
                    self.client.ack(item.mid, item.qos)
