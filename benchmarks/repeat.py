#!/usr/bin/env python3
"""Repeat end-to-end tests N times and print how often each passed: a
timing-dependent test that is not N of N is a defect (issue 23).

    benchmarks/repeat.py -n 20 tests/test_engine.py::test_null_packets_keep_every_viewer_alive_through_a_reconnect
    benchmarks/repeat.py -n 5 tests/test_sources.py tests/test_source_rates.py

Each repetition is one pytest run of the given node ids or files (under the
shared lock when ``--lock`` names one, so other benchmarks and end-to-end runs
wait); every test's outcome is tallied, and the tests not passing every time
are listed at the end.  RESTREAMER_TEST_SEED is set per repetition
(``--seed``, then +1 each time), so a seeded test's failure can be replayed.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
_OUTCOME = re.compile(r"^(PASSED|FAILED|ERROR|SKIPPED) (\S+::\S+)", re.MULTILINE)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tests", nargs="+", help="pytest node ids or files")
    parser.add_argument("-n", "--times", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", default="repeat-failures",
                        help="folder for a failed run's whole pytest output ('' to keep none)")
    parser.add_argument("--lock", default="/tmp/e2e.lock", help="flock this file around each run ('' for none)")
    args = parser.parse_args()
    passed: collections.Counter[str] = collections.Counter()
    ran: collections.Counter[str] = collections.Counter()
    for run in range(args.times):
        command = [sys.executable, "-m", "pytest", "-rA", "-q", *args.tests]
        if args.lock:
            command = ["flock", args.lock, *command]
        env = {**os.environ, "RESTREAMER_TEST_SEED": str(args.seed + run)}
        result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
        outcomes = _OUTCOME.findall(result.stdout)
        if not outcomes:
            print(result.stdout[-2000:] + result.stderr[-2000:])
            return 2
        for outcome, test in outcomes:
            ran[test] += 1
            passed[test] += outcome == "PASSED"
        failed = [test for outcome, test in outcomes if outcome in ("FAILED", "ERROR")]
        print(f"run {run + 1}/{args.times} (seed {args.seed + run}): "
              + (f"failed {', '.join(failed)}" if failed else "all passed"), flush=True)
        if failed and args.keep:
            # A failure that a replay with its seed does not repeat is timing: its
            # output is the only account of it.
            kept = Path(args.keep) / f"run-{run + 1}-seed-{args.seed + run}.log"
            kept.parent.mkdir(parents=True, exist_ok=True)
            kept.write_text(result.stdout + result.stderr)
            print(f"  output kept in {kept}", flush=True)
    print()
    for test in sorted(ran):
        print(f"{passed[test]:3d} of {ran[test]:3d}  {test}")
    flaky = [t for t in ran if passed[t] != ran[t]]
    print(f"\n{len(ran) - len(flaky)} of {len(ran)} tests passed every time"
          + (f"; not {args.times} of {args.times}: {', '.join(sorted(flaky))}" if flaky else ""))
    return 1 if flaky else 0


if __name__ == "__main__":
    sys.exit(main())
