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
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.client import time_func
from paho.mqtt.enums import MessageType, MQTTErrorCode

READ_CHUNK = 256 * 1024

# (topic, packet id, qos, payload) of a received PUBLISH.
RawMessageCallback = Callable[[bytes, int, int, bytes], None]


class BufferedClient(mqtt.Client):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_buffer = b""
        self._read_pos = 0
        self._buffered_socket: object | None = None
        self.on_raw_message: RawMessageCallback | None = None

    def _sock_recv(self, bufsize: int) -> bytes:
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
        if on_raw is None or not self._manual_ack or self._protocol != mqtt.MQTTv5:
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
        packet = b"".join(struct.pack("!BBH", MessageType.PUBACK, 2, mid) for mid in mids)
        if packet:
            self._packet_queue(MessageType.PUBACK, packet, 0, 0)

    def _handle_publish(self) -> MQTTErrorCode:
        # The common case, parsed here: MQTT v5, QoS 1 with manual acknowledgement, a topic name (no alias)
        # and an empty property block. Anything else (QoS 0/2, properties, a malformed packet) goes the
        # stock way, so paho's handling of those is unchanged.
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
