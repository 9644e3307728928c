"""MQTT v5 delivery of the outbox: TLS (mutual), QoS 1, persistent session, last will, ordered replay.

The publisher thread sends outbox rows in id order, at most `max_inflight` unacknowledged at a time.
With `delivery.confirm: receipt` (the default) a PUBACK only marks a row "sent, awaiting receipt": the row
is deleted when the collector's receipt (`contract.receipts`, on this device's own receipts topic) names its
message_id, and sent again when no receipt came within `receipt_timeout_s` (doubling per attempt up to
`receipt_timeout_max_s`). A broker acknowledges before its periodic save, so this is what makes a broker
crash lose nothing. With `confirm: puback` (a collector that sends no receipts) a row is deleted when its
PUBACK arrives with a success reason code. Within one process paho keeps unacknowledged messages and
resends them after a reconnect (same packet id, DUP set); after a restart the outbox is sent again.
Duplicates are therefore possible and are the collector's to remove (by message_id); losses are not.

The receipts subscription is made again on every CONNACK: a broker that lost its state (a crash before its
save, a fresh broker) does not have it in the session it resumes.

`online` (retained) is published only after a successful CONNACK; `offline` (retained) is the last will
and is also published on a clean stop.

With a client certificate the client id is the certificate's identity (its CN): the shipped broker binds the
two, so no other certificate can take over this device's session or fire its last will.
"""

from __future__ import annotations

import collections
import logging
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import BaseModel

from contract.errors import EdgeScreenError
from contract.receipts import decode_receipt, receipts_topic
from contract.tls_identity import CertificateIdentityError, certificate_identity
from contract.wire import Status, WireError, encode, topic_for, utcnow
from edge.config import BrokerConfig, DeliveryConfig, SecretError, secret_path
from edge.outbox import Outbox

log = logging.getLogger(__name__)


class MqttConfigError(EdgeScreenError, RuntimeError):
    """The broker settings cannot be used (missing certificate file, bad key...)."""


@dataclass
class PublisherStats:
    sent: int = 0
    acked: int = 0
    refused: int = 0
    resent: int = 0  # re-sent because no receipt came in time
    confirmed: int = 0  # deleted because a receipt named them
    receipts: int = 0
    bad_receipts: int = 0
    connects: int = 0
    disconnects: int = 0
    last_error: str | None = None
    refused_codes: dict[str, int] = field(default_factory=dict)


def client_id_for(broker: BrokerConfig, default: str) -> str:
    """The client id to connect with: the client certificate's identity when there is one, else `default`.

    A `broker.client_id` that differs from the certificate's identity is refused: the broker would replace it.
    """
    ref = broker.tls.cert if broker.tls is not None else None
    if ref is None:
        return default
    try:
        identity = certificate_identity(secret_path(ref, "broker.tls.cert"))
    except (SecretError, CertificateIdentityError) as exc:
        raise MqttConfigError(f"broker.tls.cert: {exc}") from exc
    if broker.client_id is not None and broker.client_id != identity:
        raise MqttConfigError(
            f"broker.client_id {broker.client_id!r}: with a client certificate the client id is the certificate's "
            f"identity {identity!r}; drop broker.client_id"
        )
    return identity


def make_client(broker: BrokerConfig, client_id: str, password: bytes | None = None) -> mqtt.Client:
    """A paho client configured for MQTT v5, TLS and credentials as the profile says (not yet connected)."""
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
        reconnect_on_failure=True,
    )
    if broker.tls is not None:
        tls = broker.tls
        paths: dict[str, Path | None] = {}
        for label, ref in (("ca", tls.ca), ("cert", tls.cert), ("key", tls.key)):
            try:
                path = None if ref is None else secret_path(ref, f"broker.tls.{label}")
            except SecretError as exc:
                raise MqttConfigError(str(exc)) from exc
            if path is not None and not path.is_file():
                raise MqttConfigError(f"broker.tls.{label}: {path} does not exist")
            paths[label] = path
        try:
            client.tls_set(
                ca_certs=str(paths["ca"]),
                certfile=str(paths["cert"]) if paths["cert"] else None,
                keyfile=str(paths["key"]) if paths["key"] else None,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise MqttConfigError(f"broker.tls: cannot load {paths}: {exc}") from exc
    elif broker.url.startswith("mqtts://"):
        raise MqttConfigError("mqtts:// needs broker.tls")
    if broker.username is not None:
        client.username_pw_set(broker.username, password.decode("utf-8") if password is not None else None)
    client.reconnect_delay_set(min_delay=max(1, round(broker.reconnect_min_s)), max_delay=round(broker.reconnect_max_s))
    client.max_inflight_messages_set(broker.max_inflight)
    client.max_queued_messages_set(0)
    return client


def connect_properties(broker: BrokerConfig, persistent: bool = True) -> Properties:
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = broker.session_expiry_s if persistent else 0
    return props


class MqttPublisher:
    """Drains an outbox to the broker in order; owns the connection, the status and the last will."""

    def __init__(
        self,
        broker: BrokerConfig,
        outbox: Outbox,
        *,
        site: str,
        device_id: str,
        role: str | None,
        client_id: str,
        password: bytes | None = None,
        delivery: DeliveryConfig | None = None,
    ) -> None:
        self.broker = broker
        self.delivery = delivery if delivery is not None else DeliveryConfig()
        self.by_receipt = self.delivery.confirm == "receipt"
        self.receipts_topic = receipts_topic(site, device_id)
        self.outbox = outbox
        self.site = site
        self.device_id = device_id
        self.role = role
        self.stats = PublisherStats()
        self.status_topic = topic_for(site, device_id, "status")
        self.client_id = client_id_for(broker, client_id)
        if broker.tls is not None and broker.tls.cert is not None and self.client_id != f"{site}.{device_id}":
            log.warning(
                "broker.tls.cert is the certificate of %r, not of device %s of site %s: a site broker's ACL "
                "refuses its scores",
                self.client_id,
                device_id,
                site,
            )
        self._client = make_client(broker, self.client_id, password)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        will = self._status("offline")
        self._client.will_set(self.status_topic, encode(will), qos=1, retain=True)
        self._connected = threading.Event()
        self._wake = threading.Event()
        self._stop = threading.Event()
        # Filled by paho's network thread; consumed by the publisher thread only (no shared lock with paho).
        self._completions: collections.deque[tuple[int, bool, str]] = collections.deque()
        self._receipts: collections.deque[bytes] = collections.deque()
        self._next_due_check = 0.0
        self._connect_gen = 0
        self._inflight: dict[int, int] = {}  # paho mid -> outbox id (publisher thread only)
        self._refused: set[int] = set()
        self._cursor = 0  # highest outbox id handed to paho
        self._thread: threading.Thread | None = None
        self._stopping = False

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> None:
        if not self.by_receipt:
            self.outbox.unsend_all()  # rows a receipt-confirming run left awaiting: PUBACK confirms them now
        self._client.connect_async(
            self.broker.host,
            self.broker.port,
            keepalive=self.broker.keepalive_s,
            clean_start=False,
            properties=connect_properties(self.broker),
        )
        self._client.loop_start()
        self._thread = threading.Thread(target=self._run, name="mqtt-publisher", daemon=True)
        self._thread.start()

    def stop(self, drain_s: float = 5.0) -> bool:
        """Send what is queued for up to `drain_s`, mark the device offline, disconnect. True if all was sent."""
        drained = self.wait_drained(drain_s)
        self._stopping = True
        if self._connected.is_set():
            info = self._client.publish(self.status_topic, encode(self._status("offline")), qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=2.0)
            except (RuntimeError, ValueError) as exc:
                log.warning("offline status not confirmed: %s", exc)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self._client.disconnect()
        self._client.loop_stop()
        if not drained:
            log.warning("stopped with %d score(s) still queued; they are sent on the next start", self.outbox.depth())
        return drained

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def wait_drained(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.outbox.depth() == 0:
                return True
            self._wake.set()
            time.sleep(0.05)
        return self.outbox.depth() == 0

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    def wake(self) -> None:
        """Tell the publisher thread that the outbox has something new."""
        self._wake.set()

    def publish_now(self, message: BaseModel, kind: str, retain: bool = False) -> bool:
        """Publish a message that does not go through the outbox (heartbeat). False when not connected."""
        if not self._connected.is_set():
            return False
        info = self._client.publish(topic_for(self.site, self.device_id, kind), encode(message), qos=1, retain=retain)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    # -- paho callbacks (network thread) ---------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            self.stats.last_error = f"broker refused the connection: {reason_code}"
            log.error("broker %s refused the connection: %s", self.broker.url, reason_code)
            return
        self.stats.connects += 1
        log.info(
            "connected to %s as %s (session present: %s)",
            self.broker.url,
            self.client_id,
            bool(getattr(flags, "session_present", False)),
        )
        client.publish(self.status_topic, encode(self._status("online")), qos=1, retain=True)
        if self.by_receipt:
            client.subscribe(self.receipts_topic, qos=1)
        self._connect_gen += 1
        self._connected.set()
        self._wake.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if self._stopping:
            log.info("disconnected from %s", self.broker.url)
        elif self._connected.is_set():
            self.stats.disconnects += 1
            log.warning("disconnected from %s: %s; reconnecting with backoff", self.broker.url, reason_code)
        self._connected.clear()

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        self.stats.last_error = "connection failed"
        log.warning("cannot connect to %s; retrying with backoff", self.broker.url)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: list[Any], properties: Any) -> None:
        refused = [r for r in reasons if getattr(r, "is_failure", False)]
        if refused:
            # Scores stay queued (sent again with backoff, bounded by the outbox): the ACL or the broker is wrong.
            self.stats.last_error = f"receipts subscription refused: {refused[0]}"
            log.error(
                "broker refused the subscription to %s (%s): no score can be confirmed; does the ACL let this "
                "device read its receipts? (a collector without receipts needs delivery.confirm: puback)",
                self.receipts_topic,
                refused[0],
            )

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == self.receipts_topic:
            self._receipts.append(bytes(msg.payload))
            self._wake.set()

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
        self._completions.append((mid, not reason_code.is_failure, str(reason_code)))
        self._wake.set()

    # -- publisher thread ------------------------------------------------------------------------------

    def _run(self) -> None:
        seen_gen = 0
        while not self._stop.is_set():
            self._wake.wait(timeout=0.5)
            self._wake.clear()
            try:
                self._settle()
                self._take_receipts()
                if not self._connected.is_set():
                    continue
                if self._connect_gen != seen_gen:
                    seen_gen = self._connect_gen
                    self._retry_refused()
                self._fill_window()
                if self.by_receipt:
                    self._resend_due()
            except Exception:  # keep the delivery thread alive whatever a single round hits
                log.exception("publisher round failed; retrying")
                time.sleep(1.0)
        self._settle()

    def _settle(self) -> None:
        acked: list[int] = []
        while self._completions:
            mid, ok, reason = self._completions.popleft()
            row = self._inflight.pop(mid, None)
            if row is None:
                continue  # a status or heartbeat
            if ok:
                acked.append(row)
            else:
                self._refused.add(row)
                self.stats.refused += 1
                self.stats.refused_codes[reason] = self.stats.refused_codes.get(reason, 0) + 1
                log.error("broker refused outbox message %d: %s (kept; retried after reconnect)", row, reason)
        if acked:
            if self.by_receipt:
                self.outbox.mark_sent(acked, time.time())
            else:
                self.outbox.ack_many(acked)
            self.stats.acked += len(acked)

    def _take_receipts(self) -> None:
        while self._receipts:
            payload = self._receipts.popleft()
            try:
                ids = decode_receipt(payload, self.site, self.device_id)
            except WireError as exc:
                self.stats.bad_receipts += 1
                log.error("ignored a receipt on %s: %s", self.receipts_topic, exc)
                continue
            self.stats.receipts += 1
            self.stats.confirmed += self.outbox.confirm(ids)

    def _resend_due(self) -> None:
        """Send again what the broker acknowledged but no receipt confirmed in time (checked twice a second)."""
        now = time.monotonic()
        room = self.broker.max_inflight - len(self._inflight)
        if now < self._next_due_check or room <= 0:
            return
        self._next_due_check = now + 0.5
        d = self.delivery
        in_flight = set(self._inflight.values())
        for message in self.outbox.due(
            time.time(), d.receipt_timeout_s, d.receipt_timeout_max_s, room + len(in_flight)
        ):
            if message.id in in_flight:
                continue
            if room <= 0:
                break
            self._send(message.id, message.topic, message.payload)
            self.stats.resent += 1
            room -= 1

    def _retry_refused(self) -> None:
        for row_id in sorted(self._refused):
            message = self.outbox.get(row_id)
            if message is not None:
                self._send(message.id, message.topic, message.payload)
        self._refused.clear()

    def _fill_window(self) -> None:
        room = self.broker.max_inflight - len(self._inflight)
        if room <= 0:
            return
        for message in self.outbox.pending(limit=room, after_id=self._cursor):
            self._send(message.id, message.topic, message.payload)
            self._cursor = message.id

    def _send(self, row_id: int, topic: str, payload: bytes) -> None:
        # If the connection drops during this call paho keeps the message and sends it after reconnecting.
        info = self._client.publish(topic, payload, qos=self.broker.qos)
        self._inflight[info.mid] = row_id
        self.stats.sent += 1

    def _status(self, state: Literal["online", "offline"]) -> Status:
        return Status(
            device_id=self.device_id,
            site=self.site,
            seq=self.outbox.current_seq(),
            state=state,
            at=utcnow(),
            role=self.role,
        )


def check_broker(broker: BrokerConfig, client_id: str, password: bytes | None, timeout: float = 10.0) -> str:
    """Connect once (clean, no session, no will) and wait for CONNACK; returns a description or raises.

    With a client certificate the check connects under the certificate's identity, like the runtime: a
    runtime already connected with it is disconnected and reconnects.
    """
    client = make_client(broker, client_id_for(broker, f"{client_id}-check"), password)
    outcome: dict[str, str] = {}
    done = threading.Event()

    def on_connect(c: mqtt.Client, u: Any, flags: Any, reason_code: Any, props: Any) -> None:
        outcome["result"] = "ok" if not reason_code.is_failure else f"refused: {reason_code}"
        done.set()

    client.on_connect = on_connect
    try:
        client.connect(broker.host, broker.port, keepalive=broker.keepalive_s, clean_start=True)
    except (OSError, ssl.SSLError) as exc:
        raise ConnectionError(f"{broker.url}: {exc}") from exc
    client.loop_start()
    try:
        if not done.wait(timeout):
            raise ConnectionError(f"{broker.url}: no CONNACK within {timeout:.0f}s")
    finally:
        client.disconnect()
        client.loop_stop()
    if outcome["result"] != "ok":
        raise ConnectionError(f"{broker.url}: {outcome['result']}")
    return f"{broker.url} accepted the connection (MQTT v5{', TLS' if broker.tls else ''})"
