"""The loop: source's laps join without continuity errors (restreamer.sources.loop)."""

from restreamer.sources import SourceSettings
from restreamer.sources.loop import LoopConnection
from restreamer.ts.packets import PACKET_SIZE
from tests.unit.test_analysis import SAMPLE, analyse, errors


def test_laps_continue_each_pids_counters(tmp_path):
    # a third of a second of the sample, looped at its pace: 3 laps in about a second
    clip = SAMPLE[:len(SAMPLE) // 18 // PACKET_SIZE * PACKET_SIZE]
    (tmp_path / "clip.ts").write_bytes(clip)
    assert errors(analyse(clip * 3))["Continuity_count_error"] >= 2  # what plain repetition does
    settings = SourceSettings(timeout=0, inputbuffer=1000, mru=1500, clientinterface=None,
                              base_dir=str(tmp_path), stream="/clip.ts", verify=True)
    connection = LoopConnection("loop:clip.ts", settings)
    sent = b""
    while len(sent) < 3 * len(clip):
        sent += connection.read()
    connection.close()
    assert errors(analyse(sent)) == {}
    assert sent[:len(clip)] == clip  # the first lap is the file as it is
    # later laps differ from it in the counters only
    lap = sent[len(clip):2 * len(clip)]
    assert lap != clip and lap[4::PACKET_SIZE] == clip[4::PACKET_SIZE]
    assert bytes(b & 0xF0 for b in lap[3::PACKET_SIZE]) == bytes(b & 0xF0 for b in clip[3::PACKET_SIZE])
