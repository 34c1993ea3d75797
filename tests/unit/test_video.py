"""restreamer.ts.video: picture sizes from sequence headers.

The headers are what ffmpeg's encoders wrote (tests/test_video.py encodes
the same streams afresh): for H.264 the parameter sets up to the first
slice, for MPEG-2 the sequence header and its extension up to the first GOP.
"""

import pytest

from restreamer.ts.video import h264_sps_size, picture_size

#: ``ffmpeg -f lavfi -i testsrc=size=SIZE:rate=5 -t 0.4 -c:v libx264 OPTIONS -f h264``
H264_HEADERS = {
    # cropped: 68 macroblock rows are 1088 lines
    (1920, 1080): "0000000167640028acd940780227e5c044000003000400000300283c60c6580000000168ebe3cb22c0",
    # -flags +ildct+ilme -x264opts interlaced=1: fields
    (720, 576): "0000000167640016acd940b424d8088000000300800000050f8a14cb0000000168fba3cb22c0",
    # -pix_fmt yuv444p -profile:v high444: a high profile, 4:4:4
    (352, 288): "0000000167f4000c919b282c12d808800000030080000005078a14cb0000000168ebe3c44844",
    # -profile:v baseline
    (1280, 720): "000000016742c01fd9005005bb0110000003001000000300a0f18324800000000168cb83cb20",
}
#: ``ffmpeg -f lavfi -i testsrc=size=720x576:rate=5 -t 0.4 -c:v mpeg2video -f mpeg2video``
MPEG2_HEADER = "000001b32d024013ffffe018000001b5148a00010004"


@pytest.mark.parametrize("size", H264_HEADERS)
def test_h264_sizes(size):
    assert picture_size(bytes.fromhex(H264_HEADERS[size]), "h264") == size


def test_mpeg2_size():
    assert picture_size(bytes.fromhex(MPEG2_HEADER), "mpeg2video") == (720, 576)


def test_no_header_or_a_broken_one_is_no_size():
    assert picture_size(b"\x00\x00\x01\x09\xf0", "h264") is None
    assert h264_sps_size(b"\x67\x4d") is None
    assert picture_size(b"\x00\x00\x01\xb3", "mpeg2video") is None
    assert picture_size(b"anything", "aac") is None
    # an SPS cut short of its size fields
    assert picture_size(bytes.fromhex(H264_HEADERS[(1920, 1080)])[:12], "h264") is None
