"""What the statistics, Prometheus and dashboard APIs cost the event loop with many streams.

In-process, through the Flask app (no sockets): N streams (not started), one
scrape timed alone, then P greenlets polling the API (each asking again 1 ms
after its answer) for D
seconds while a ticker greenlet records the longest time the loop was held
(the gap a viewer would see) and how many answers were served.  A run with
no pollers first shows what the machine itself adds to that gap.  The
dashboard is asked what a newly opened tab asks (``?json&since=0``: every
stream with its full history), after the overview has sampled the streams
for its whole history, while it goes on sampling once a second.

    .venv/bin/python benchmarks/apicost.py -n 3000 --pollers 5 -d 3
    .venv/bin/python benchmarks/apicost.py -n 2500 --pollers 3 -d 5 --only dashboard
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import gc  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402

from restreamer import log  # noqa: E402
from restreamer.ops.overview import HISTORY  # noqa: E402
from restreamer.web.app import create_app  # noqa: E402

TICK = 0.001
PATHS = {"prometheus": "/metrics", "statistics": "/statistics", "dashboard": "/?json&since=0"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--streams", type=int, default=3000)
    parser.add_argument("--pollers", type=int, default=5)
    parser.add_argument("-d", "--duration", type=float, default=3.0)
    parser.add_argument("--only", choices=sorted(PATHS), action="append",
                        help="only this API (repeatable; default: all)")
    args = parser.parse_args()
    config = {"resources": [
        {"type": "stream", "serve": f"/s{i}.ts", "remote": f"http://127.0.0.1:1/{i}.ts"}
        for i in range(args.streams)] + [
        {"type": "api", "api": "prometheus", "serve": "/metrics"},
        {"type": "api", "api": "statistics", "serve": "/statistics"},
        {"type": "api", "api": "dashboard", "serve": "/"}]}
    log.configure(os.devnull)
    app = create_app(config)
    relay = app.extensions["restreamer"]
    # The streams stay idle: a request would start every upstream otherwise.
    relay.started = True
    client = app.test_client()
    gc.freeze()  # as the CLI does once set up (restreamer/cli.py)
    longest, _ = _poll(app, "/metrics", 0, args.duration)
    print(f"no pollers for {args.duration:g} s (the machine's own noise): "
          f"longest loop gap {longest * 1000:.1f} ms")
    if not args.only or "dashboard" in args.only:
        for _ in range(HISTORY):  # a full history, as after five minutes
            relay.overview.sample()
        relay.overview.start()
    for path in [PATHS[name] for name in (args.only or sorted(PATHS))]:
        began = time.perf_counter()
        assert client.get(path).status_code == 200
        alone = (time.perf_counter() - began) * 1000
        gevent.sleep(1.1)  # past any reuse of that answer
        longest, answers = _poll(app, path, args.pollers, args.duration)
        print(f"{path}: one answer {alone:.1f} ms; {args.pollers} pollers for {args.duration:g} s: "
              f"{answers} answers, longest loop gap {longest * 1000:.1f} ms")


def _poll(app, path: str, pollers: int, duration: float) -> tuple[float, int]:
    stop = time.monotonic() + duration
    answers = 0

    def poller() -> None:
        nonlocal answers
        client = app.test_client()
        while time.monotonic() < stop:
            client.get(path)
            answers += 1
            # Through the loop, as a request over a socket comes: sleep(0)
            # would hand over to the other pollers without running timers.
            gevent.sleep(TICK)

    def ticker() -> float:
        longest, last = 0.0, time.monotonic()
        while last < stop:
            gevent.sleep(TICK)
            now = time.monotonic()
            longest = max(longest, now - last - TICK)
            last = now
        return longest

    tick = gevent.spawn(ticker)
    gevent.joinall([gevent.spawn(poller) for _ in range(pollers)] + [tick])
    return tick.value, answers


if __name__ == "__main__":
    main()
