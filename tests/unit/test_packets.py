"""restreamer.ts.packets.PacketAligner: unit tests and property-based fuzzing.

The aligner is the one place where upstream bytes become packets, so its
contract is checked against arbitrary input split into arbitrary reads.
"""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from restreamer.ts.packets import LOCK_PACKETS, PACKET_SIZE, PacketAligner
from tests.support.ts import assert_aligned, make_packets

SYNC = b"\x47"


def feed_all(pieces, flush=True):
    """Feed `pieces` to a fresh aligner; return (aligner, the outputs of each call)."""
    aligner = PacketAligner()
    outputs = [aligner.feed(piece) for piece in pieces]
    if flush:
        outputs.append(aligner.flush())
    return aligner, outputs


def split(data, cuts):
    """`data` cut at the (sorted, deduplicated) offsets in `cuts`."""
    bounds = [0, *sorted({c % (len(data) + 1) for c in cuts}), len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


def assert_packets_embedded(output, data):
    """Every packet of `output` is a piece of `data`, in input order, not overlapping."""
    assert_aligned(output)
    position = 0
    for offset in range(0, len(output), PACKET_SIZE):
        packet = output[offset:offset + PACKET_SIZE]
        found = data.find(packet, position)
        assert found >= 0, f"output packet {offset // PACKET_SIZE} is not in the input after {position}"
        position = found + PACKET_SIZE


# -- unit tests ---------------------------------------------------------------

def test_aligned_input_passes_through_without_copy():
    data = make_packets(20)
    aligner = PacketAligner()
    assert aligner.feed(data) is data
    assert aligner.packets == 20 and aligner.skipped == 0


def test_leading_garbage_and_partial_packet_are_skipped():
    packets = make_packets(10)
    data = b"\x00\x01garbage" + packets[100:PACKET_SIZE] + packets[PACKET_SIZE:]
    aligner, outputs = feed_all([data])
    assert b"".join(outputs) == packets[PACKET_SIZE:]
    assert aligner.skipped == len(data) - 9 * PACKET_SIZE


def test_packet_split_across_reads_is_joined():
    packets = make_packets(8)
    aligner = PacketAligner()
    first = aligner.feed(packets[:6 * PACKET_SIZE + 50])
    assert first == packets[:6 * PACKET_SIZE]
    assert aligner.feed(packets[6 * PACKET_SIZE + 50:]) == packets[6 * PACKET_SIZE:]


def test_torn_packet_is_dropped_and_lock_regained():
    packets = make_packets(12)
    torn = packets[:5 * PACKET_SIZE] + packets[5 * PACKET_SIZE:5 * PACKET_SIZE + 100]
    aligner, outputs = feed_all([torn + packets[6 * PACKET_SIZE:]])
    out = b"".join(outputs)
    assert out == packets[:5 * PACKET_SIZE] + packets[6 * PACKET_SIZE:]
    assert aligner.skipped == 100


def test_text_full_of_sync_bytes_never_locks():
    page = (b"<html><head><title>Gateway Login</title></head><body>"
            b"<h1>GGG: Guest Gateway</h1><p>Please log in to GoGo.</p></body></html>\n") * 2000
    aligner, outputs = feed_all(split(page, range(0, len(page), 1000)))
    assert b"".join(outputs) == b""
    assert aligner.packets == 0 and aligner.skipped == len(page)
    assert not aligner.locked


def test_short_clean_stream_comes_out_at_flush():
    packets = make_packets(LOCK_PACKETS - 1)
    aligner = PacketAligner()
    assert aligner.feed(packets) == b""
    assert aligner.flush() == packets


def test_flush_drops_incomplete_tail():
    packets = make_packets(LOCK_PACKETS + 2)
    aligner, outputs = feed_all([packets[:-10]])
    assert b"".join(outputs) == packets[:-PACKET_SIZE]
    assert aligner.skipped == PACKET_SIZE - 10


# -- properties -----------------------------------------------------------------

packet = st.binary(min_size=PACKET_SIZE - 1, max_size=PACKET_SIZE - 1).map(lambda rest: SYNC + rest)
clean_ts = st.lists(packet, max_size=30).map(b"".join)
# Mostly real packets (so the aligner locks and loses lock), with garbage,
# stray sync bytes and torn packets in between.
segment = st.one_of(
    st.lists(packet, min_size=1, max_size=8).map(b"".join),
    st.binary(max_size=300),
    st.binary(max_size=40).map(lambda b: SYNC + b),
    packet.flatmap(lambda p: st.integers(1, PACKET_SIZE - 1).map(lambda n: p[:n])),
)
messy = st.lists(segment, max_size=20).map(b"".join)
cuts = st.lists(st.integers(min_value=0, max_value=10**6), max_size=30)

fuzz = settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


@fuzz
@given(messy, cuts)
def test_output_is_whole_packets_taken_from_input_in_order(data, cut_at):
    aligner, outputs = feed_all(split(data, cut_at))
    for output in outputs:
        assert len(output) % PACKET_SIZE == 0
    joined = b"".join(outputs)
    assert_packets_embedded(joined, data)
    assert aligner.packets * PACKET_SIZE == len(joined)
    assert aligner.skipped + len(joined) <= len(data)


@fuzz
@given(clean_ts, cuts)
def test_clean_stream_comes_out_unchanged(data, cut_at):
    aligner, outputs = feed_all(split(data, cut_at))
    assert b"".join(outputs) == data
    assert aligner.skipped == 0


@fuzz
@given(st.binary(max_size=600).map(lambda b: b.replace(SYNC, b"")),
       clean_ts.filter(lambda d: len(d) >= LOCK_PACKETS * PACKET_SIZE), cuts)
def test_clean_stream_after_garbage_comes_out_whole(garbage, data, cut_at):
    # Garbage without sync bytes cannot start a false lock, so the aligner
    # must lock on the stream's first packet and lose none of it.
    aligner, outputs = feed_all(split(garbage + data, cut_at))
    assert b"".join(outputs) == data
    assert aligner.skipped == len(garbage)


@pytest.mark.parametrize("step", [1, 7, 187, 188, 189, 1316])
def test_fixed_read_sizes_keep_a_clean_stream(step):
    data = make_packets(40)
    aligner, outputs = feed_all([data[i:i + step] for i in range(0, len(data), step)])
    assert b"".join(outputs) == data
