"""A loop lap's offset: past the end of every stream's last frame."""

from restreamer.ts.timestamps import Clocks, span


def test_a_lap_ends_after_the_last_frame_of_the_longest_stream():
    # Video at 25 fps (3600 ticks a frame) whose PCRs span 1 s, and 44.1 kHz
    # AAC (1024 samples, ~2090 ticks a frame) whose last frame ends later.
    video = [3600 * n for n in range(25)]
    audio = [1000 + 2090 * n for n in range(43)]
    clocks = Clocks(pcrs=[(0, 256, 0), (188, 256, 90000 * 300)],
                    dts={256: video, 257: audio})
    ticks = span(clocks)
    assert ticks >= audio[-1] + 2090 - audio[0]
    for times in clocks.dts.values():
        assert times[0] + ticks > times[-1]  # every decoding time rises across a lap
