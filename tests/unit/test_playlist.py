"""HLS playlists read as a live relay needs them (RFC 8216)."""

import pytest

from restreamer.sources.playlist import PlaylistError, choose, parse

MASTER = """#EXTM3U
#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,CODECS="avc1.4d401e,mp4a.40.2"
low/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=2500000,RESOLUTION=1280x720
mid/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=1200000,NAME="backup"
http://other.example/b.m3u8
"""

MEDIA = """#EXTM3U
#EXT-X-VERSION:3
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:41
#EXTINF:2.0,
s41.ts
#EXT-X-KEY:METHOD=AES-128,URI="../k.key",IV=0x000102030405060708090a0b0c0d0e0f
#EXTINF:1.5,title, with a comma
s42.ts
#EXT-X-DISCONTINUITY
#EXT-X-KEY:METHOD=NONE
#EXTINF:2,
/abs/s43.ts
"""


def test_a_master_playlist_picks_the_highest_bandwidth_or_the_named_variant():
    playlist = parse(MASTER, "http://h/live/master.m3u8")
    assert [v.bandwidth for v in playlist.variants] == [800000, 2500000, 1200000]
    assert choose(playlist, None).url == "http://h/live/mid/index.m3u8"
    assert choose(playlist, "640x360").url == "http://h/live/low/index.m3u8"
    assert choose(playlist, "backup").url == "http://other.example/b.m3u8"
    with pytest.raises(PlaylistError, match="no variant 'hd'"):
        choose(playlist, "hd")


def test_a_media_playlist_numbers_its_segments_and_carries_keys_and_breaks():
    playlist = parse(MEDIA, "http://h/live/mid/index.m3u8")
    assert playlist.target == 2 and not playlist.ended and not playlist.fmp4
    assert [(s.sequence, s.url, s.duration, s.discontinuity) for s in playlist.segments] == [
        (41, "http://h/live/mid/s41.ts", 2.0, False),
        (42, "http://h/live/mid/s42.ts", 1.5, False),
        (43, "http://h/abs/s43.ts", 2.0, True)]
    key = playlist.segments[1].key
    assert (key.method, key.url, key.iv) == ("AES-128", "http://h/live/k.key", bytes(range(16)))
    assert playlist.segments[0].key is None and playlist.segments[2].key is None
    assert playlist.last == 43


@pytest.mark.parametrize("text, problem", [
    ("<html>not found</html>", "no #EXTM3U"),
    ("#EXTM3U\n#EXT-X-TARGETDURATION:soon\n", "line 2: 'soon' is not a number"),
    ("#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI=\"k\",IV=0x12\n", "line 2: EXT-X-KEY IV '0x12'"),
])
def test_what_is_not_a_usable_playlist_says_where_and_what(text, problem):
    with pytest.raises(PlaylistError, match=problem):
        parse(text, "http://h/p.m3u8")


def test_fmp4_and_the_end_of_a_playlist_are_noticed():
    playlist = parse("#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:1,\na.m4s\n#EXT-X-ENDLIST\n", "http://h/")
    assert playlist.fmp4 and playlist.ended
