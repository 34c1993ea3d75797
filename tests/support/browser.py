"""Debian's Chromium, headless, driven by selenium through chromedriver: the
browser of the dashboard and HLS tests (tests/conftest.py's ``browser``), and
what they read on the dashboard's page.

The page polls the server once a second, so what it shows is awaited with
selenium's WebDriverWait, a bounded poll of the page's DOM (there is no event
to await in another process's page).
"""

import shutil
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT = 15  # seconds for the dashboard to show a change (it polls every second)
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1200,900",
         # a test's <video> starts without a click, as a muted autoplay does in a page
         "--autoplay-policy=no-user-gesture-required")


def chromium(profile: Path) -> webdriver.Chrome:
    """A new headless Chromium with its profile in the empty directory ``profile``."""
    assert shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER), ".ci/run installs chromium and chromium-driver"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def card(browser, stream):
    """The dashboard's card of ``stream``."""
    return browser.find_element(By.CSS_SELECTOR, f'article[data-stream="{stream}"]')


def shows(browser, stream, selector, expected):
    """Wait until the stream's card shows ``expected`` in ``selector``; return the card."""
    def check(driver):
        try:
            return card(driver, stream).find_element(By.CSS_SELECTOR, selector).text == expected
        except Exception:  # not rendered yet, or re-rendered under our feet
            return False
    WebDriverWait(browser, WAIT, poll_frequency=0.1).until(
        check, f"{stream} {selector} to show {expected!r}")
    return card(browser, stream)
