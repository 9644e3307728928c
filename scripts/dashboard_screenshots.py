"""Screenshots of every dashboard page, for docs/collector.md: a simulated site in headless Chromium.

    .venv/bin/python scripts/dashboard_screenshots.py [--out docs/images/dashboard]

Builds a week of simulated data of every role (collector/simulate_site.py: four desks, two booths, two
head-pose stations, alerts) in a temporary SQLite database, serves the dashboard on a free local port,
logs in as a nurse (who also sees the follow-up list) and saves each page 1000 px wide as a palette PNG
(Pillow, 256 colours, no dithering), which keeps each file near 100 kB. Needs chromium and chromedriver (Debian
packages `chromium`, `chromium-driver`) and selenium.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PAGES = (
    ("fleet", "/"),
    ("overview", "/sites/school-a"),
    ("alerts", "/alerts"),
    ("device-desk", "/sites/school-a/devices/desk-02"),
    ("device-station", "/sites/school-a/devices/station-1"),
    ("screening", "/sites/school-a/screening"),
    ("followup", "/sites/school-a/followup"),
    ("headpose", "/sites/school-a/headpose"),
    ("not-found", "/sites/school-a/devices/no-such-device"),
)
PASSWORD = "correct horse battery"
log = logging.getLogger("dashboard_screenshots")


def serve(db_url: str) -> tuple[str, threading.Thread]:
    import uvicorn

    from collector.simulate_site import populate
    from collector.storage import open_database
    from collector.users import add_user
    from collector.web.app import create_app

    db = open_database(db_url)
    populate(db, datetime.now(UTC))
    add_user(db, "nora", PASSWORD, ["school-a"], "nurse")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(db, b"s" * 32, secure_cookies=False), "127.0.0.1", port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", thread


def shoot(base: str, out: Path, width: int = 1000) -> list[Path]:
    from PIL import Image
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars"):
        options.add_argument(arg)
    options.add_argument(f"--window-size={width},900")
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    written = []
    try:
        driver.get(f"{base}/login")
        driver.find_element(By.ID, "username").send_keys("nora")
        driver.find_element(By.ID, "password").send_keys(PASSWORD)
        driver.find_element(By.ID, "login").click()
        for name, path in PAGES:
            driver.set_window_size(width, 600)  # scrollHeight is at least the window's height
            driver.get(base + path)
            height = driver.execute_script("return document.documentElement.scrollHeight")
            driver.set_window_size(width, min(int(height) + 140, 2400))
            raw = out / f"{name}.raw.png"
            driver.save_screenshot(str(raw))
            image = Image.open(raw).convert("RGB")
            image = image.crop((0, 0, width, min(image.height, int(height))))
            image.quantize(colors=256, dither=Image.Dither.NONE).save(out / f"{name}.png", optimize=True)
            raw.unlink()
            written.append(out / f"{name}.png")
            log.info("%s: %s (%d kB)", name, path, (out / f"{name}.png").stat().st_size // 1024)
    finally:
        driver.quit()
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images" / "dashboard")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        base, _thread = serve(f"sqlite:///{tmp}/collector.db")
        shoot(base, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
