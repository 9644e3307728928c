"""Login attempts limited per account and per client address, with exponential backoff.

An account, or an address, may fail ACCOUNT_FREE (ADDRESS_FREE) times; each further failure locks it for
twice as long as the last, from BASE_S up to MAX_S. While locked, a login is answered 429 with
Retry-After and the password is not checked (no Argon2 work). A success clears the account's failures,
not the address's: a guesser with one valid account of their own cannot reset their address that way.
Failures are forgotten FORGET_S after the last one.

The state lives in the dashboard's process (one per collector) and holds at most MAX_KEYS records, the
least recently used going first. Behind a reverse proxy on the same host, uvicorn takes the client address
from X-Forwarded-For (it trusts 127.0.0.1 by default), so the limit applies per real client.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Record:
    failures: int = 0
    last: float = 0.0
    locked_until: float = 0.0


class LoginThrottle:
    ACCOUNT_FREE = 5
    ADDRESS_FREE = 20
    BASE_S = 1.0
    MAX_S = 900.0
    FORGET_S = 3600.0
    MAX_KEYS = 10_000

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._records: OrderedDict[tuple[str, str], _Record] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, account: str, address: str) -> int:
        """Whole seconds until this account may try from this address (0: now)."""
        now = self._clock()
        with self._lock:
            waits = [r.locked_until - now for r in (self._get("account", account), self._get("address", address)) if r]
        return max(0, *(math.ceil(w) for w in waits)) if waits else 0

    def failed(self, account: str, address: str) -> None:
        now = self._clock()
        with self._lock:
            for kind, key, free in (("account", account, self.ACCOUNT_FREE), ("address", address, self.ADDRESS_FREE)):
                record = self._get(kind, key) or self._put(kind, key)
                if now - record.last > self.FORGET_S:
                    record.failures = 0
                record.failures += 1
                record.last = now
                if record.failures >= free:
                    record.locked_until = now + min(self.MAX_S, self.BASE_S * 2 ** min(record.failures - free, 30))

    def succeeded(self, account: str) -> None:
        with self._lock:
            self._records.pop(("account", account), None)

    def _get(self, kind: str, key: str) -> _Record | None:
        record = self._records.get((kind, key))
        if record is not None:
            self._records.move_to_end((kind, key))
        return record

    def _put(self, kind: str, key: str) -> _Record:
        record = self._records[(kind, key)] = _Record()
        while len(self._records) > self.MAX_KEYS:
            self._records.popitem(last=False)
        return record
