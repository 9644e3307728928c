"""Student codes at the gait booth: entered locally, kept in memory, leaving only as a keyed HMAC.

Input: one code per line on standard input (`subject_codes.input: "-"`) or from a file, tty or FIFO
(`input: /dev/ttyUSB0`, `input: /run/edgescreen/codes`). A QR or NFC reader in keyboard mode types the code
and Enter, so it needs no driver. Staff can type codes as well. Blank lines and lines starting with `#` are
ignored; a line longer than `max_length` is rejected (logged without its content).

A code is the pending code until a screened walk-through uses it or it expires (`valid_s`); every
walk-through message built while it is pending carries its token, so a partial walk followed by a good one
both belong to the student. Only `subject_token(code, secret)` = HMAC-SHA256(secret, code) in hex leaves the
device; the secret is the site's (`secrets.site_hmac_key`, a file or a systemd credential), so the same code
gives the same token across a site's booths and a different one at another site.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import sys
import threading
import time
import unicodedata
from pathlib import Path
from typing import TextIO

log = logging.getLogger(__name__)


def normalise_code(raw: str) -> str:
    """The code as hashed: Unicode NFC, surrounding whitespace removed (readers differ in what they append)."""
    return unicodedata.normalize("NFC", raw).strip()


def subject_token(code: str, secret: bytes) -> str:
    """HMAC-SHA256 of the normalised code keyed with the site secret, as 64 hex digits."""
    if not secret:
        raise ValueError("the site secret is empty")
    normalised = normalise_code(code)
    if not normalised:
        raise ValueError("the subject code is empty")
    return hmac.new(secret, normalised.encode("utf-8"), hashlib.sha256).hexdigest()


class SubjectCodes:
    """The pending code (as its token only) and the thread that reads codes from the configured input."""

    def __init__(self, secret: bytes, *, valid_s: float = 120.0, max_length: int = 128) -> None:
        if not secret:
            raise ValueError("the site secret is empty")
        self._secret = secret
        self.valid_s = valid_s
        self.max_length = max_length
        self._lock = threading.Lock()
        self._pending: tuple[str, float] | None = None  # (token, monotonic time entered)
        self._thread: threading.Thread | None = None
        self.rejected = 0

    def enter(self, line: str, now: float | None = None) -> bool:
        """Take one input line; returns True when it became the pending code. The raw code is not kept."""
        code = normalise_code(line)
        if not code or code.startswith("#"):
            return False
        if len(code) > self.max_length:
            self.rejected += 1
            log.warning("subject code input rejected: %d characters > %d", len(code), self.max_length)
            return False
        token = subject_token(code, self._secret)
        del code
        with self._lock:
            self._pending = (token, time.monotonic() if now is None else now)
        log.info("subject code entered; it applies to the next walk-through")
        return True

    def current(self, now: float | None = None) -> str | None:
        """The pending code's token (None when none, or when it expired)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if self._pending is None:
                return None
            token, at = self._pending
            if now - at > self.valid_s:
                self._pending = None
                log.info("subject code expired unused after %.0f s", self.valid_s)
                return None
            return token

    def consume(self) -> None:
        """A screened walk used the pending code."""
        with self._lock:
            self._pending = None

    def start_reader(self, source: str) -> None:
        """Read codes from `source` ('-' = standard input) in a daemon thread until it ends."""
        if source == "-":
            stream: TextIO = sys.stdin
        else:
            try:
                stream = Path(source).open("r", encoding="utf-8", errors="replace")  # noqa: SIM115 - thread owns it
            except OSError as exc:
                raise OSError(f"subject_codes.input: cannot open {source}: {exc.strerror or exc}") from exc
        self._thread = threading.Thread(target=self._read, args=(stream,), name="subject-codes", daemon=True)
        self._thread.start()

    def _read(self, stream: TextIO) -> None:
        lines = 0
        try:
            for line in stream:
                lines += 1
                self.enter(line)
        except (OSError, ValueError) as exc:
            log.warning("subject code input stopped: %s", exc)
        if lines == 0:
            # Under systemd a service's standard input is /dev/null unless the unit gives it the booth's console.
            log.warning(
                "subject code input ended before its first line: no student codes will be read (under systemd "
                "the booth's drop-in edgescreen-edge@gait-booth.service.d/subject-codes.conf gives it tty1)"
            )
        else:
            log.info("subject code input ended")
