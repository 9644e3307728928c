"""A paho client that reads the socket in large chunks and handles many packets per wake-up.

Stock paho reads each packet with several small recv() calls (1 byte for the type, 1 per length byte,
then the body) and handles one packet per select(). A collector receives thousands of small
messages a second, so this subclass keeps a read buffer and drains every complete packet before it
goes back to select(): same parsing and callbacks, far fewer system calls. Acknowledgements of a
committed batch go out the same way: `ack_batch` queues all of its PUBACKs as one write. And a plain
QoS 1 PUBLISH (MQTT v5, no properties, no topic alias) goes straight to `on_raw_message` without the
per-message Properties and MQTTMessage objects that take about half of paho's receive time. Such
publishes already complete in the read buffer are taken from it in one pass (`_drain_publishes`), without
paho's per-packet state (a dict, several reads, a lock per packet).

All of this reads paho's private members (`_sock`, `_in_packet`, `_packet_read`, `_handle_publish`,
`_packet_queue`, ...), which any paho release may change. It is used only with the paho release it was written
and tested against (`FAST_PATH_PAHO`, also pinned in pyproject.toml); with any other, the client is stock paho
through its public API (`on_message`, `ack`), slower but correct.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Iterable
from typing import Any

import paho.mqtt as paho
import paho.mqtt.client as mqtt
from paho.mqtt.client import time_func
from paho.mqtt.enums import MessageType, MQTTErrorCode

log = logging.getLogger(__name__)

READ_CHUNK = 256 * 1024

# The paho release (major, minor) whose private members the fast path reads.
FAST_PATH_PAHO = (2, 2)


def fast_path_supported(version: str = paho.__version__) -> bool:
    """Whether this paho release is the one the fast path was written against."""
    try:
        major, minor = (int(part) for part in version.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) == FAST_PATH_PAHO


def message_topic(msg: mqtt.MQTTMessage) -> str:
    """A received message's topic; one that is not UTF-8 (which a broker should refuse) gets a placeholder that
    names no device, so that the message is dead-lettered as a bad topic."""
    try:
        return msg.topic
    except UnicodeDecodeError:
        return "<topic not UTF-8>"


# (topic, packet id, qos, payload) of a received PUBLISH.
RawMessageCallback = Callable[[bytes, int, int, bytes], None]


class BufferedClient(mqtt.Client):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fast = fast_path_supported()
        if not self.fast:
            log.warning(
                "paho-mqtt %s is not the release the collector's fast MQTT path was written for (%d.%d); "
                "receiving through paho's public API instead",
                paho.__version__,
                *FAST_PATH_PAHO,
            )
        self._read_buffer = b""
        self._read_pos = 0
        self._buffered_socket: object | None = None
        self.on_raw_message: RawMessageCallback | None = None

    def _sock_recv(self, bufsize: int) -> bytes:
        if not self.fast:
            return super()._sock_recv(bufsize)
        if self._sock is not self._buffered_socket:
            # A new connection: whatever was buffered belonged to the old one.
            self._read_buffer, self._read_pos, self._buffered_socket = b"", 0, self._sock
        if self._read_pos >= len(self._read_buffer):
            data = super()._sock_recv(READ_CHUNK)
            if not data:
                return data  # end of stream; paho handles the disconnect
            self._read_buffer, self._read_pos = data, 0
        chunk = self._read_buffer[self._read_pos : self._read_pos + bufsize]
        self._read_pos += len(chunk)
        return chunk

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        # Drain until the socket (and our buffer) has nothing more, so no buffered byte waits on select().
        # This ends: once Receive Maximum messages are unacknowledged the broker stops sending, the
        # socket runs dry, and the loop goes on to write the queued acknowledgements.
        if not self.fast:
            return super().loop_read(max_packets)
        while True:
            if self._sock is None:
                return MQTTErrorCode.MQTT_ERR_NO_CONN
            if self._in_packet["command"] == 0 and self._read_pos < len(self._read_buffer):
                self._drain_publishes()
            rc = self._packet_read()
            if rc > 0:
                return self._loop_rc_handle(rc)
            if rc == MQTTErrorCode.MQTT_ERR_AGAIN:
                return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _drain_publishes(self) -> None:
        """Hand every complete plain QoS 1 PUBLISH at the front of the read buffer to `on_raw_message`.

        Called between packets only (paho holds no partial packet). Stops at the first packet that is
        anything else or not complete yet; paho's own `_packet_read` takes that one from the buffer.
        """
        on_raw = self.on_raw_message
        if not self.fast or on_raw is None or not self._manual_ack or self._protocol != mqtt.MQTTv5:
            return
        if self._sock is not self._buffered_socket:
            return
        buf, pos, end = self._read_buffer, self._read_pos, len(self._read_buffer)
        unpack = struct.unpack_from
        start = pos
        while pos < end:
            # Fixed header: PUBLISH with QoS 1 (the DUP and RETAIN bits do not matter to the collector).
            if buf[pos] & 0xF6 != 0x32:
                break
            # Remaining length, 1 to 4 bytes of 7 bits each; a longer one is left to paho to refuse.
            at, length, shift = pos + 1, 0, 0
            while at < end and at - pos <= 4:
                byte = buf[at]
                length |= (byte & 0x7F) << shift
                shift += 7
                at += 1
                if not byte & 0x80:
                    break
            else:
                break
            body_end = at + length
            if body_end > end or length < 5:
                break
            (topic_len,) = unpack("!H", buf, at)
            props = at + 2 + topic_len + 2  # after the topic and the packet id: the property length
            # A topic name (no alias) and an empty property block, else paho's way.
            if topic_len == 0 or props >= body_end or buf[props] != 0:
                break
            (mid,) = unpack("!H", buf, props - 2)
            on_raw(buf[at + 2 : props - 2], mid, 1, buf[props + 1 : body_end])
            pos = body_end
        if pos != start:
            self._read_pos = pos
            with self._msgtime_mutex:
                self._last_bytes_received = time_func()

    def ack_batch(self, mids: Iterable[int]) -> None:
        """Acknowledge QoS 1 messages (manual ack) with one queued write of all their PUBACKs.

        `ack()` per message queues one packet, writes a byte to paho's wake-up socket and later costs one
        send() on the network thread, for each message: thousands of thread hand-overs per batch that slow
        the writer thread down. The PUBACKs are byte for byte those `ack()` sends (MQTT v5 allows the
        two-byte form for success), so the broker sees the same thing; a partial write resumes where it
        stopped, and a connection loss drops the queue as it does for single acks (the broker redelivers).
        """
        if not self.fast:
            for mid in mids:
                self.ack(mid, 1)
            return
        packet = b"".join(struct.pack("!BBH", MessageType.PUBACK, 2, mid) for mid in mids)
        if packet:
            self._packet_queue(MessageType.PUBACK, packet, 0, 0)

    def _handle_publish(self) -> MQTTErrorCode:
        # The common case, parsed here: MQTT v5, QoS 1 with manual acknowledgement, a topic name (no alias)
        # and an empty property block. Anything else (QoS 0/2, properties, a malformed packet) goes the
        # stock way, so paho's handling of those is unchanged.
        if not self.fast:
            return super()._handle_publish()
        on_raw = self.on_raw_message
        command: int = self._in_packet["command"]
        packet: bytearray = self._in_packet["packet"]
        if on_raw is None or not self._manual_ack or self._protocol != mqtt.MQTTv5 or (command & 0x06) != 0x02:
            return super()._handle_publish()
        if len(packet) < 5:
            return super()._handle_publish()
        (topic_len,) = struct.unpack_from("!H", packet, 0)
        at = 2 + topic_len
        # Packet id (2 bytes), then the property length; 0 is the single byte 0x00.
        if topic_len == 0 or len(packet) < at + 3 or packet[at + 2] != 0:
            return super()._handle_publish()
        (mid,) = struct.unpack_from("!H", packet, at)
        on_raw(bytes(packet[2:at]), mid, 1, bytes(packet[at + 3 :]))
        return MQTTErrorCode.MQTT_ERR_SUCCESS
