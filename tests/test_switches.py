"""A stream's connection replaced while viewers are held: logged with the old
and new URL and the time viewers saw no data, and counted in statistics and
Prometheus."""

import json
import re

from tests.support.ts import PACKET_SIZE
from tests.support.viewer import http_get
from tests.support.server import event

RATE = 2_000_000


def test_a_reconnect_with_viewers_held_is_a_counted_switch(upstream, restreamer, viewer):
    up = upstream(rate=RATE)
    rs = restreamer({"reconnect": 0.5, "graceperiod": 5, "resources": [
        {"type": "stream", "serve": "/s.ts", "remote": up.url},
        {"type": "api", "api": "statistics", "serve": "/statistics"},
        {"type": "api", "api": "prometheus", "serve": "/metrics"}]})
    rs.wait_log("stream online")
    client = viewer(rs.url("/s.ts"))
    client.wait_bytes(PACKET_SIZE * 70)
    mark = rs.mark()
    up.close_all()
    switched = rs.wait_log(event("upstream switched", stream="/s.ts"), since=mark)
    assert (switched["old_url"], switched["new_url"], switched["viewers"]) == (up.url, up.url, 1)
    # From the old connection's last packet to the new one's first, within the grace period.
    assert 0 < switched["gap"] < 5
    stats = json.loads(http_get(rs.url("/statistics"))[2])
    assert stats["streams"]["/s.ts"]["total_switches"] == stats["total_switches"] == 1
    assert abs(stats["streams"]["/s.ts"]["total_switch_gap_ns"] / 1e9 - switched["gap"]) <= 0.001
    metrics = http_get(rs.url("/metrics"))[2].decode()
    assert re.search(r'^restreamer_upstream_switches_total\{stream="/s.ts"\} 1\.0$', metrics, re.M)
    gap = re.search(r'^restreamer_upstream_switch_gap_seconds_total\{stream="/s.ts"\} (\S+)$',
                    metrics, re.M)
    assert abs(float(gap.group(1)) - switched["gap"]) <= 0.001
    # A reconnect with nobody watching is no switch: nobody saw a gap.
    client.close()
    rs.wait_log("viewer disconnected", since=mark)
    mark = rs.mark()
    up.close_all()
    rs.wait_log("stream online", since=mark)
    assert not rs.find_logs("upstream switched", since=mark)
    assert json.loads(http_get(rs.url("/statistics"))[2])["total_switches"] == 1
