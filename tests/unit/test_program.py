"""ProgramFilter: one program of a multi-program stream, chunk by chunk."""

import pytest

from restreamer.ts.program import ProgramFilter, ProgramGone
from restreamer.ts.psi import crc32, parse_pat

TSID = 0x2A2A


def _packet(pid, payload, cc=0, start=True):
    head = bytes((0x47, (0x40 if start else 0) | pid >> 8, pid & 0xFF, 0x10 | cc))
    return (head + payload).ljust(188, b"\xff")


def _section(table_id, extension, body, version=0):
    length = 5 + len(body) + 4
    head = bytes((table_id, 0xB0 | length >> 8, length & 0xFF, extension >> 8, extension & 0xFF,
                  0xC1 | version << 1, 0, 0))
    return head + body + crc32(head + body).to_bytes(4, "big")


def pat(programs, cc=0):
    body = b"".join(bytes((n >> 8, n & 0xFF, 0xE0 | pid >> 8, pid & 0xFF)) for n, pid in programs.items())
    return _packet(0, b"\0" + _section(0, TSID, body), cc)


def pmt(pid, number, streams, version=0):
    pcr = streams[0]
    body = bytes((0xE0 | pcr >> 8, pcr & 0xFF, 0xF0, 0))
    body += b"".join(bytes((0x1B, 0xE0 | s >> 8, s & 0xFF, 0xF0, 0)) for s in streams)
    return _packet(pid, b"\0" + _section(2, number, body, version))


def es(pid, n=3):
    return b"".join(_packet(pid, bytes([pid & 0xFF]) * 10, cc=i, start=False) for i in range(n))


def test_the_program_its_pmt_and_pids_pass_and_the_pat_lists_it_alone():
    head = pat({1: 0x1000, 2: 0x1001}) + pmt(0x1000, 1, [0x100]) + pmt(0x1001, 2, [0x200, 0x201])
    select = ProgramFilter(2)
    out = select.feed(head + es(0x100) + es(0x200) + es(0x201) + es(0x300))
    pids = [(p[1] & 0x1F) << 8 | p[2] for p in (out[i:i + 188] for i in range(0, len(out), 188))]
    assert pids == [0, 0x1001] + [0x200] * 3 + [0x201] * 3
    rewritten = parse_pat(out[5:5 + 3 + (out[7] | (out[6] & 0x0F) << 8)])
    assert (rewritten.transport_stream_id, rewritten.programs) == (TSID, {2: 0x1001})
    # Later PATs: the filter's own continuity counter, whatever the source's.
    more = select.feed(pat({1: 0x1000, 2: 0x1001}, cc=9) + pat({1: 0x1000, 2: 0x1001}, cc=3))
    assert [more[3] & 0x0F, more[188 + 3] & 0x0F] == [1, 2]


def test_a_new_pmt_changes_the_pids_kept_within_the_chunk():
    select = ProgramFilter(1)
    select.feed(pat({1: 0x1000}) + pmt(0x1000, 1, [0x100]))
    out = select.feed(es(0x101, 1) + pmt(0x1000, 1, [0x101], version=1) + es(0x101, 2) + es(0x100, 1))
    assert [(p[1] & 0x1F) << 8 | p[2] for p in (out[i:i + 188] for i in range(0, len(out), 188))] == [
        0x1000, 0x101, 0x101]


def test_a_program_gone_from_the_pat_is_said_with_what_it_lists():
    select = ProgramFilter(2)
    select.feed(pat({1: 0x1000, 2: 0x1001}))
    with pytest.raises(ProgramGone, match=r"program 2 is not in the PAT \(it lists 1\)"):
        select.feed(es(0x200) + pat({1: 0x1000}))
