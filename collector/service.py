"""The collector process: ingest, alert evaluation, notifications and the dashboard in one service."""

from __future__ import annotations

import logging
import secrets
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from collector.ingest import Ingestor, IngestSettings
from collector.storage import open_database

if TYPE_CHECKING:
    from collector.alerts.engine import AlertEngine
    from collector.web.server import WebServer

log = logging.getLogger(__name__)


@dataclass
class ServiceSettings:
    broker_url: str
    db_url: str
    client_id: str
    rules_path: Path | None = None
    http: str | None = None
    share_group: str | None = None
    batch_max: int = 2000
    secret_file: Path | None = None
    secure_cookies: bool = True
    k_anonymity: int = 11
    tick_s: float = 5.0


class CollectorService:
    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.db = open_database(settings.db_url)
        self.alerts: AlertEngine | None = None
        if settings.rules_path is not None:
            from collector.alerts.engine import AlertEngine
            from collector.alerts.rules import load_rules

            self.alerts = AlertEngine(self.db, load_rules(settings.rules_path))
        ingest_settings = IngestSettings(
            broker_url=settings.broker_url,
            client_id=settings.client_id,
            share_group=settings.share_group,
            batch_max=settings.batch_max,
        )
        self.ingestor = Ingestor(ingest_settings, self.db, on_new=self.alerts.on_messages if self.alerts else None)
        if self.alerts is not None:
            self.alerts.attach_mqtt(self.ingestor.client)
        self._stop = threading.Event()
        self._web: WebServer | None = None

    def start(self) -> None:
        self.ingestor.start()
        if self.alerts is not None:
            self.alerts.start()
            threading.Thread(target=self._tick_loop, name="collector-alert-tick", daemon=True).start()
        if self.settings.http:
            from collector.web.server import WebServer

            self._web = WebServer(self.db, self.settings.http, self._session_secret(), self.settings)
            self._web.start()

    def _session_secret(self) -> bytes:
        if self.settings.secret_file is not None:
            return self.settings.secret_file.read_bytes().strip()
        log.warning("no --secret-file: dashboard sessions end when the collector restarts")
        return secrets.token_bytes(32)

    def _tick_loop(self) -> None:
        while not self._stop.wait(self.settings.tick_s):
            try:
                if self.alerts is not None:
                    self.alerts.tick()
            except Exception:
                log.exception("periodic alert check failed")

    def stop(self) -> None:
        self._stop.set()
        if self._web is not None:
            self._web.stop()
        self.ingestor.stop()
        if self.alerts is not None:
            self.alerts.stop()
        self.db.dispose()

    def run_forever(self) -> int:
        def _signal(signum: int, _frame: FrameType | None) -> None:
            log.info("signal %d: stopping", signum)
            self._stop.set()

        signal.signal(signal.SIGTERM, _signal)
        signal.signal(signal.SIGINT, _signal)
        self.start()
        log.info("collector running (client id %s)", self.settings.client_id)
        self._stop.wait()
        self.stop()
        return 0
