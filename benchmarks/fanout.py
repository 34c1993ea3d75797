#!/usr/bin/env python3
"""Fan-out benchmark: restreamer (CLI and gunicorn) against the C floor, side by side.

Runs the shared harness (``../shared/bench/fanout.py``: a paced 4 Mbit/s TS
source, an epoll viewer loader in C, CPU and memory sampled from /proc over a
fixed window) for every viewer count and server, interleaved (for each rep,
for each N, every server in turn) so that the machine's drift hits all of them
alike, and prints a table of medians with each server's CPU per delivered GB
as a ratio to the C reference proxy's in the same run.

    benchmarks/fanout.py                        # N = 10 100 300 1000, 3 reps, 30 s windows
    benchmarks/fanout.py -n 100 300 --reps 5 --servers cli refproxy
    benchmarks/fanout.py --summarize benchmarks/results/2026-11-24T0300.jsonl
    benchmarks/fanout.py -n 1000 --servers cli cubemap --checkout main=../main   # against another checkout

Raw results (one JSON object per run) go to benchmarks/results/<start time>.jsonl.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = Path(os.environ.get("RESTREAMER_BENCH", REPO.parent / "shared" / "bench"))
PYTHON = sys.executable

#: name -> server command for the harness ({config}, {port}, {source_url} are filled in).
SERVERS = {
    "cli": f"{PYTHON} -m restreamer {{config}}",
    "gunicorn": (f"sh -c 'cd {shlex.quote(str(REPO))} && RESTREAMER_CONFIG={{config}} exec {PYTHON} "
                 f"-m gunicorn -k gevent -w 1 -b 127.0.0.1:{{port}} --log-level warning wsgi:app'"),
    "gunicorn-w2": (f"sh -c 'cd {shlex.quote(str(REPO))} && RESTREAMER_CONFIG={{config}} exec {PYTHON} "
                    f"-m gunicorn -k gevent -w 2 -b 127.0.0.1:{{port}} --log-level warning wsgi:app'"),
    "worker-w2": (f"sh -c 'cd {shlex.quote(str(REPO))} && RESTREAMER_CONFIG={{config}} exec {PYTHON} "
                  f"-m gunicorn -k restreamer.web.worker.Worker -w 2 -b 127.0.0.1:{{port}} "
                  f"--log-level warning wsgi:app'"),
    # The deployment config: the workers share one upstream, hub and counts.
    "shared-w2": (f"sh -c 'cd {shlex.quote(str(REPO))} && RESTREAMER_CONFIG={{config}} "
                  f"RESTREAMER_WORKERS=2 RESTREAMER_BIND=127.0.0.1:{{port}} exec {PYTHON} "
                  f"-m gunicorn -c config/gunicorn.conf.py --log-level warning wsgi:app'"),
    "refproxy": f"{BENCH}/build/refproxy {{port}} {{source_url}}",
    # Debian's C++ reflector, with its TCP_CORK swapped for TCP_NODELAY so that
    # its latency compares with the others' (see the harness's RESULTS.md).
    "cubemap": f"env CUBEMAP_NOCORK=nodelay {BENCH}/servers/cubemap.sh {{port}} {{source_url}} {{config}}",
}
NO_HEALTH = {"refproxy", "cubemap"}

COLUMNS = [
    ("server", "server", "{}"),
    ("N", "viewers", "{}"),
    ("runs", "runs", "{}"),
    ("cpu (cores)", "cpu_fraction_of_one_core", "{:.3f}"),
    ("CPU ms/GB", "cpu_ms_per_GB_delivered", "{:.0f}"),
    ("x floor", "ratio", "{:.2f}"),
    ("x Cubemap", "ratio_cubemap", "{:.2f}"),
    ("RSS MB", "rss_MB", "{:.1f}"),
    ("keeping up", "keeping_up", "{:.0f}"),
    ("min viewer %", "min_viewer_pct", "{:.1f}"),
    ("lat p50 ms", "latency_p50_ms", "{:.1f}"),
    ("lat p99 ms", "latency_p99_ms", "{:.1f}"),
    ("join med ms", "join_median_ms", "{:.0f}"),
    ("join max ms", "join_max_ms", "{:.0f}"),
    ("CC err", "cc_errors", "{:.0f}"),
    ("loader cpu", "loader_cpu", "{:.2f}"),
]


def checkout_server(spec: str) -> tuple[str, str]:
    """``NAME=DIR``: the CLI run from the checkout in DIR (``python -m`` imports from
    the working directory first), so two versions are measured in the same run."""
    name, _, directory = spec.partition("=")
    if not name or not directory or name in SERVERS:
        raise argparse.ArgumentTypeError(f"--checkout {spec!r}: expected NAME=DIR with a new NAME")
    path = shlex.quote(str(Path(directory).resolve()))
    return name, f"sh -c 'cd {path} && exec {PYTHON} -m restreamer {{config}}'"


def run(args: argparse.Namespace) -> Path:
    SERVERS.update(args.checkout)
    subprocess.run(["make", "-s", "-C", str(BENCH)], check=True)
    # Absolute: the harness runs in its own directory.
    out = Path(args.out or REPO / "benchmarks" / "results" /
               f"{datetime.datetime.now():%Y-%m-%dT%H%M}.jsonl").resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    for rep in range(args.reps):
        for n in args.viewers:
            for name in args.servers:
                cmd = [PYTHON, str(BENCH / "fanout.py"), "--server-cmd", SERVERS[name], "--name", name,
                       "-n", str(n), "-d", str(args.duration), "-w", str(args.warmup), "--out", str(out),
                       *shlex.split(args.extra)]
                if name in NO_HEALTH:
                    cmd.append("--no-health")
                print(f"[bench] rep {rep + 1}/{args.reps} N={n} {name}", file=sys.stderr, flush=True)
                result = subprocess.run(cmd, cwd=BENCH, stdout=subprocess.PIPE, text=True)
                if result.returncode != 0:
                    print(f"[bench] {name} N={n} failed (rc {result.returncode})", file=sys.stderr)
    return out


def summarize(path: Path) -> str:
    """Median of every column per (server, N), and CPU/GB over refproxy's and Cubemap's
    medians at that N."""
    runs: dict[tuple[str, int], list[dict]] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            runs.setdefault((row["server"], row["viewers"]), []).append(row)
    medians = {key: _medians(rows) for key, rows in runs.items()}
    for (server, n), row in medians.items():
        for field, reference in (("ratio", "refproxy"), ("ratio_cubemap", "cubemap")):
            base = medians.get((reference, n), {}).get("cpu_ms_per_GB_delivered")
            row[field] = row["cpu_ms_per_GB_delivered"] / base if base else float("nan")
    lines = ["| " + " | ".join(title for title, _, _ in COLUMNS) + " |",
             "|" + "---|" * len(COLUMNS)]
    for key in sorted(medians, key=lambda k: (k[1], k[0])):
        row = medians[key]
        lines.append("| " + " | ".join(_cell(row.get(field), fmt) for _, field, fmt in COLUMNS) + " |")
    return "\n".join(lines)


def _medians(rows: list[dict]) -> dict:
    result = {"server": rows[0]["server"], "viewers": rows[0]["viewers"], "runs": len(rows)}
    for _, field, _ in COLUMNS:
        values = [r[field] for r in rows if isinstance(r.get(field), (int, float))]
        if field not in result and values:
            result[field] = statistics.median(values)
    return result


def _cell(value, fmt: str) -> str:
    if value is None:
        return "-"
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--viewers", type=int, nargs="+", default=[10, 100, 300, 1000])
    parser.add_argument("--servers", nargs="+", default=["cli", "gunicorn-w2", "refproxy"],
                        help=f"any of {', '.join(sorted(SERVERS))} and the --checkout names")
    parser.add_argument("--checkout", type=checkout_server, action="append", default=[], metavar="NAME=DIR",
                        help="also measure the CLI of the checkout in DIR, as server NAME")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("-d", "--duration", type=int, default=30, help="measurement window, s")
    parser.add_argument("-w", "--warmup", type=int, default=5)
    parser.add_argument("--extra", default="", help="extra args for the harness's fanout.py")
    parser.add_argument("--out", help="JSONL file to append results to")
    parser.add_argument("--summarize", type=Path, help="only print the table of an earlier run")
    args = parser.parse_args()
    unknown = set(args.servers) - set(SERVERS) - {name for name, _ in args.checkout}
    if unknown:
        parser.error(f"unknown servers: {', '.join(sorted(unknown))}")
    path = args.summarize or run(args)
    print(summarize(path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
