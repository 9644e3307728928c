"""Every dashboard page in real Chromium, over a week of a simulated site of every role (collector/simulate_site.py):
nothing clipped, every series labelled, midnight ticks, one colour per class and band on every page, empty
states without empty tables, and the HTML 404 page. One server and one browser for the whole module."""

from __future__ import annotations

import itertools
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from collector.simulate_site import populate
from collector.storage import open_database
from collector.users import add_user
from collector.web.app import create_app
from collector.web.palette import MEANING
from tests.support.broker import free_port

selenium = pytest.importorskip("selenium")
uvicorn = pytest.importorskip("uvicorn")
from selenium import webdriver  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

from tests.support.chromium import headless_chromium, submit_login  # noqa: E402

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery"
SITE = "school-a"
PAGES = (
    "/",
    f"/sites/{SITE}",
    "/alerts?show=all",
    f"/sites/{SITE}/devices/desk-01",
    f"/sites/{SITE}/devices/desk-01?days=1",
    f"/sites/{SITE}/devices/booth-1",
    f"/sites/{SITE}/devices/station-1",
    f"/sites/{SITE}/screening",
    f"/sites/{SITE}/headpose",
    f"/sites/{SITE}/followup",
)
CLASSES = ("negative", "neutral", "positive", "ok", "moderate", "high", "suppressed")

# Per svg.chart: texts outside the svg's box, series without a legend entry, ticks, colours per meaning.
INSPECT = """
const out = [];
for (const svg of document.querySelectorAll('svg.chart')) {
  const box = svg.getBoundingClientRect();
  const clipped = [];
  for (const t of svg.querySelectorAll('text')) {
    const b = t.getBoundingClientRect();
    if (b.left < box.left - 0.5 || b.right > box.right + 0.5 || b.top < box.top - 0.5 || b.bottom > box.bottom + 0.5)
      clipped.push(t.textContent);
  }
  const legend = new Set([...svg.querySelectorAll('.legend')].map(e => e.dataset.series));
  const series = [...new Set([...svg.querySelectorAll('.series')].map(e => e.dataset.series))];
  const colours = {};
  for (const e of svg.querySelectorAll('.series')) {
    const c = (e.getAttribute('fill') !== 'none' && e.getAttribute('fill')) || e.getAttribute('stroke');
    (colours[e.dataset.series] ||= []).push(c.toUpperCase());
  }
  out.push({title: svg.getAttribute('aria-label'), clipped, unlabelled: series.filter(s => !legend.has(s)),
            series, ticks: [...svg.querySelectorAll('.xtick')].map(e => e.dataset.t), colours});
}
return out;
"""
SWATCHES = """
return [...document.querySelectorAll('.swatch, .pill')].map(e => [e.className, getComputedStyle(e).backgroundColor]);
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("dashboard")
    db = open_database(f"sqlite:///{tmp}/collector.db")
    populate(db, datetime.now(UTC))
    add_user(db, "alice", PASSWORD, [SITE])
    add_user(db, "nora", PASSWORD, [SITE], "nurse")
    add_user(db, "erin", PASSWORD, ["school-empty"])
    port = free_port()
    config = uvicorn.Config(create_app(db, b"s" * 32, secure_cookies=False), "127.0.0.1", port, log_level="warning")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not instance.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    instance.should_exit = True
    thread.join(10)
    db.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    with headless_chromium() as driver:
        yield driver


def login(driver: webdriver.Chrome, base: str, username: str) -> None:
    submit_login(driver, base, username, PASSWORD)
    assert driver.find_elements(By.CSS_SELECTOR, "#fleet"), f"{username} is logged in"


def empty_tables(driver: webdriver.Chrome) -> list[str]:
    return [
        t.get_attribute("id") or "?"
        for t in driver.find_elements(By.CSS_SELECTOR, "table")
        if not t.find_elements(By.CSS_SELECTOR, "tbody tr")
    ]


def test_every_page_reads_well(server: str, browser: webdriver.Chrome) -> None:
    login(browser, server, "nora")
    colours: dict[str, set[str]] = defaultdict(set)
    charts_seen = 0
    for path in PAGES:
        browser.get(server + path)
        assert "Page not found" not in browser.title, path
        charts: list[dict[str, Any]] = browser.execute_script(INSPECT)
        charts_seen += len(charts)
        for chart in charts:
            where = f"{path}: {chart['title']}"
            assert not chart["clipped"], f"{where}: text outside its chart: {chart['clipped']}"
            assert chart["series"], f"{where}: a chart with nothing drawn"
            assert not chart["unlabelled"], f"{where}: series without a legend entry: {chart['unlabelled']}"
            ticks = [datetime.fromisoformat(t) for t in chart["ticks"]]
            if len(ticks) >= 2 and ticks[-1] - ticks[0] >= (ticks[1] - ticks[0]) * 2 and ticks[1] - ticks[0] >= _day():
                assert all(t.hour == t.minute == 0 for t in ticks), f"{where}: a multi-day tick off midnight: {ticks}"
            elif ticks:
                assert all(t.minute == 0 for t in ticks), f"{where}: an hour tick off the hour: {ticks}"
            for name, used in chart["colours"].items():
                if name in CLASSES:
                    colours[name].update(used)
        for class_name, background in browser.execute_script(SWATCHES):
            for name in CLASSES:
                if name in class_name.split():
                    colours[name].add(_hex(background))
        assert not empty_tables(browser), f"{path}: empty tables {empty_tables(browser)}"
    assert charts_seen >= 15
    assert {"negative", "positive", "ok", "moderate", "high"} <= set(colours), dict(colours)
    for name, used in colours.items():
        assert used == {MEANING[name].upper()}, f"{name} is drawn in {used} somewhere"
    # The 7-day device page has a tick on each midnight of the week, the 1-day page ticks on hours.
    browser.get(f"{server}/sites/{SITE}/devices/desk-01?days=7")
    week = [datetime.fromisoformat(t) for t in browser.execute_script(INSPECT)[0]["ticks"]]
    assert len(week) >= 7 and all((b - a) == _day() for a, b in itertools.pairwise(week)), week


def _day() -> Any:
    from datetime import timedelta

    return timedelta(days=1)


def _hex(css: str) -> str:
    r, g, b = (int(v) for v in css[css.index("(") + 1 : css.index(")")].split(",")[:3])
    return f"#{r:02X}{g:02X}{b:02X}"


def test_staff_see_aggregates_only_and_the_links_their_sites_have(server: str, browser: webdriver.Chrome) -> None:
    login(browser, server, "alice")
    nav = browser.find_element(By.TAG_NAME, "nav").text
    assert "school-a: screening" in nav and "school-a: head pose" in nav and "follow-up" not in nav
    browser.get(f"{server}/sites/{SITE}/followup")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Page not found", "the follow-up list is the nurse's"
    browser.get(f"{server}/sites/{SITE}/screening")
    page = browser.find_element(By.TAG_NAME, "main").text
    assert "screened" not in browser.find_element(By.ID, "quality").text.replace("not screened", "")
    assert "walked only part of the way" in page or "body not clearly in view" in page, "reasons in plain words"
    assert "partial_walk" not in page and "poor_view" not in page
    browser.get(f"{server}/alerts")
    groups = browser.find_elements(By.CSS_SELECTOR, "tbody.alert-group")
    assert len(groups) >= 3, "one group per device and rule"
    first = groups[0].find_element(By.CSS_SELECTOR, "tr.alert")
    assert "critical" in (first.get_attribute("class") or "") and "open" in first.text, "open and severe first"
    summary = browser.find_element(By.CSS_SELECTOR, "tbody.alert-group[data-device='desk-04'] td.summary").text
    assert "head held forward" in summary and "break" in summary, summary
    opened = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "td.opened")]
    assert len(set(opened)) == len(opened), "each alert shows its own time"


def test_empty_states_and_unknown_urls(server: str, browser: webdriver.Chrome) -> None:
    login(browser, server, "erin")
    nav = browser.find_element(By.TAG_NAME, "nav").text
    assert "screening" not in nav and "head pose" not in nav, "a site without booth or station gets no such link"
    for path, message in (("/", "No device has reported yet"), ("/alerts", "No active alerts"),
                          ("/sites/school-empty", "No device of this site has reported yet")):  # fmt: skip
        browser.get(server + path)
        assert message in browser.find_element(By.TAG_NAME, "main").text, path
        assert not browser.find_elements(By.CSS_SELECTOR, "table"), f"{path}: no table when there is nothing"
    for path in ("/no-such-page", f"/sites/{SITE}/devices/desk-01", "/sites/school-empty/devices/nope"):
        browser.get(server + path)
        assert browser.find_element(By.TAG_NAME, "h1").text == "Page not found", path
        assert browser.find_elements(By.TAG_NAME, "nav"), "the error page keeps the navigation"
        cookie = "; ".join(f"{c['name']}={c['value']}" for c in browser.get_cookies())
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(urllib.request.Request(server + path, headers={"Cookie": cookie}), timeout=10)
        assert answer.value.code == 404, path
        assert answer.value.headers["content-type"].startswith("text/html"), path
