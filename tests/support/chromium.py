"""Headless Chromium driven by Selenium, as the browser tests use it (Debian's chromium and chromedriver)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@contextmanager
def headless_chromium() -> Iterator[webdriver.Chrome]:
    """A 1300 x 1000 headless Chromium that gives a page 30 s to load; quit on exit."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1300,1000",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def submit_login(driver: webdriver.Chrome, base: str, username: str, password: str) -> None:
    """Fill in and send the dashboard's login form as a fresh visitor (no cookies), and wait for the page it leads
    to: a click can return before the browser has left the form."""
    driver.delete_all_cookies()
    driver.get(f"{base}/login")
    driver.find_element(By.ID, "username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(password)
    button = driver.find_element(By.ID, "login")
    button.click()
    WebDriverWait(driver, 30).until(expected_conditions.staleness_of(button))
