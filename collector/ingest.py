"""MQTT ingest: validate each payload, store a batch in one transaction, then acknowledge it.

Acknowledgement is manual (paho `manual_ack=True`): a PUBACK goes out only after the batch holding the
message has committed. While the database is down nothing is acknowledged, the broker keeps the
messages (persistent session), and the writer retries the same batch with backoff.

Three parts share the work: paho's network thread queues each PUBLISH; the prepare thread validates it
(`contract.wire.decode`) and builds its rows (`BatchBuilder`); a writer process (collector/ingest_writer.py)
stores each batch. The prepare thread builds the next batch while the writer stores the previous one, and
the events thread acknowledges a batch when the writer reports its commit.

After the commit the events thread also publishes receipts (`contract.receipts`, QoS 1): per device, one on
`edgescreen/v1/{site}/{device}/receipts` naming the batch's scores of that device that are stored now or
were stored before (duplicates). A device deletes a score from its outbox only on such a receipt, so a
broker that loses acknowledged messages in a crash costs a re-send, not a score. The collector does not
read receipts: it subscribes with No Local, the shipped ACL keeps other collectors' from it, and one that
still arrives is acknowledged and skipped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from collector.alerts.config import RulesFile
from collector.ingest_writer import Committed, DatabaseDown, WriterProcess, WriterSettings
from collector.mqtt_client import BufferedClient, message_topic
from collector.mqtt_url import TlsFiles, client_tls, parse_broker_url
from collector.storage.engine import Database
from collector.storage.writes import BatchBuilder, PreparedBatch, Rejected
from collector.timeutil import utcnow_naive
from contract.receipts import encode_receipts, is_receipts_topic, receipts_topic
from contract.wire import MAX_CLOCK_AHEAD_S, SYSTEM_KINDS, TOPIC_ROOT, Alert, WireError, check_clock, decode

log = logging.getLogger(__name__)

AlertSink = Callable[[list[Alert]], None]

# Batches handed to the writer and not yet reported: one being written, one waiting, so it never idles.
MAX_IN_FLIGHT = 2
RECONNECT_MAX_S = 10  # longest wait between two connection attempts (doubling from 1 s)
_CHUNK = 256  # messages validated between looks at whether the writer can take a batch


@dataclass
class IngestSettings:
    broker_url: str
    client_id: str
    share_group: str | None = None
    batch_max: int = 2000
    # MQTT v5 Receive Maximum: how many unacknowledged messages the broker may have in flight to us. Room
    # for the batch being written, the one waiting for the writer and the one being built.
    receive_maximum: int = 10_000
    session_expiry_s: int = 7 * 24 * 3600
    keepalive_s: int = 30
    dead_letter_limit: int = 10_000
    backoff_max_s: float = 5.0
    # A timestamp further ahead of this collector's clock is dead-lettered (reason `clock`).
    max_clock_ahead_s: float = MAX_CLOCK_AHEAD_S
    rules: RulesFile | None = None  # alert rules, evaluated by the writer process on each committed batch
    tls: TlsFiles = field(default_factory=TlsFiles)  # for mqtts://: CA, and certificate + key for mutual TLS
    receipts: bool = True  # publish a receipt per device after each commit (devices delete scores on it)

    @property
    def subscription(self) -> str:
        topic = f"{TOPIC_ROOT}/+/+/+"
        return f"$share/{self.share_group}/{topic}" if self.share_group else topic


@dataclass
class IngestStats:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    receipts: int = 0  # receipts published
    rejected: Counter[str] = field(default_factory=Counter)
    batches: int = 0
    db_errors: int = 0
    connected: bool = False
    down_since: datetime | None = None  # naive UTC: when the broker connection was lost (or first tried); None while up
    connect_failures: int = 0  # failed connection attempts since then
    subscribed: bool = False  # the broker acknowledged the subscription: from here on it keeps our messages
    db_ok: bool = True
    validate_s: float = 0.0  # time spent validating payloads and building rows
    commit_s: float = 0.0  # time the writer spent writing batches (including retries)


# (connection generation, packet id, qos, topic, payload) of a received PUBLISH.
_Incoming = tuple[int, int, int, str, bytes]


@dataclass
class _Batch:
    """A batch from its first message to its acknowledgement."""

    builder: BatchBuilder
    items: list[_Incoming] = field(default_factory=list)  # what to acknowledge after the commit
    valid: int = 0  # validated messages, duplicates included
    reasons: list[str] = field(default_factory=list)  # of rejected messages
    prepared: PreparedBatch | None = None  # kept until committed, to hand to a replacement writer


class Ingestor:
    """Subscribes, validates, stores and acknowledges; `on_alerts` gets the alerts that the rules (settings.rules)
    opened or resolved on each committed batch, to deliver."""

    def __init__(self, settings: IngestSettings, db: Database, on_alerts: AlertSink | None = None) -> None:
        self.settings = settings
        self.db = db
        self.on_alerts = on_alerts
        self.stats = IngestStats()
        self._incoming: deque[_Incoming] = deque()
        self._wake = threading.Event()
        self._sleeping = False
        self._stop = threading.Event()
        self._ack_lock = threading.Lock()
        self._generation = 0
        self._writer_lock = threading.Lock()  # sending to the writer, replacing it
        self._sent_lock = threading.Lock()
        self._writer: WriterProcess | None = None
        self._sent: dict[int, _Batch] = {}  # handed to the writer, not yet committed; in order
        self._next_id = 0
        # Last sign of progress: a commit, the writer's report of an unavailable database, or nothing waiting.
        self._progress_at = time.monotonic()
        self._preparer = threading.Thread(target=self._prepare_loop, name="collector-prepare", daemon=True)
        self._events = threading.Thread(target=self._event_loop, name="collector-commits", daemon=True)
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
        context = client_tls(address, self.settings.tls)
        if context is not None:
            client.tls_set_context(context)
        client.reconnect_delay_set(min_delay=1, max_delay=RECONNECT_MAX_S)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_subscribe = self._on_subscribe
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
            self.stats.connect_failures += 1
            log.error("broker refused the connection: %s (attempt %d)", reason, self.stats.connect_failures)
            return
        with self._ack_lock:
            self._generation += 1
        self.stats.connected = True
        self.stats.down_since = None
        self.stats.connect_failures = 0
        log.info("connected to %s:%d (session present: %s)", self._address.host, self._address.port, flags)
        # No Local: not our own receipts (MQTT forbids it on a shared subscription; the ACL keeps them away there).
        local = self.settings.share_group is None
        client.subscribe(self.settings.subscription, options=SubscribeOptions(qos=1, noLocal=local))

    def _on_connect_fail(self, _c: mqtt.Client, _u: object) -> None:
        # paho retries on its own, waiting twice as long each time up to the reconnect delay's maximum; without this
        # an unreachable broker would leave nothing in the log after "collector running".
        stats = self.stats
        stats.connect_failures += 1
        since = f"{stats.down_since:%Y-%m-%d %H:%M:%S} UTC" if stats.down_since else "the start"
        log.warning(
            "cannot connect to the broker at %s:%d (attempt %d, not connected since %s); retrying, waiting up to %d s",
            self._address.host, self._address.port, stats.connect_failures, since, RECONNECT_MAX_S,
        )  # fmt: skip

    def broker_down_since(self) -> datetime | None:
        """When the broker connection was lost, or first tried (naive UTC); None while connected."""
        return None if self.stats.connected else self.stats.down_since

    def _on_subscribe(self, _c: mqtt.Client, _u: object, _mid: int, reasons: list[Any], _p: object) -> None:
        refused = [r for r in reasons if getattr(r, "is_failure", False)]
        if refused:
            # An ACL that denies the filter: the collector would otherwise sit connected and receive nothing.
            log.error("broker refused the subscription to %s: %s", self.settings.subscription, refused[0])
            return
        self.stats.subscribed = True
        log.info("subscribed to %s", self.settings.subscription)

    def _on_disconnect(self, _c: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        # Messages of the old connection are redelivered by the broker; their packet ids must not be acked now.
        with self._ack_lock:
            self._generation += 1
        self.stats.connected = False
        if self.stats.down_since is None:
            self.stats.down_since = utcnow_naive()
        self.stats.subscribed = False
        if not self._stop.is_set():
            log.warning("disconnected from broker (%s); reconnecting", reason)

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        topic = message_topic(msg)
        self._queue((self._generation, msg.mid, msg.qos, topic, bytes(msg.payload)))

    def _on_raw_message(self, topic: bytes, mid: int, qos: int, payload: bytes) -> None:
        self._queue((self._generation, mid, qos, topic.decode("utf-8", "replace"), payload))

    def _queue(self, item: _Incoming) -> None:
        self._incoming.append(item)
        if self._sleeping:
            self._wake.set()

    # --- lifecycle ---------------------------------------------------------------------------------
    def _writer_settings(self) -> WriterSettings:
        s = self.settings
        return WriterSettings(self.db.url, s.dead_letter_limit, s.backoff_max_s, s.rules)

    def start(self) -> None:
        self._writer = WriterProcess(self._writer_settings())
        self._events.start()
        self._preparer.start()
        self.stats.down_since = utcnow_naive()  # not connected yet: the dashboard and status say since when
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
        self._wake.set()
        self._preparer.join(timeout=30)
        with self._writer_lock:
            writer = self._writer
        if writer is not None:
            # The writer stores what it was sent, then exits (at once if the database is down).
            writer.request_stop()
            self._events.join(timeout=60)
            writer.join(timeout=10)
            writer.close()
        self.client.disconnect()
        self.client.loop_stop()

    def alive(self) -> bool:
        """Whether the threads that prepare batches and take the writer's commit reports still run."""
        return self._preparer.is_alive() and self._events.is_alive()

    def stalled_s(self) -> float:
        """Seconds that messages have waited with none committed and no word from the writer; 0 while nothing waits.

        A writer retrying against an unavailable database reports each attempt (db_error) and is not stalled:
        restarting the collector would not bring the database back. Called about once a second (service loop).
        """
        now = time.monotonic()
        if not self._incoming and not self._sent:
            self._progress_at = now
            return 0.0
        return now - self._progress_at

    def wait_connected(self, timeout: float = 10.0) -> bool:
        """Wait until connected and subscribed: only then does the broker keep messages for this collector."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.stats.subscribed:
                return True
            time.sleep(0.02)
        return False

    # --- prepare thread ----------------------------------------------------------------------------
    def _new_batch(self) -> _Batch:
        return _Batch(BatchBuilder(self.db.dialect))

    def _prepare_loop(self) -> None:
        batch = self._new_batch()
        batch_max = self.settings.batch_max
        incoming = self._incoming
        while not self._stop.is_set():
            took = False
            if incoming and len(batch.items) < batch_max:
                self._prepare(batch, min(_CHUNK, batch_max - len(batch.items)))
                took = True
            # Hand over when the writer has room, and the batch is full or nothing more is waiting.
            if batch.items and len(self._sent) < MAX_IN_FLIGHT and (len(batch.items) >= batch_max or not incoming):
                self._submit(batch)
                batch = self._new_batch()
            elif not took:
                self._sleep(batch)
        # Stopping: what was not handed over is not acknowledged; the broker redelivers it.

    def _sleep(self, batch: _Batch) -> None:
        """Wait for a message or a commit (whichever could let the loop go on), at most 0.2 s."""
        self._sleeping = True
        self._wake.clear()
        can_take = self._incoming and len(batch.items) < self.settings.batch_max
        can_send = batch.items and len(self._sent) < MAX_IN_FLIGHT
        if not (can_take or can_send or self._stop.is_set()):
            self._wake.wait(0.2)
        self._sleeping = False

    def _prepare(self, batch: _Batch, n: int) -> None:
        t0 = time.perf_counter()
        now = utcnow_naive()
        clock, ahead_s = now.replace(tzinfo=UTC), self.settings.max_clock_ahead_s
        builder, items, pop = batch.builder, batch.items, self._incoming.popleft
        for _ in range(min(n, len(self._incoming))):  # only this thread takes from the left
            item = pop()
            items.append(item)
            topic, payload = item[3], item[4]
            try:
                message = decode(payload, topic)
                check_clock(message, clock, ahead_s)
                text = payload.decode("utf-8")
                builder.add(message, text, now)
            except WireError as exc:
                if exc.reason == "wrong_topic" and is_receipts_topic(topic):
                    continue  # a receipt (of a collector on the same shared subscription): not a device message
                log.debug("rejected message on %s: %s", topic, exc)
                builder.reject(Rejected(topic, exc.reason, exc.detail, payload, now))
                batch.reasons.append(exc.reason)
                continue
            except Exception as exc:
                # Not storable for a reason of ours (a bug in flattening, say): dead-letter it and go on, so
                # that one message cannot stop ingest.
                log.exception("message on %s could not be stored", topic)
                builder.reject(Rejected(topic, "store_error", str(exc)[:500], payload, now))
                batch.reasons.append("store_error")
                continue
            batch.valid += 1
        self.stats.validate_s += time.perf_counter() - t0

    def _submit(self, batch: _Batch) -> None:
        batch.prepared = batch.builder.build()
        # Under the writer lock, so that a replacement writer gets each open batch exactly once, in order.
        with self._writer_lock:
            with self._sent_lock:
                batch_id = self._next_id
                self._next_id += 1
                self._sent[batch_id] = batch
            assert self._writer is not None
            try:
                self._writer.send(batch_id, batch.prepared)
            except OSError as exc:
                # The writer is gone; the events thread starts another and hands it every batch still open.
                log.debug("collector writer unreachable (%s); batch %d waits for its replacement", exc, batch_id)

    # --- events thread -----------------------------------------------------------------------------
    def _event_loop(self) -> None:
        while True:
            writer = self._writer
            assert writer is not None
            try:
                event = writer.recv()
            except (EOFError, OSError):
                # A service stop signals every process of the service: the writer may end a moment before
                # stop() reaches this process. Only a writer that ended on its own is replaced.
                if self._stop.wait(2.0):
                    return
                self._replace_writer(writer)
                continue
            match event:
                case Committed():
                    self._committed(event.batch_id, event.new, event.conflicts, event.seconds, event.refused)
                    if event.alerts and self.on_alerts is not None:
                        self.on_alerts(event.alerts)
                case DatabaseDown():
                    self._progress_at = time.monotonic()
                    self.stats.db_errors += 1
                    if self.stats.db_ok:
                        log.warning("database unavailable (%s); holding acknowledgements and retrying", event.error)
                    self.stats.db_ok = False

    def _replace_writer(self, old: WriterProcess) -> None:
        old.process.join(1.0)
        log.error("collector writer process ended (exit code %s); starting another", old.process.exitcode)
        with self._writer_lock:
            old.close()
            self._writer = writer = WriterProcess(self._writer_settings())
            with self._sent_lock:
                still_open = list(self._sent.items())
            try:
                for batch_id, batch in still_open:
                    assert batch.prepared is not None
                    writer.send(batch_id, batch.prepared)
            except OSError:
                pass  # gone again: the next turn of the events loop replaces it

    def _committed(self, batch_id: int, new: list[int], conflicts: int, seconds: float, refused: list[int]) -> None:
        with self._sent_lock:
            batch = self._sent.pop(batch_id)
        self._progress_at = time.monotonic()
        self._wake.set()
        self._acknowledge(batch.items)
        if self.settings.receipts:
            self._send_receipts(batch, refused)
        if not self.stats.db_ok:
            log.info("database reachable again; resuming")
            self.stats.db_ok = True
        stats = self.stats
        stats.commit_s += seconds
        stats.batches += 1
        stats.received += len(batch.items)
        stats.stored += len(new)
        stats.duplicates += batch.valid - len(new) - conflicts
        stats.rejected.update(batch.reasons)
        if conflicts:
            stats.rejected["conflict"] += conflicts

    def _send_receipts(self, batch: _Batch, refused: list[int]) -> None:
        """Per device, a receipt naming the batch's scores that are stored (now or before); not status or heartbeat,
        which no outbox holds, nor rows that were dead-lettered."""
        assert batch.prepared is not None
        skip = set(refused)
        per_device: dict[tuple[str, str], list[str]] = {}
        for i, row in enumerate(batch.prepared.scores):
            if row[3] in SYSTEM_KINDS or i in skip:
                continue
            key = (row[1], row[2])
            ids = per_device.get(key)
            if ids is None:
                ids = per_device[key] = []
            ids.append(row[0])
        publish = self.client.publish
        for (site, device), ids in per_device.items():
            topic = receipts_topic(site, device)
            for payload in encode_receipts(site, device, ids):
                publish(topic, payload, qos=1)
                self.stats.receipts += 1

    def _acknowledge(self, items: list[_Incoming]) -> None:
        with self._ack_lock:
            generation = self._generation
            current = [item for item in items if item[2] > 0 and item[0] == generation]
            self.client.ack_batch(item[1] for item in current if item[2] == 1)
            for item in current:
                if item[2] == 2:
                    self.client.ack(item[1], item[2])
