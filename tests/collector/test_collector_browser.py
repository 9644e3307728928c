"""End to end in headless Chromium: a device publishes, staff log in, see it, see its alert, acknowledge it."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from collector.simulate import Publisher, gait, headpose, heartbeat, posture, status
from contract.wire import DeviceMessage, encode, topic_for
from tests.support.broker import MosquittoBroker, free_port, wait_for_port
from tests.support.collector import collector_cmd

selenium = pytest.importorskip("selenium")
from selenium import webdriver  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from tests.support.chromium import headless_chromium, submit_login  # noqa: E402

pytestmark = pytest.mark.browser
REPO = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"


def cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "edgescreen", "collector", *args], cwd=REPO, check=True, capture_output=True)


@pytest.fixture
def collector(tmp_path: Path, broker: MosquittoBroker) -> Iterator[str]:
    db_url = f"sqlite:///{tmp_path}/collector.db"
    secret = tmp_path / "password"
    secret.write_text(PASSWORD)
    cli("user", "add", "--db", db_url, "--site", "school-a", "--password-file", str(secret), "alice")
    cli("user", "add", "--db", db_url, "--site", "school-b", "--password-file", str(secret), "bob")
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules: [{name: gait_positive, type: screening, predicted: positive, min_probability: 0.7}]\n")
    port = free_port()
    log = (tmp_path / "collector.log").open("wb")
    proc = subprocess.Popen(
        collector_cmd(broker.url, db_url, "browser-test", "--rules", str(rules), "--http", f"127.0.0.1:{port}"),
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for_port("127.0.0.1", port, timeout=30)
        yield f"http://localhost:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def publish_device(broker: MosquittoBroker) -> None:
    now = datetime.now(UTC)
    messages: list[DeviceMessage] = [status("school-a", "booth-1", 0, now, role="gait")]
    messages.append(heartbeat("school-a", "booth-1", 1, now))
    for i in range(40):
        end = now - timedelta(hours=40 - i)
        messages.append(gait("school-a", "booth-1", 2 + i, end, predicted=("negative", "neutral")[i % 2], p=0.8))
        messages.append(posture("school-a", "desk-1", i, end, cva=58 - (i % 9) * 1.5, high=(i % 5) / 10))
        messages.append(headpose("school-a", "station-1", i, end, yaw=4 + i % 6, rotation=i % 3))
    messages.append(gait("school-a", "booth-1", 99, now, predicted="positive", p=0.91))
    pub = Publisher(broker.url, "booth-1")
    pub.publish_all([(topic_for(m.site, m.device_id, m.kind), encode(m)) for m in messages])
    pub.close()


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    with headless_chromium() as driver:
        yield driver


def login(driver: webdriver.Chrome, base: str, username: str) -> None:
    submit_login(driver, base, username, PASSWORD)
    WebDriverWait(driver, 10).until(ec.presence_of_element_located((By.ID, "fleet")))


def test_staff_see_device_and_alert_and_acknowledge_it(
    tmp_path: Path, broker: MosquittoBroker, collector: str, browser: webdriver.Chrome
) -> None:
    shots = tmp_path / "screenshots"
    shots.mkdir()
    base = collector
    browser.get(f"{base}/")
    assert "/login" in browser.current_url, "the dashboard asks for a login first"
    browser.save_screenshot(str(shots / "login.png"))
    publish_device(broker)
    login(browser, base, "alice")
    deadline = time.monotonic() + 20
    while "booth-1" not in browser.find_element(By.ID, "fleet").text and time.monotonic() < deadline:
        time.sleep(0.5)
        browser.refresh()
    fleet = browser.find_element(By.ID, "fleet").text
    assert "booth-1" in fleet and "online" in fleet
    browser.save_screenshot(str(shots / "fleet.png"))

    browser.get(f"{base}/alerts")
    deadline = time.monotonic() + 20
    while "gait_positive" not in browser.find_element(By.ID, "alerts").text and time.monotonic() < deadline:
        time.sleep(0.5)
        browser.refresh()
    row = browser.find_element(By.CSS_SELECTOR, "tr.alert")
    assert "gait_positive" in row.text and "p=0.91" in row.text and "open" in row.text
    browser.save_screenshot(str(shots / "alerts.png"))
    row.find_element(By.CSS_SELECTOR, "button.ack").click()
    WebDriverWait(browser, 10).until(
        ec.text_to_be_present_in_element((By.CSS_SELECTOR, "tr.alert td.state"), "acknowledged by alice")
    )
    browser.save_screenshot(str(shots / "alerts-acknowledged.png"))

    private_urls = [
        f"{base}/sites/school-a/devices/booth-1",
        f"{base}/sites/school-a/devices/desk-1",
        f"{base}/sites/school-a/screening",
        f"{base}/sites/school-a/headpose",
    ]
    for url in private_urls:
        browser.get(url)
        # The screening page lists closed weeks only (collector/web/screening.py): today's walks are in none yet.
        shown = "#screening" if url.endswith("/screening") else "svg.chart"
        assert browser.find_elements(By.CSS_SELECTOR, shown), f"no {shown} on {url}"
        browser.save_screenshot(str(shots / (url.rsplit("/", 2)[-1] + ".png")))

    login(browser, base, "bob")
    assert "booth-1" not in browser.find_element(By.ID, "fleet").text
    browser.get(f"{base}/alerts")
    assert "gait_positive" not in browser.find_element(By.ID, "alerts").text
    browser.save_screenshot(str(shots / "other-site-alerts.png"))
    for url in private_urls:
        browser.get(url)
        assert "not found" in browser.find_element(By.TAG_NAME, "body").text.lower(), url
        assert not browser.find_elements(By.CSS_SELECTOR, "svg.chart")
    browser.save_screenshot(str(shots / "other-site-denied.png"))
    assert len(list(shots.glob("*.png"))) >= 9
