"""Play an MPEG-TS file to stdout in real time, looping: a stand-in for an
encoder that a ``fork://`` upstream runs.

Usage: python tsplay.py FILE RATE [helper]    (RATE in bit/s)

It announces itself on stderr ("tsplay started pid=N") so tests can find the
process, and writes 1316-byte pieces paced by the clock, so its output is the
file repeated seamlessly.  With "helper" it first starts a long sleep in its
process group that does not hold the stream's pipe ("tsplay helper pid=M"),
as wrappers around encoders leave behind.  Self-contained: it runs as a plain
script.
"""

import os
import subprocess
import sys
import time

PIECE = 7 * 188


def main() -> None:
    path, rate = sys.argv[1], float(sys.argv[2])
    if sys.argv[3:] == ["helper"]:
        helper = subprocess.Popen(["sleep", "60"], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(f"tsplay helper pid={helper.pid}", file=sys.stderr, flush=True)
    with open(path, "rb") as f:
        data = f.read()
    looped = data * (PIECE // len(data) + 2)
    out = sys.stdout.buffer
    print(f"tsplay started pid={os.getpid()}", file=sys.stderr, flush=True)
    start, total, pos = time.monotonic(), 0, 0
    while True:
        delay = start + total * 8 / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        piece = looped[pos:pos + PIECE]
        out.write(piece)
        out.flush()
        total += len(piece)
        pos = (pos + PIECE) % len(data)


if __name__ == "__main__":
    try:
        main()
    except (BrokenPipeError, KeyboardInterrupt):
        pass
