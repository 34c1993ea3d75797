"""The HLS and channel-list keys: defaults, overrides and their one-line errors."""

import pytest

from restreamer.config import ConfigError, from_dict


def stream(**keys):
    return dict({"type": "stream", "serve": "/a.ts", "remote": "tcp://127.0.0.1:1"}, **keys)


def test_hls_is_off_by_default_and_a_stream_may_override_the_global_key():
    config = from_dict({"resources": [stream(), stream(serve="/b", hls=True)]})
    assert [config.hls_of(s) for s in config.streams] == [False, True]
    assert config.streams[1].playlist_path == "/b.m3u8"
    config = from_dict({"hls": True, "resources": [stream(), stream(serve="/b", hls=False)]})
    assert [config.hls_of(s) for s in config.streams] == [True, False]
    assert config.streams[0].playlist_path == "/a.m3u8"
    assert (config.hlssegment, config.hlswindow) == (2, 6)


@pytest.mark.parametrize("data, where, problem", [
    ({"hls": True, "resources": [stream(), {"type": "api", "api": "health", "serve": "/a.m3u8"}]},
     "resources[0].serve", "its HLS playlist '/a.m3u8' is already served by resources[1]"),
    ({"hlssegment": 0}, "hlssegment", "must be more than 0"),
    ({"hlswindow": 0}, "hlswindow", ""),
    ({"trustedproxies": ["10.0.0.0/8", "proxy.example"]}, "trustedproxies[1]",
     "expected an address or a network such as 10.0.0.0/8, got 'proxy.example'"),
])
def test_bad_hls_and_proxy_keys_are_refused_in_one_line(data, where, problem):
    with pytest.raises(ConfigError) as caught:
        from_dict(data)
    assert caught.value.path == where and problem in caught.value.problem
