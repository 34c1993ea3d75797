"""CPU cost of the transport-stream analysis, per second of a 4 Mbit/s stream.

In-process, as the upstream greenlet does it: the bundled sample (looped with
its continuity counters running on) is cut into reads of one hub window each
and put through the PacketAligner, with and without the Analyser behind it,
timestamps advancing as a live stream's would.  Prints CPU seconds per second
of stream for both and the difference, as a share of one core.

    .venv/bin/python benchmarks/analysis.py [--seconds 600] [--rate 4e6] [--window 0.010]
"""

from __future__ import annotations

import argparse
import time

from restreamer.ts.analysis import Analyser
from restreamer.ts.packets import PACKET_SIZE, PacketAligner
from restreamer.sources.loop import SAMPLE


def continuous(data: bytes, laps: int) -> bytes:
    """``laps`` copies of ``data`` whose continuity counters run on across the joins."""
    counts: dict[int, int] = {}
    for offset in range(0, len(data), PACKET_SIZE):
        if data[offset + 3] & 0x10:
            pid = (data[offset + 1] & 0x1F) << 8 | data[offset + 2]
            counts[pid] = counts.get(pid, 0) + 1
    out = bytearray(data * laps)
    for lap in range(1, laps):
        for offset in range(lap * len(data), (lap + 1) * len(data), PACKET_SIZE):
            if out[offset + 3] & 0x10:
                pid = (out[offset + 1] & 0x1F) << 8 | out[offset + 2]
                out[offset + 3] = out[offset + 3] & 0xF0 | (out[offset + 3] + lap * counts[pid]) & 0x0F
    return bytes(out)


def run(data: bytes, seconds: float, rate: float, window: float, analyse: bool) -> float:
    """CPU seconds spent on ``seconds`` of stream at ``rate`` bit/s."""
    read = max(PACKET_SIZE, int(rate / 8 * window) // PACKET_SIZE * PACKET_SIZE)
    looped = data + data[:read]  # a read that runs past the end goes on at the start
    total = int(seconds / window)
    aligner = PacketAligner()
    analyser = Analyser() if analyse else None
    if analyser is not None:
        analyser.connected(aligner, 0.0)
    feed = aligner.feed
    began = time.process_time()
    for i in range(total):
        start = i * read % len(data)
        chunk = feed(looped[start:start + read])
        if analyser is not None:
            analyser.feed(chunk, i * window)
    cost = time.process_time() - began
    if analyser is not None:
        errors = analyser.error_counts()
        assert not any(errors.values()), errors  # a clean stream: all the work, none of the error paths
    return cost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600, help="seconds of stream per run")
    parser.add_argument("--rate", type=float, default=4e6, help="bit/s")
    parser.add_argument("--window", type=float, default=0.010, help="seconds per read (a hub window)")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    with open(SAMPLE, "rb") as f:
        data = continuous(f.read(), 16)  # 16 laps join up again: seamless when looped
    off, on = [], []
    for _ in range(args.reps):  # interleaved, so drifting machine load hits both alike
        off.append(run(data, args.seconds, args.rate, args.window, False) / args.seconds)
        on.append(run(data, args.seconds, args.rate, args.window, True) / args.seconds)
    off_s, on_s = sorted(off)[len(off) // 2], sorted(on)[len(on) // 2]
    print(f"{args.rate / 1e6:g} Mbit/s, reads of {args.window * 1e3:g} ms, {args.seconds:g} s of stream, "
          f"median of {args.reps}")
    print(f"analysis off: {off_s * 100:.3f} % of a core")
    print(f"analysis on:  {on_s * 100:.3f} % of a core")
    print(f"analysis costs {(on_s - off_s) * 100:.3f} % of a core per stream")


if __name__ == "__main__":
    main()
