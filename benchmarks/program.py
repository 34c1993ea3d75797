#!/usr/bin/env python3
"""Cost of ``program: N``: ProgramFilter.feed on a 2-program stream (made by
ffmpeg's -program options), in 64 KiB chunks as an upstream read hands them
over, against PacketAligner.feed on the same chunks (what every stream does
per chunk already) as the reference.

    benchmarks/program.py            # 5 runs, prints the medians

Prints Mbit/s of input each reaches on one core, and their ratio.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from restreamer.ts.packets import PacketAligner  # noqa: E402
from restreamer.ts.program import ProgramFilter  # noqa: E402

CHUNK = 64 * 1024 // 188 * 188
RUNS = 5


def two_programs() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "two.ts"
        subprocess.run(
            ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=640x360:rate=25",
             "-f", "lavfi", "-i", "sine", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
             "-f", "lavfi", "-i", "sine=frequency=880", "-t", "10",
             "-map", "0:v", "-map", "1:a", "-map", "2:v", "-map", "3:a", "-c:v", "libx264", "-preset",
             "ultrafast", "-b:v", "4M", "-c:a", "mp2", "-program", "program_num=1:st=0:st=1",
             "-program", "program_num=2:st=2:st=3", "-f", "mpegts", str(path)], check=True)
        return path.read_bytes()


def rate(work, chunks: list[bytes]) -> float:
    """Mbit/s of input ``work`` gets through on this core."""
    began = time.process_time()
    for chunk in chunks:
        work(chunk)
    return sum(map(len, chunks)) * 8 / (time.process_time() - began) / 1e6


def main() -> None:
    data = two_programs() * 4
    chunks = [data[i:i + CHUNK] for i in range(0, len(data) - CHUNK, CHUNK)]
    filtered, aligned = [], []
    for _ in range(RUNS):
        filtered.append(rate(ProgramFilter(2).feed, chunks))
        aligned.append(rate(PacketAligner().feed, chunks))
    program, reference = statistics.median(filtered), statistics.median(aligned)
    print(f"input {sum(map(len, chunks)) / 1e6:.1f} MB in {len(chunks)} chunks, median of {RUNS} runs")
    print(f"ProgramFilter(2).feed  {program:10.0f} Mbit/s")
    print(f"PacketAligner.feed     {reference:10.0f} Mbit/s (reference)")
    print(f"ratio                  {program / reference:10.2f}")


if __name__ == "__main__":
    main()
