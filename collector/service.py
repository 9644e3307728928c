"""The collector process: ingest, alert evaluation, notifications and the dashboard in one service."""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import secrets
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from collector.ingest import Ingestor, IngestSettings
from collector.mqtt_url import TlsFiles, client_tls, parse_broker_url
from collector.storage import open_database
from contract.sdnotify import Notifier
from contract.wire import MAX_CLOCK_AHEAD_S

if TYPE_CHECKING:
    from collector.alerts.engine import AlertEngine
    from collector.alerts.notify import Notifier as AlertNotifier
    from collector.web.server import WebServer

log = logging.getLogger(__name__)

# Ingest is stalled when messages have waited this long with none stored: WatchdogSec where systemd watches the
# service (a stall is then restarted within twice WatchdogSec), else this (the stall shows only in the status).
STALL_LIMIT_S = 60.0


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
    workers: int = 1
    tls: TlsFiles = dataclasses.field(default_factory=TlsFiles)
    max_clock_ahead_s: float = MAX_CLOCK_AHEAD_S  # a device timestamp further ahead is dead-lettered (`clock`)
    parent_pid: int | None = None  # set in worker processes: they stop when the main process is gone


class CollectorService:
    def __init__(self, settings: ServiceSettings) -> None:
        if settings.workers > 1 and not settings.share_group:
            # Several ingest processes split the stream through a shared subscription of their own.
            settings = dataclasses.replace(settings, share_group=settings.client_id)
        # A wrong TLS file stops the start here, before the database is touched.
        client_tls(parse_broker_url(settings.broker_url), settings.tls)
        self._session_key: bytes | None = None
        if settings.http:
            from collector.web.server import parse_host_port

            parse_host_port(settings.http)
            self._session_key = _read_secret(settings.secret_file) if settings.secret_file else None
        self.settings = settings
        self._workers: list[multiprocessing.process.BaseProcess] = []
        rules = None
        if settings.rules_path is not None:
            from collector.alerts.config import load_rules

            rules = load_rules(settings.rules_path)  # before the database, so a bad file changes nothing
        self.db = open_database(settings.db_url)
        ingest_settings = IngestSettings(
            broker_url=settings.broker_url,
            client_id=settings.client_id,
            share_group=settings.share_group,
            batch_max=settings.batch_max,
            rules=rules,
            tls=settings.tls,
            max_clock_ahead_s=settings.max_clock_ahead_s,
        )
        # The alert path: the ingest writer process evaluates the message rules in the transaction that stores a
        # batch and reports the alerts with its commit; the ingestor hands them to the one notifier of this
        # process, which publishes them on the ingest's MQTT connection (and webhook, e-mail). The periodic rules
        # (device offline) are evaluated here by `ticker`, whose alerts go to the same notifier.
        self.notifier: AlertNotifier | None = None
        self.ticker: AlertEngine | None = None
        if rules is not None:
            from collector.alerts.engine import AlertEngine
            from collector.alerts.notify import Notifier as AlertNotifier
            from collector.alerts.notify import registry_roles

            self.notifier = AlertNotifier(rules.notify, role_of=registry_roles(self.db))
            self.ticker = AlertEngine(self.db, rules, deliver=self.notifier.submit)
        self.ingestor = Ingestor(
            ingest_settings, self.db, on_alerts=self.notifier.submit_all if self.notifier is not None else None
        )
        if self.notifier is not None:
            self.notifier.client = self.ingestor.client
        self._stop = threading.Event()
        self._was_stalled = False
        self._web: WebServer | None = None

    def start(self) -> None:
        self.ingestor.start()
        if self.notifier is not None:
            self.notifier.start()
            if self.settings.parent_pid is None:
                threading.Thread(target=self._tick_loop, name="collector-alert-tick", daemon=True).start()
        context = multiprocessing.get_context("spawn")
        for i in range(1, self.settings.workers):
            worker = dataclasses.replace(
                self.settings, client_id=f"{self.settings.client_id}-w{i}", http=None, workers=1, parent_pid=os.getpid()
            )
            process = context.Process(target=_run_worker, args=(worker,), name=f"collector-ingest-{i}")
            process.start()
            self._workers.append(process)
        if self.settings.http:
            from collector.web.server import WebServer

            if self._session_key is None:
                log.warning("no --secret-file: dashboard sessions end when the collector restarts")
            key = self._session_key or secrets.token_bytes(32)
            self._web = WebServer(
                self.db, self.settings.http, key, self.settings, broker_down_since=self.ingestor.broker_down_since
            )
            self._web.start()

    def _tick_loop(self) -> None:
        while not self._stop.wait(self.settings.tick_s):
            try:
                if self.ticker is not None:
                    self.ticker.tick()
            except Exception:
                log.exception("periodic alert check failed")

    def stop(self) -> None:
        self._stop.set()
        for process in self._workers:
            process.terminate()
        for process in self._workers:
            process.join(timeout=30)
        # Ingest first: its writer process got the same stop signal and is ending (see Ingestor._event_loop).
        self.ingestor.stop()
        if self._web is not None:
            self._web.stop()
        if self.notifier is not None:
            self.notifier.stop()
        self.db.dispose()

    def run_forever(self) -> int:
        def _signal(signum: int, _frame: FrameType | None) -> None:
            log.info("signal %d: stopping", signum)
            self._stop.set()

        signal.signal(signal.SIGTERM, _signal)
        signal.signal(signal.SIGINT, _signal)
        # Only the main process talks to systemd (the unit has NotifyAccess=main).
        notifier = Notifier() if self.settings.parent_pid is None else None
        self.start()
        log.info("collector running (client id %s); connecting to the broker", self.settings.client_id)
        # READY=1 once the broker has granted the subscription: before that the collector cannot do its job, and
        # `systemctl status` says since when it has not been connected (the unit waits: TimeoutStartSec=infinity).
        status = self._status()
        ready = False
        if notifier is not None:
            ready = self._tell_systemd(notifier, status, ready)
        watchdog_s = notifier.watchdog_interval_s if notifier is not None else None
        stall_limit_s = watchdog_s or STALL_LIMIT_S
        while not self._stop.wait(1.0):
            if self.settings.parent_pid is not None and os.getppid() != self.settings.parent_pid:
                log.warning("main collector process is gone; stopping this ingest worker")
                break
            if notifier is None:
                continue
            # The watchdog is fed only while ingest's threads run and make progress: a collector that can no longer
            # store (its writer blocked, or dying on every batch) is restarted by systemd instead of sitting there
            # acknowledging nothing.
            stalled = self._stalled(stall_limit_s)
            if self.ingestor.alive() and not stalled:
                notifier.watchdog()
            if (now := self._status(stalled)) != status or (not ready and self.ingestor.stats.subscribed):
                status = now
                ready = self._tell_systemd(notifier, status, ready)
        if notifier is not None:
            notifier.stopping("stopping: storing what was received")
        self.stop()
        if notifier is not None:
            notifier.close()
        return 0

    def _tell_systemd(self, notifier: Notifier, status: str, ready: bool) -> bool:
        """READY=1 with the status the first time ingest is subscribed, the status alone otherwise; whether READY
        was sent."""
        if not ready and self.ingestor.stats.subscribed:
            notifier.ready(status)
            return True
        notifier.status(status if ready else f"starting: {status}")
        return ready

    def _stalled(self, limit_s: float) -> bool:
        """Whether messages have waited longer than `limit_s` with none stored; logged when it starts and ends."""
        waited = self.ingestor.stalled_s()
        stalled = waited > limit_s
        if stalled != self._was_stalled:
            if stalled:
                log.error(
                    "ingest stalled: messages have waited %.0f s and none was stored; no longer feeding the watchdog",
                    waited,
                )
            else:
                log.info("ingest storing again")
            self._was_stalled = stalled
        return stalled

    def _status(self, stalled: bool = False) -> str:
        """One line for `systemctl status`: the broker and database state, what was stored."""
        stats = self.ingestor.stats
        broker = "subscribed" if stats.subscribed else "connected" if stats.connected else "not connected"
        if not stats.connected and stats.down_since is not None:
            broker += f" since {stats.down_since:%Y-%m-%d %H:%M:%S} UTC ({stats.connect_failures} failed attempts)"
        database = "ok" if stats.db_ok else "unavailable, holding acknowledgements"
        return f"broker {broker}; database {database}" + (
            "; ingest stalled: messages wait, none stored" if stalled else ""
        )


def _read_secret(path: Path) -> bytes:
    """The dashboard's session key, read before anything starts so that a bad --secret-file stops the start."""
    try:
        key = path.read_bytes().strip()
    except OSError as exc:
        raise ValueError(f"--secret-file {path}: cannot read it ({exc.strerror or exc})") from exc
    if len(key) < 16:
        raise ValueError(f"--secret-file {path}: {len(key)} bytes; the session key needs at least 16")
    return key


def _run_worker(settings: ServiceSettings) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s")
    CollectorService(settings).run_forever()
