"""Static resources from real files, answered through Flask's test client
(tests/test_static_fetch.py has the same from an HTTP server)."""

import pytest
from flask import Flask, request

from restreamer.config import from_dict
from restreamer.web.static import MAX_SIZE, StaticResource
from tests.unit.conftest import wait_log


def client(remote: str, base_dir: str, cache: float = 0, timeout: float = 0):
    config = from_dict({"timeout": timeout, "resources": [
        {"type": "static", "serve": "/page", "remote": remote, "cache": cache}]},
        base_dir=base_dir)
    static = StaticResource(config.resources[0], config)
    app = Flask(__name__)
    app.add_url_rule("/page", view_func=lambda: static.respond(request))
    return app.test_client()


def test_a_file_is_served_with_its_type_an_etag_and_its_cache_time(tmp_path):
    (tmp_path / "page.html").write_bytes(b"<p>hello</p>")
    web = client("file:page.html", str(tmp_path), cache=60)  # relative to the config's folder
    response = web.get("/page")
    assert (response.status_code, response.data) == (200, b"<p>hello</p>")
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.headers["Cache-Control"] == "max-age=60"
    etag = response.headers["ETag"]
    again = web.get("/page", headers={"If-None-Match": etag})
    assert (again.status_code, again.data) == (304, b"")
    assert web.get("/page", headers={"If-None-Match": '"other"'}).status_code == 200


def test_a_home_relative_path_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "page.txt").write_bytes(b"at home")
    web = client("file:~/page.txt", "/nonexistent")
    assert web.get("/page").data == b"at home"


def test_within_cache_time_the_fetched_content_is_served(tmp_path):
    page = tmp_path / "page.txt"
    page.write_bytes(b"one")
    cached, uncached = client(f"file://{page}", "/", cache=60), client(f"file://{page}", "/")
    assert cached.get("/page").data == uncached.get("/page").data == b"one"
    page.write_bytes(b"two")
    assert cached.get("/page").data == b"one"
    assert uncached.get("/page").data == b"two"


@pytest.mark.parametrize("make, status, reason", [
    (lambda p: None, 404, "no such file"),
    (lambda p: p.mkdir(), 403, "is a directory"),
    (lambda p: p.write_bytes(b"\0" * (MAX_SIZE + 1)), 502, f"more than {MAX_SIZE}"),
])
def test_a_file_that_cannot_be_served_is_one_log_line_and_a_status(tmp_path, logs, make, status, reason):
    make(tmp_path / "page")
    response = client("file:page", str(tmp_path)).get("/page")
    assert response.status_code == status
    entry = wait_log(logs, "static fetch failed", status=status)
    assert reason in entry["reason"] and entry["serve"] == "/page"
