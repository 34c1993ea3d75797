"""MPEG-TS helpers: the bundled sample, synthetic packets and alignment checks."""

import struct

from restreamer.ts.splice import is_discontinuity_packet

from . import REPO_ROOT

PACKET_SIZE = 188
SYNC_BYTE = 0x47
#: Packets per piece: 7 x 188 = 1316 bytes, the classic size that fits one
#: Ethernet-MTU UDP datagram; upstreams write in pieces of this size.
PIECE_PACKETS = 7
PIECE_SIZE = PIECE_PACKETS * PACKET_SIZE

SAMPLE_PATH = REPO_ROOT / "restreamer" / "data" / "sample.ts"

_SEQ = struct.Struct(">I")


def load_sample() -> bytes:
    """The bundled ~6 s H.264/AAC stream (made by scripts/make-sample.sh)."""
    return SAMPLE_PATH.read_bytes()


def make_packets(n: int, pid: int = 0x100, start_cc: int = 0) -> bytes:
    """`n` valid payload-only TS packets on `pid` with continuity counters from `start_cc`.

    Packet i's payload is its sequence number i as a big-endian uint32,
    repeated, so any packet seen downstream can be traced back with
    packet_seq() and gaps or reordering are obvious.
    """
    header_pid = pid & 0x1FFF
    packets = []
    for i in range(n):
        cc = (start_cc + i) & 0x0F
        header = bytes((SYNC_BYTE, header_pid >> 8, header_pid & 0xFF, 0x10 | cc))
        packets.append(header + _SEQ.pack(i & 0xFFFFFFFF) * ((PACKET_SIZE - 4) // 4))
    return b"".join(packets)


def packet_seq(packet: bytes) -> int:
    """The sequence number make_packets() stored in `packet`."""
    return _SEQ.unpack_from(packet, 4)[0]


def packet_pid(packet: bytes) -> int:
    return ((packet[1] & 0x1F) << 8) | packet[2]


def packet_cc(packet: bytes) -> int:
    return packet[3] & 0x0F


def packets_of(data: bytes) -> list[bytes]:
    """Split aligned TS data into its 188-byte packets (asserting alignment first)."""
    assert_aligned(data)
    return [data[i:i + PACKET_SIZE] for i in range(0, len(data), PACKET_SIZE)]


def assert_aligned(data: bytes) -> None:
    """Assert `data` is whole TS packets, each starting with the sync byte."""
    assert len(data) % PACKET_SIZE == 0, (
        f"{len(data)} bytes is not a whole number of {PACKET_SIZE}-byte packets "
        f"({len(data) % PACKET_SIZE} bytes left over)")
    for offset in range(0, len(data), PACKET_SIZE):
        assert data[offset] == SYNC_BYTE, (
            f"packet {offset // PACKET_SIZE} (offset {offset}) starts with "
            f"0x{data[offset]:02x}, not 0x47")


def assert_contiguous(received: bytes, sent: bytes) -> int:
    """Assert `received` is a contiguous, byte-identical run of `sent`; return where it starts.

    This is the core correctness check for a proxy: a viewer may join late and
    leave early, but must never see bytes that were dropped, duplicated,
    reordered or altered. The failure message is kept short because both
    arguments may be megabytes long.
    """
    offset = sent.find(received)
    if offset < 0:
        raise AssertionError(
            f"received {len(received)} bytes are not a contiguous substring of the "
            f"{len(sent)} bytes sent; {_divergence(received, sent)}")
    return offset


def _divergence(received: bytes, sent: bytes) -> str:
    """Describe where `received` stops matching `sent`, anchored at its first packet."""
    head = received[:PACKET_SIZE]
    start = sent.find(head)
    if start < 0:
        return f"its first {len(head)} bytes never appear in what was sent"
    common = 0
    limit = min(len(received), len(sent) - start)
    while common < limit and received[common] == sent[start + common]:
        common += 1
    if common == limit:
        return (f"it matches from sent offset {start} but runs "
                f"{len(received) - common} bytes past the end of sent")
    return (f"it matches from sent offset {start} for {common} bytes, then differs "
            f"(received offset {common}: 0x{received[common]:02x} vs 0x{sent[start + common]:02x})")


def assert_runs(received: bytes, *sents: bytes) -> list[int]:
    """Assert `received` is whole packets made of a contiguous run of sents[0], then
    one of sents[1], and so on (any run may be empty); return each run's length.

    This is assert_contiguous for a viewer that stayed connected while the
    upstream reconnected: one run per upstream connection, nothing altered
    or reordered within a run.  Each run is taken as long as possible, in
    whole packets; since the tail of a valid run is itself valid, this finds
    a split whenever one exists.
    """
    assert_aligned(received)
    lengths = []
    rest = received
    for sent in sents:
        fits = _most_packets_in(rest, sent, len(rest) // PACKET_SIZE)
        lengths.append(fits * PACKET_SIZE)
        rest = rest[fits * PACKET_SIZE:]
    if rest:
        raise AssertionError(
            f"received {len(received)} bytes are not runs of the {len(sents)} streams sent: "
            f"runs of {lengths} bytes, then {len(rest)} bytes that fit none")
    return lengths


def seamless_laps(data: bytes, laps: int) -> bytes:
    """`data` repeated `laps` times with each PID's continuity counters running on
    across the joins, as an encoder looping a file would send it.

    Plain repetition jumps every counter at each join (a continuity error per
    PID and lap); a multiple of 16 laps of this loops seamlessly itself.
    """
    assert_aligned(data)
    first: dict[int, int] = {}
    count: dict[int, int] = {}
    for offset in range(0, len(data), PACKET_SIZE):
        pid = packet_pid(data[offset:offset + 4])
        if data[offset + 3] & 0x10:
            first.setdefault(pid, packet_cc(data[offset:offset + 4]))
            count[pid] = count.get(pid, 0) + 1
    out = bytearray(data * laps)
    for lap in range(1, laps):
        for offset in range(lap * len(data), (lap + 1) * len(data), PACKET_SIZE):
            pid = packet_pid(out[offset:offset + 4])
            if out[offset + 3] & 0x10 and pid != 0x1FFF:
                out[offset + 3] = out[offset + 3] & 0xF0 | (out[offset + 3] + lap * count[pid]) & 0x0F
    return bytes(out)


def with_pcr_jump(data: bytes, after: int, seconds: float) -> bytes:
    """`data` with every PCR from byte `after` on moved `seconds` later, as a
    recording spliced from two sources looks."""
    out = bytearray(data)
    ticks = round(seconds * 90_000)
    for offset in range(after - after % PACKET_SIZE, len(out), PACKET_SIZE):
        if out[offset + 3] & 0x20 and out[offset + 4] >= 7 and out[offset + 5] & 0x10:
            b = out[offset + 6:offset + 12]
            base = (b[0] << 25 | b[1] << 17 | b[2] << 9 | b[3] << 1 | b[4] >> 7) + ticks
            out[offset + 6:offset + 11] = bytes((base >> 25 & 0xFF, base >> 17 & 0xFF, base >> 9 & 0xFF,
                                                 base >> 1 & 0xFF, (base & 1) << 7 | (b[4] & 0x7F)))
    return bytes(out)


def _program_pids(pat_packet: bytes) -> set[int]:
    """The PMT PIDs a single-packet PAT lists."""
    section = pat_packet[5 + pat_packet[4]:]
    length = ((section[1] & 0x0F) << 8) | section[2]
    entries = section[8:3 + length - 4]
    return {((entries[i + 2] & 0x1F) << 8) | entries[i + 3]
            for i in range(0, len(entries), 4) if entries[i] << 8 | entries[i + 1]}


def random_access(packet: bytes) -> bool:
    """The adaptation field's random_access_indicator is set."""
    return bool(packet[3] & 0x20 and packet[4] and packet[5] & 0x40)


def unmarked(data: bytes) -> bytes:
    """``data`` (whole packets) without the discontinuity packets a splice begins with."""
    return b"".join(p for p in packets_of(data) if not is_discontinuity_packet(p))


def keyframes(data: bytes) -> list[int]:
    """Byte offsets of the video's RAPs: packets with the random_access_indicator
    that begin a video PES (the audio's carry the indicator too)."""
    frames = []
    for offset in range(0, len(data), PACKET_SIZE):
        packet = data[offset:offset + PACKET_SIZE]
        if len(packet) == PACKET_SIZE and random_access(packet) and packet[1] & 0x40:
            pes = packet[5 + packet[4]:]
            if pes[:3] == b"\x00\x00\x01" and 0xE0 <= pes[3] <= 0xEF:
                frames.append(offset)
    return frames


def strip_start(received: bytes) -> bytes:
    """Assert `received` begins as a fast start does (the PAT, the PMT(s), then
    a packet with the random_access_indicator), after a splice's discontinuity
    packets if any; return it from that packet on."""
    assert_aligned(received[:len(received) - len(received) % PACKET_SIZE])
    received = unmarked(whole(received[:16 * PACKET_SIZE])) + received[16 * PACKET_SIZE:]
    assert len(received) >= 3 * PACKET_SIZE, f"only {len(received)} bytes"
    assert packet_pid(received) == 0, f"the first packet is PID {packet_pid(received):#x}, not the PAT"
    pmts = _program_pids(received[:PACKET_SIZE])
    offset = PACKET_SIZE
    while packet_pid(received[offset:]) in pmts:
        offset += PACKET_SIZE
    assert offset > PACKET_SIZE, "no PMT after the PAT"
    rap = received[offset:offset + PACKET_SIZE]
    assert random_access(rap), f"packet {offset // PACKET_SIZE} (PID {packet_pid(rap):#x}) is not a RAP"
    return received[offset:]


#: Enough of a stream's head to hold a fast start (splice marks, PAT, PMTs, RAP).
HEAD = 64 * PACKET_SIZE


def _starts_clean(data) -> bool:
    """Whether `data` (bytes or a memoryview) begins as a fast start does: only
    its head is read, so a check at each packet of a long stream stays cheap."""
    try:
        strip_start(bytes(data[:HEAD]))
    except AssertionError:
        return False
    return True


def _cut_start(data: bytes) -> bool:
    """Whether `data` is the beginning of a fast start that the recording's end
    cut off (a viewer that hung up there): splice marks, then at most the PAT
    and its PMTs, and nothing after them."""
    packets = packets_of(unmarked(whole(data)))
    if not packets:
        return True
    if packet_pid(packets[0]) != 0:
        return False
    pmts = _program_pids(packets[0])
    return all(packet_pid(p) in pmts for p in packets[1:])


def _resumes(data) -> bool:
    """Whether `data` (bytes or a memoryview) begins as a fast start does, or
    is all of such a beginning that there is (see _cut_start)."""
    return _starts_clean(data) or (len(data) < HEAD and _cut_start(bytes(data)))


def assert_clean_start(received: bytes, sent: bytes) -> int:
    """A fast start (strip_start) followed by a contiguous run of `sent`; where that run starts."""
    return assert_contiguous(strip_start(received), sent)


def assert_clean_runs(received: bytes, *sents: bytes) -> list[int]:
    """`received` is, for each of `sents` in turn, a fast start then a
    contiguous run of it (whole packets); the length of each run.  The
    recording may end inside a fast start (the viewer hung up there): that
    start is a run of 0."""
    lengths = []
    rest = received
    for sent in sents:
        if not rest or (len(rest) < HEAD and _cut_start(rest)):
            lengths.append(0)
            rest = b""
            continue
        rest = strip_start(rest)
        fits, end = _longest_run(rest, sent)
        # The PAT and PMT a resume begins with may also follow the run in
        # `sent`: the run ends where the rest is a clean start again.  (A
        # memoryview: no copy of the rest, which may be MBs, per packet tried.)
        view = memoryview(rest)
        while fits and fits * PACKET_SIZE < len(rest) and not _resumes(view[fits * PACKET_SIZE:]):
            fits -= 1
            end -= PACKET_SIZE
        lengths.append(fits * PACKET_SIZE)
        # A skip's tail: packets of `sent` that complete the units the run was
        # in, found after it (sought near it: `sent` may be tens of MB).
        skip = fits * PACKET_SIZE
        while skip < len(rest) and not _resumes(view[skip:]):
            at = sent.find(view[skip:skip + PACKET_SIZE], end, end + TAIL_SPAN)
            if at < 0:
                break
            end = at + PACKET_SIZE
            skip += PACKET_SIZE
        view.release()
        rest = rest[skip:]
    if rest:
        raise AssertionError(f"received {len(received)} bytes are not clean runs of the "
                             f"{len(sents)} streams sent: runs of {lengths}, then {len(rest)} bytes")
    return lengths


def _most_packets_in(rest: bytes, sent: bytes, limit: int) -> int:
    """The most whole packets (``limit`` at most) `rest` begins with that lie
    contiguous somewhere in `sent`: a tail of a run found is itself found, so
    a binary search finds it."""
    fits, too_long = 0, limit + 1
    while too_long - fits > 1:
        middle = (fits + too_long) // 2
        if rest[:middle * PACKET_SIZE] in sent:
            fits = middle
        else:
            too_long = middle
    return fits


#: How far past a run in what was sent the packets of a skip's tail are sought.
TAIL_SPAN = 4_000_000
#: Packets that place a run in what was sent (unique in any stream the tests send).
PROBE = 8


def _longest_run(rest: bytes, sent: bytes) -> tuple[int, int]:
    """The most whole packets `rest` begins with that lie contiguous in `sent`,
    and the offset in `sent` where they end."""
    packets = len(rest) // PACKET_SIZE
    probe = min(packets, PROBE)
    at = sent.find(rest[:probe * PACKET_SIZE])
    if at < 0 or probe < PROBE:  # a short run: sought packet by packet
        fits = _most_packets_in(rest, sent, probe)
        return fits, (sent.find(rest[:fits * PACKET_SIZE]) + fits * PACKET_SIZE if fits else 0)
    # Placed: compare in place, a memcmp per step rather than a search of `sent`.
    fits, too_long = probe, packets + 1
    while too_long - fits > 1:
        middle = (fits + too_long) // 2
        if rest[:middle * PACKET_SIZE] == sent[at:at + middle * PACKET_SIZE]:
            fits = middle
        else:
            too_long = middle
    return fits, at + fits * PACKET_SIZE


def assert_joined(received: bytes, sent: bytes) -> int:
    """A viewer's data is a fast start (assert_clean_start) or, for a viewer that
    came before its connection's first PAT, a contiguous run from the live
    edge; where the run in `sent` starts."""
    if _starts_clean(received):
        return assert_clean_start(received, sent)
    return assert_contiguous(received, sent)


def whole(data: bytes) -> bytes:
    """``data`` up to its last complete packet (the rest may still be in flight)."""
    return data[:len(data) - len(data) % PACKET_SIZE]
