"""restreamer.ts.video on what this machine's ffmpeg encodes now: picture
sizes from the sequence headers of freshly encoded streams (tests/unit has
the headers of one such run, for the parser alone)."""

import subprocess

import pytest

from restreamer.ts.video import picture_size


def _encode(tmp_path, size: str, codec: str, extra=()) -> bytes:
    """One second of a test pattern as a raw elementary stream, by ffmpeg."""
    out = tmp_path / f"{codec}.es"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"testsrc=size={size}:rate=5", "-t", "0.4",
                    "-c:v", "libx264" if codec == "h264" else "mpeg2video", *extra, "-f",
                    "h264" if codec == "h264" else "mpeg2video", str(out)], check=True, timeout=30)
    return out.read_bytes()


@pytest.mark.parametrize("size, extra", [
    ("1920x1080", ("-pix_fmt", "yuv420p")),  # cropped: 68 macroblock rows are 1088 lines
    ("720x576", ("-pix_fmt", "yuv420p", "-flags", "+ildct+ilme", "-x264opts", "interlaced=1")),  # fields
    ("352x288", ("-pix_fmt", "yuv444p", "-profile:v", "high444")),  # a high profile, 4:4:4
    ("1280x720", ("-pix_fmt", "yuv420p", "-profile:v", "baseline")),
])
def test_h264_sizes(tmp_path, size, extra):
    assert picture_size(_encode(tmp_path, size, "h264", extra), "h264") == tuple(map(int, size.split("x")))


def test_mpeg2_size(tmp_path):
    assert picture_size(_encode(tmp_path, "720x576", "mpeg2video"), "mpeg2video") == (720, 576)

