"""Send alerts: MQTT (QoS 1), an HMAC-signed webhook POST and e-mail, from one background thread.

The e-mail and the webhook's `subject`/`text` are the plain-language words of the alerts page
(collector/alerts/text.py), with a link to the alert on the dashboard (`notify.dashboard_url`).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import queue
import smtplib
import threading
import urllib.request
from collections.abc import Callable, Iterable
from email.message import EmailMessage

import paho.mqtt.client as mqtt
from sqlalchemy import select

from collector.alerts.config import NotifyConfig, SmtpConfig, WebhookConfig
from collector.alerts.text import alert_link, notification_text
from collector.storage import schema
from collector.storage.engine import Database
from contract.wire import Alert, alerts_topic, encode

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-EdgeScreen-Signature"

# The role of an alert's device (posture, gait, headpose), or None when unknown: it picks the words.
RoleOf = Callable[[str, str | None], str | None]


def _no_role(_site: str, _device: str | None) -> str | None:
    return None


def registry_roles(db: Database) -> RoleOf:
    """The role of a device as the device registry knows it."""

    def role_of(site: str, device: str | None) -> str | None:
        if device is None:
            return None
        d = schema.devices.c
        with db.reader.connect() as conn:
            query = select(d.role).where(d.site == site, d.device_id == device)
            role: str | None = conn.execute(query).scalar_one_or_none()
        return role

    return role_of


def webhook_body(alert: Alert, subject: str, text: str, link: str) -> bytes:
    """The alert's wire fields, and the words a person reads: `subject`, `text` and `link`."""
    fields = json.loads(encode(alert))
    return json.dumps({**fields, "subject": subject, "text": text, "link": link}).encode("utf-8")


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


def send_mail(config: SmtpConfig, alert: Alert, subject: str, text: str) -> None:
    mail = EmailMessage()
    mail["From"] = config.sender
    mail["To"] = ", ".join(config.recipients)
    mail["Subject"] = subject
    mail.set_content(
        f"{text}\nsite: {alert.site}\ndevice: {alert.device_id or '-'}\nstate: {alert.state}\n"
        f"at: {alert.at.isoformat()}\nalert id: {alert.alert_id}\n"
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

    def __init__(self, config: NotifyConfig, attempts: int = 3, role_of: RoleOf = _no_role) -> None:
        self.config = config
        self.attempts = attempts
        self.role_of = role_of
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
            if self.config.mqtt and self.client is not None:
                self.client.publish(alerts_topic(alert.site), encode(alert), qos=1)
                self.sent["mqtt"] += 1
            if self.config.webhook is None and self.config.smtp is None:
                continue
            subject, text, link = self._words(alert)
            if self.config.webhook is not None:
                body = webhook_body(alert, subject, text, link)
                self._try("webhook", functools.partial(post_webhook, self.config.webhook, body))
            if self.config.smtp is not None:
                self._try("smtp", functools.partial(send_mail, self.config.smtp, alert, subject, text))

    def _words(self, alert: Alert) -> tuple[str, str, str]:
        """Subject, text and link of an alert, in the words of the alerts page."""
        try:
            role = self.role_of(alert.site, alert.device_id)
        except Exception:  # the words only lose the device's kind; the alert still goes out
            log.warning("could not look up the role of %s/%s for the alert text", alert.site, alert.device_id)
            role = None
        link = alert_link(self.config.dashboard_url, alert.alert_id)
        subject, text = notification_text(alert.model_dump(), role, link)
        return subject, text, link

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
