"""Send alerts: MQTT (QoS 1), an HMAC-signed webhook POST and e-mail, from one background thread."""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import queue
import smtplib
import threading
import urllib.request
from collections.abc import Callable, Iterable
from email.message import EmailMessage

import paho.mqtt.client as mqtt

from collector.alerts.config import NotifyConfig, SmtpConfig, WebhookConfig
from contract.wire import Alert, alerts_topic, encode

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-EdgeScreen-Signature"


def sign(body: bytes, key: bytes) -> str:
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def post_webhook(config: WebhookConfig, body: bytes) -> None:
    key = config.secret_file.read_bytes().strip()
    request = urllib.request.Request(
        config.url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", SIGNATURE_HEADER: sign(body, key)},
    )
    with urllib.request.urlopen(request, timeout=config.timeout_s) as response:
        if response.status >= 300:
            raise OSError(f"webhook {config.url} answered {response.status}")


def send_mail(config: SmtpConfig, alert: Alert) -> None:
    mail = EmailMessage()
    mail["From"] = config.sender
    mail["To"] = ", ".join(config.recipients)
    mail["Subject"] = f"[EdgeScreen {alert.severity}] {alert.site}: {alert.rule} {alert.state}"
    mail.set_content(
        f"{alert.summary}\n\nsite: {alert.site}\ndevice: {alert.device_id or '-'}\nrule: {alert.rule}\n"
        f"state: {alert.state}\nat: {alert.at.isoformat()}\nalert id: {alert.alert_id}\n"
    )
    with smtplib.SMTP(config.host, config.port, timeout=10) as smtp:
        if config.starttls:
            smtp.starttls()
        if config.username and config.password_file:
            smtp.login(config.username, config.password_file.read_text().strip())
        smtp.send_message(mail)


class Notifier:
    """Delivers queued alerts; a failing channel is retried a few times and logged, never blocks ingest. One per
    collector: `client` is the ingest's MQTT connection, set by the service."""

    def __init__(self, config: NotifyConfig, attempts: int = 3) -> None:
        self.config = config
        self.attempts = attempts
        self.client: mqtt.Client | None = None
        self._queue: queue.Queue[Alert | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="collector-notify", daemon=True)
        self.sent: dict[str, int] = {"mqtt": 0, "webhook": 0, "smtp": 0}

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=15)

    def submit(self, alert: Alert) -> None:
        self._queue.put(alert)

    def submit_all(self, alerts: Iterable[Alert]) -> None:
        for alert in alerts:
            self._queue.put(alert)

    def _loop(self) -> None:
        while True:
            alert = self._queue.get()
            if alert is None:
                return
            body = encode(alert)
            if self.config.mqtt and self.client is not None:
                self.client.publish(alerts_topic(alert.site), body, qos=1)
                self.sent["mqtt"] += 1
            if self.config.webhook is not None:
                webhook = self.config.webhook
                self._try("webhook", functools.partial(post_webhook, webhook, body))
            if self.config.smtp is not None:
                smtp = self.config.smtp
                self._try("smtp", functools.partial(send_mail, smtp, alert))

    def _try(self, channel: str, send: Callable[[], None]) -> None:
        delay = 0.5
        for attempt in range(1, self.attempts + 1):
            try:
                send()
                self.sent[channel] += 1
                return
            except (OSError, smtplib.SMTPException) as exc:
                log.warning("%s delivery failed (attempt %d/%d): %s", channel, attempt, self.attempts, exc)
                threading.Event().wait(delay)
                delay *= 2
