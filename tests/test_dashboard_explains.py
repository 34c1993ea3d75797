"""The dashboard plays and explains, in Debian's Chromium: why a stream is
down and when it tries again, online-since and reconnects, the copy-URL
field, an HLS stream played in the card's <video>, "idle" for an idle stream,
and, past a few dozen streams, a compact table with a filter and sorting.

What the page shows is awaited with WebDriverWait, a bounded poll of the
page's DOM (it polls the server once a second; there is no event to await).
"""

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.support.browser import WAIT, card, shows
from tests.support.hls import continuous
from tests.support.server import RestreamerProcess
from tests.support.upstream import TSUpstream
from tests.support.viewer import HttpViewer

DEAD = "tcp://127.0.0.1:1"
MANY = 300


@pytest.fixture(scope="module")
def source(sample):
    payload, rate = continuous(sample, 20)
    server = TSUpstream(payload, rate=rate)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def server(source, tmp_path_factory):
    config = {"reconnect": 30, "resources": [
        {"type": "stream", "serve": "/tv.ts", "remote": source.url, "hls": True, "name": "Channel One"},
        {"type": "stream", "serve": "/dead.ts", "remote": DEAD},
        {"type": "stream", "serve": "/idle.ts", "remote": DEAD, "ondemand": True},
        {"type": "api", "api": "dashboard", "serve": "/"}]}
    process = RestreamerProcess(config, tmp_path_factory.mktemp("explains")).start()
    process.wait_log(lambda e: e.get("event") == "stream online" and e.get("stream") == "/tv.ts")
    yield process
    process.close()


def test_a_down_stream_says_why_and_when_it_tries_again(server, browser):
    browser.get(server.url("/"))
    dead = shows(browser, "/dead.ts", ".state", "offline")
    WebDriverWait(browser, WAIT).until(lambda d: "next attempt in" in card(d, "/dead.ts").find_element(
        By.CSS_SELECTOR, ".why").text)
    reason = dead.find_element(By.CSS_SELECTOR, ".why").text
    assert "refused" in reason.lower() and "127.0.0.1:1" in reason, reason
    tv = shows(browser, "/tv.ts", ".state", "online")
    assert tv.find_element(By.CSS_SELECTOR, "h2").text == "Channel One (/tv.ts)"
    assert tv.find_element(By.CSS_SELECTOR, ".why").text == ""
    assert tv.find_element(By.CSS_SELECTOR, ".since").text != "–"
    assert tv.find_element(By.CSS_SELECTOR, ".reconnects").text == "0"
    assert tv.find_element(By.CSS_SELECTOR, ".url input").get_attribute("value") == server.url("/tv.ts")
    idle = shows(browser, "/idle.ts", ".state", "idle")
    assert idle.find_element(By.CSS_SELECTOR, ".rates").text == "idle"
    # no HLS for these: no player
    assert not dead.find_element(By.CSS_SELECTOR, "[data-action=play]").is_displayed()


def test_an_hls_stream_plays_in_its_card(server, browser):
    browser.get(server.url("/"))
    tv = shows(browser, "/tv.ts", ".state", "online")
    tv.find_element(By.CSS_SELECTOR, "[data-action=play]").click()
    WebDriverWait(browser, 15, poll_frequency=0.2).until(lambda d: d.execute_script(
        "const v = document.querySelector('article[data-stream=\"/tv.ts\"] video');"
        "return !v.hidden && !v.error && v.currentTime > 1"), "the card's video to play")
    tv.find_element(By.CSS_SELECTOR, "[data-action=play]").click()
    assert not card(browser, "/tv.ts").find_element(By.CSS_SELECTOR, "video").is_displayed()


@pytest.fixture(scope="module")
def crowded(source, tmp_path_factory):
    """MANY idle on-demand streams and one that is watched."""
    resources = [{"type": "stream", "serve": "/watched.ts", "remote": source.url}]
    resources += [{"type": "stream", "serve": f"/ch{i:03d}.ts", "remote": DEAD, "ondemand": True,
                   "name": f"Channel {i:03d}"} for i in range(MANY)]
    resources.append({"type": "api", "api": "dashboard", "serve": "/"})
    process = RestreamerProcess({"resources": resources}, tmp_path_factory.mktemp("crowded")).start()
    process.wait_log(lambda e: e.get("event") == "stream online" and e.get("stream") == "/watched.ts")
    yield process
    process.close()


def rows(browser) -> list[dict]:
    """The compact table's shown rows, in order, each as its stream and cells'
    texts: read in one script (a WebDriver call per row of 300 took seconds)."""
    return browser.execute_script(
        "return [...document.querySelectorAll('#compact tbody tr')]"
        ".filter(r => r.getClientRects().length)"  # displayed, as is_displayed() judges a hidden row
        ".map(r => ({stream: r.dataset.stream, cells: [...r.cells].map(c => c.innerText)}))")


def test_many_streams_make_a_compact_table_to_filter_and_sort(crowded, browser):
    watcher = HttpViewer(crowded.url("/watched.ts"))
    try:
        watcher.wait_bytes(1)
        browser.get(crowded.url("/"))
        WebDriverWait(browser, WAIT).until(lambda d: len(rows(d)) == MANY + 1)
        painted = WebDriverWait(browser, WAIT).until(lambda d: d.execute_script("return window.streamsPainted"))
        print(f"{MANY + 1} streams painted {painted:.0f} ms after navigation")
        assert painted <= 1000, f"the streams took {painted:.0f} ms to paint"  # the target
        assert not browser.find_element(By.ID, "streams").is_displayed()
        Select(browser.find_element(By.ID, "sort")).select_by_value("viewers")
        WebDriverWait(browser, WAIT).until(
            lambda d: rows(d)[0]["stream"] == "/watched.ts" and rows(d)[0]["cells"][2] == "1")
        Select(browser.find_element(By.ID, "sort")).select_by_value("state")
        WebDriverWait(browser, WAIT).until(lambda d: rows(d)[-1]["stream"] == "/watched.ts")
        browser.find_element(By.ID, "filter").send_keys("ch12")
        WebDriverWait(browser, WAIT).until(lambda d: len(rows(d)) == 10)  # /ch120.ts to /ch129.ts
        assert {r["cells"][1] for r in rows(browser)} == {"idle"}
        assert browser.find_element(By.ID, "shown").text == f"10 of {MANY + 1} streams"
    finally:
        watcher.close()
