"""The dashboard in a real browser: Debian's chromium, headless, driven by
selenium through chromedriver, against a real restreamer and real viewers.

The page polls once a second, so what it shows is awaited with selenium's
WebDriverWait (a bounded poll of the page's DOM: there is no event to await
in another process's page).
"""

import json

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from tests.support.browser import WAIT, card, shows
from tests.support.server import RestreamerProcess
from tests.support.upstream import TSUpstream
from tests.support.viewer import HttpViewer, http_get

DEAD_URL = "http://user:s3cr3tpw@127.0.0.1:1/live.ts?token=t0k3nvalue"


@pytest.fixture(scope="module")
def source(sample):
    server = TSUpstream(sample)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def server(source, tmp_path_factory):
    config = {"maxconnections": 20, "fullconnections": 15, "userlist": {"admin": {"password": "pw"}},
              "resources": [
                  {"type": "stream", "serve": "/one.ts", "remote": source.url},
                  {"type": "stream", "serve": "/two.ts", "remote": DEAD_URL},
                  {"type": "api", "api": "control", "serve": "/control/one", "remote": "/one.ts"},
                  {"type": "api", "api": "dashboard", "serve": "/"},
                  {"type": "api", "api": "dashboard", "serve": "/private",
                   "authentication": {"type": "basic", "realm": "ops", "users": ["admin"]}}]}
    process = RestreamerProcess(config, tmp_path_factory.mktemp("dashboard")).start()
    process.wait_log(lambda e: e.get("event") == "stream online" and e.get("stream") == "/one.ts")
    yield process
    process.close()
    print(process.output_tail())


def test_the_page_renders_every_stream_and_masks_secrets(server, browser):
    browser.get(server.url("/"))
    one = shows(browser, "/one.ts", ".state", "online")
    two = shows(browser, "/two.ts", ".state", "offline")
    assert one.find_element(By.CSS_SELECTOR, "h2").text == "/one.ts"
    shows(browser, "/one.ts", ".codecs", "h264, aac, 640x360")
    shows(browser, "/one.ts", ".errors", "none")
    upstream = two.find_element(By.CSS_SELECTOR, ".upstream").text
    assert "127.0.0.1:1/live.ts" in upstream
    assert "s3cr3tpw" not in browser.page_source and "t0k3nvalue" not in browser.page_source
    assert browser.find_element(By.ID, "g-version").text
    # no control API for /two.ts: no switch
    assert not [b for b in two.find_elements(By.CSS_SELECTOR, "[data-action=offline], [data-action=online]")
                if b.is_displayed()]


def test_numbers_follow_viewers_as_they_come_and_go(server, browser):
    browser.get(server.url("/"))
    shows(browser, "/one.ts", ".viewers", "0")
    first, second = HttpViewer(server.url("/one.ts")), HttpViewer(server.url("/one.ts"))
    try:
        first.wait_bytes(1); second.wait_bytes(1)
        shows(browser, "/one.ts", ".viewers", "2")
        WebDriverWait(browser, WAIT).until(
            lambda d: d.find_element(By.ID, "g-viewers").text == "2 / 20 (full at 15)")
        WebDriverWait(browser, WAIT).until(
            lambda d: d.find_element(By.ID, "g-bandwidth").text != "0 bit/s")
        # the viewer list, on demand
        one = card(browser, "/one.ts")
        one.find_element(By.CSS_SELECTOR, "[data-action=viewers]").click()
        WebDriverWait(browser, WAIT).until(
            lambda d: len(card(d, "/one.ts").find_elements(By.CSS_SELECTOR, "tbody tr")) == 2)
        assert card(browser, "/one.ts").find_element(By.CSS_SELECTOR, "tbody td").text == "127.0.0.1"
        first.close()
        shows(browser, "/one.ts", ".viewers", "1")
    finally:
        first.close()
        second.close()
    shows(browser, "/one.ts", ".viewers", "0")


def test_the_control_buttons_switch_a_stream_offline_and_online(server, browser):
    browser.get(server.url("/"))
    one = shows(browser, "/one.ts", ".state", "online")
    mark = server.mark()
    # Taking a stream offline asks first: cancelled, nothing is sent.
    for answer in ("dismiss", "accept"):
        one.find_element(By.CSS_SELECTOR, "[data-action=offline]").click()
        alert = WebDriverWait(browser, WAIT).until(expected_conditions.alert_is_present())
        assert "/one.ts" in alert.text
        getattr(alert, answer)()
    server.wait_log(lambda e: e.get("event") == "stream switched" and e.get("state") == "offline")
    server.wait_log(lambda e: e.get("path") == "/control/one")  # its access line may come after
    assert len(server.find_logs(lambda e: e.get("path") == "/control/one", since=mark)) == 1
    one = shows(browser, "/one.ts", ".state", "disabled")
    assert http_get(server.url("/one.ts"))[0] == 404
    one.find_element(By.CSS_SELECTOR, "[data-action=online]").click()
    server.wait_log(lambda e: e.get("event") == "stream switched" and e.get("state") == "online")
    shows(browser, "/one.ts", ".state", "online")


def test_the_json_is_a_summary_and_the_page_is_authenticated_like_any_api(server):
    status, headers, body = http_get(server.url("/?json"))
    assert status == 200 and headers["Content-Type"] == "application/json"
    summary = json.loads(body)
    assert [s["path"] for s in summary["streams"]] == ["/one.ts", "/two.ts"]
    assert summary["streams"][0]["control"] == "/control/one"
    assert all(isinstance(s["viewers"], int) for s in summary["streams"])  # counts, not lists
    assert len(json.loads(http_get(server.url(f"/?json&since={summary['seq']}"))[2])
               ["streams"][0]["history"]["viewers"]) <= 1  # only samples the page has not seen
    assert http_get(server.url("/?viewers=/nothing.ts"))[0] == 404
    assert http_get(server.url("/private"))[0] == 401
    assert http_get(server.url("/private?json"))[0] == 401
    status, headers, _ = http_get(server.url("/private"), headers={"Authorization": "Basic YWRtaW46cHc="})
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    # No other site may frame the page (and trick a click on its buttons).
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Content-Security-Policy"] == "frame-ancestors 'none'"
