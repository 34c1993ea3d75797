"""What of a URL may be shown (redact_url), and the log's backstop (redact_text)."""

import pytest

from restreamer.log import _redact_urls
from restreamer.redact import redact_url


@pytest.mark.parametrize("url, shown", [
    ("http://user:p@ssw0rd@host:8000/live.ts?token=T#frag", "http://host:8000/live.ts"),
    ("http://user:pass word@host/x.ts", "http://host/x.ts"),
    ("https://SECRETKEY@host/x.ts", "https://host/x.ts"),
    ("http://[::1]:80/x.ts?k=v", "http://[::1]:80/x.ts"),
    ("fork:///usr/bin/ffmpeg?-i+rtsp://camuser:CAMPASS@cam/stream+-f+mpegts+-", "fork:///usr/bin/ffmpeg"),
    ("file:///srv/tv/a.ts", "file:///srv/tv/a.ts"),
    ("udp://239.1.1.1:1234", "udp://239.1.1.1:1234"),
    ("loop:sample", "loop:sample"),
    ("http://user:PW@[::1/x", "http://[::1/x"),  # unparseable: cut at the last "@"
])
def test_redact_url_keeps_scheme_host_port_and_path(url, shown):
    assert redact_url(url) == shown


@pytest.mark.parametrize("text, secrets", [
    ("connect to http://user:p@ssw0rd@host/x failed", ["p@ssw0rd", "ssw0rd"]),
    ("url http://user:pass word@host/x", ["pass word", "word@"]),
    ("http://SECRETKEY@host/x", ["SECRETKEY"]),
    ("GET http://host/x.ts?token=QTOKEN&b=2 done", ["QTOKEN"]),
    ("ffmpeg -i rtsp://camuser:CAMPASS@cam/s", ["CAMPASS", "camuser"]),
])
def test_log_events_lose_every_urls_userinfo_and_query(text, secrets):
    event = _redact_urls(None, "info", {"event": "x", "detail": text, "count": 3})
    assert not [s for s in secrets if s in event["detail"]]
    assert "://" in event["detail"] and event["count"] == 3
