"""What ops read of a stream (restreamer.core.view): figures, URLs shown
without their secrets, and nothing that lets them change the stream."""

from restreamer.config import from_dict
from restreamer.core.admission import join
from restreamer.core.stream import Stream
from restreamer.core.view import StreamView, StreamViews
from tests.support.ts import PACKET_SIZE, make_packets

SECRET = "http://user:pw@up:1/a.ts?token=x"


def stream_of(*remotes) -> Stream:
    config = from_dict({"resources": [{"type": "stream", "serve": "/a.ts", "remotes": list(remotes)}]})
    return Stream(config.streams[0], config)


def test_a_view_shows_the_online_remote_its_counts_and_viewers_without_secrets():
    stream = stream_of(SECRET, "tcp://other:2")
    view = StreamView(stream)
    assert (view.path, view.state, view.online, view.upstream, view.viewers) == (
        "/a.ts", "offline", False, None, 0)
    stream.lifecycle.connected(SECRET)
    stream.lifecycle.delivering()
    stream.hub.publish(make_packets(2), at_once=True)
    first, second = (join(stream.hub, stream.lifecycle, remote) for remote in ("10.0.0.1", "10.0.0.2"))
    assert (view.online, view.upstream, view.pulled) == (True, "http://up:1/a.ts", "http://up:1/a.ts")
    assert view.remotes == ["http://up:1/a.ts", "tcp://other:2"]
    assert [(r.url, r.online, r.packets_received, r.bytes_received) for r in view.received(every_url=False)] == [
        ("http://up:1/a.ts", True, 2, 2 * PACKET_SIZE), ("tcp://other:2", False, 0, 0)]
    assert [v.remote for v in view.audience()] == ["10.0.0.1", "10.0.0.2"]
    totals = view.totals()
    assert (totals["viewers"], totals["packets_received"]) == (2, 2)
    stream.hub.remove(first)
    stream.hub.remove(second)
    assert view.viewers == 0 and view.totals()["viewers"] == 0


def test_the_views_follow_the_streams_they_map():
    streams = {"/a.ts": stream_of("tcp://up:1")}
    views = StreamViews(streams)
    assert list(views) == ["/a.ts"] and views["/a.ts"].path == "/a.ts"
    streams["/b.ts"] = streams.pop("/a.ts")  # as a reload adds and removes streams
    assert list(views) == ["/b.ts"] and len(views) == 1
