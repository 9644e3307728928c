"""A paho client that reads the socket in large chunks and handles many packets per wake-up.

Stock paho reads each packet with several small recv() calls (1 byte for the type, 1 per length byte,
then the body) and handles one packet per select(). A collector receives thousands of small
messages a second, so this subclass keeps a read buffer and drains every complete packet before it
goes back to select(): same parsing and callbacks, far fewer system calls.
"""

from __future__ import annotations

from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

READ_CHUNK = 256 * 1024


class BufferedClient(mqtt.Client):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_buffer = b""
        self._read_pos = 0
        self._buffered_socket: object | None = None

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
            rc = self._packet_read()
            if rc > 0:
                return self._loop_rc_handle(rc)
            if rc == MQTTErrorCode.MQTT_ERR_AGAIN:
                return MQTTErrorCode.MQTT_ERR_SUCCESS
