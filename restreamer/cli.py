"""The ``restreamer`` command: check or serve a configuration with gevent.

Monkeypatching comes first, before anything imports socket, ssl or requests.
"""

from importlib import metadata

from gevent import monkey

# gevent looks up its plugins before and after patching each module, and
# every look-up reads the metadata of every installed package: most of the
# patching's time.  They are read once for all of them (gevent would import
# importlib.metadata here anyway, before it patches anything).
_entry_points = metadata.entry_points
_installed = _entry_points()
metadata.entry_points = lambda **selection: _installed.select(**selection)
try:
    monkey.patch_all()
finally:
    metadata.entry_points = _entry_points

import argparse  # noqa: E402
import gc  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
from dataclasses import replace  # noqa: E402
from typing import Callable  # noqa: E402

import gevent  # noqa: E402
from gevent.event import Event  # noqa: E402
from gevent.lock import Semaphore  # noqa: E402

from . import fdlimit, log  # noqa: E402
from .version import __version__  # noqa: E402
from .config import ConfigError, host_problems, load, parse_listen  # noqa: E402
from .redact import redact_text  # noqa: E402
from .sources.base import describe  # noqa: E402
from .core.relay import Relay  # noqa: E402
from .core.reload import reload  # noqa: E402
from .assembly import Service  # noqa: E402
from .web.app import create_app  # noqa: E402
from .web.server import make_server  # noqa: E402

_log = log.get_logger("restreamer")

#: Exit status for a configuration that cannot be used, as argparse uses for bad usage.
EXIT_CONFIG = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="restreamer", description="HTTP relay for live MPEG transport streams.")
    parser.add_argument("config", nargs="?", default="restreamer.json",
                        help="configuration file, JSON or YAML (default: %(default)s)")
    parser.add_argument("--check", action="store_true",
                        help="validate the configuration and exit without serving")
    parser.add_argument("--listen", metavar="HOST:PORT",
                        help="listen here instead of at the config's listen (:PORT: every interface)")
    parser.add_argument("--log-format", choices=log.FORMATS,
                        help="json lines, or lines for people (default: console on a terminal, "
                             "else json)")
    parser.add_argument("--log-level", choices=log.LEVELS, default="info",
                        help="the lowest level logged (default: %(default)s)")
    parser.add_argument("--version", action="version", version=f"restreamer {__version__}")
    args = parser.parse_args(argv)
    overrides = {}
    if args.listen is not None:
        try:
            parse_listen(args.listen)
        except ValueError as e:
            parser.error(f"--listen: {e}")
        overrides["listen"] = args.listen
    try:
        config = replace(load(args.config), **overrides)
        if args.check:
            for warning in config.warnings:
                print(f"restreamer: warning: {redact_text(warning)}", file=sys.stderr)
            for note in config.notes:
                print(f"restreamer: note: {redact_text(note)}", file=sys.stderr)
            Relay(config)  # also reads the preamble files
            lacking = host_problems(config)
            for problem in lacking:
                print(f"restreamer: {redact_text(str(problem))}", file=sys.stderr)
            if lacking:
                return EXIT_CONFIG
            print(f"{args.config}: ok ({counted(len(config.streams), 'stream')}, "
                  f"{counted(len(config.resources), 'resource')})")
            return 0
        log.configure(config.log, fmt=args.log_format, level=args.log_level)
        service = Service(Relay(config))
    except ConfigError as e:
        # The message may quote a URL with its password (an invalid one, say).
        # Every problem of the file, one line each, and the warnings that may explain them.
        for line in str(e).splitlines():
            print(f"restreamer: {redact_text(line)}", file=sys.stderr)
        for warning in getattr(e, "warnings", ()):
            print(f"restreamer: warning: {redact_text(warning)}", file=sys.stderr)
        return EXIT_CONFIG
    except OSError as e:
        print(f"restreamer: {args.config}: log file {config.log}: {describe(e)}", file=sys.stderr)
        return EXIT_CONFIG
    return serve(service, overrides=overrides)


def serve(service: Service, app: Callable | None = None, overrides: dict | None = None) -> int:
    """Serve ``app`` (by default the service's own) until SIGINT or SIGTERM, then
    close viewers and upstreams and return 0.

    SIGHUP reopens the log file and reloads the config file; SIGUSR1 only
    reopens the log file (logrotate may send either).
    """
    relay = service.relay
    try:
        server = make_server(app or create_app(service), relay.config.listen)
    except OSError as e:
        _log.error("cannot listen", listen=relay.config.listen, reason=describe(e))
        return 1
    stopping = Event()
    gevent.signal_handler(signal.SIGTERM, stopping.set)
    gevent.signal_handler(signal.SIGINT, stopping.set)
    gevent.signal_handler(signal.SIGHUP, _reload, relay, Semaphore(), overrides or {})
    gevent.signal_handler(signal.SIGUSR1, log.reopen)
    # What exists now (the imported libraries, the config) lives as long as
    # the process: take it out of the collector's full passes, which otherwise
    # pause every stream for tens of milliseconds at a thousand viewers.
    # Before any greenlet starts, so the greenlet gauge still sees them all.
    gc.freeze()
    server.start()
    host, port = server.address[:2]
    _log.info("listening", host=host, port=port, listen=relay.config.listen,
              version=__version__, streams=len(relay.streams))
    fdlimit.raise_limit(_log, relay.config.maxconnections, len(relay.streams))
    service.start()
    stopping.wait()
    _log.info("stopping", viewers=relay.viewer_count)
    server.close()  # no new connections
    service.stop()  # viewers' responses end, upstreams close
    server.stop(timeout=3)
    _log.info("stopped")
    return 0


def _reload(relay: Relay, turn: Semaphore, overrides: dict) -> None:
    """SIGHUP: a new log file, then the config file read again (one reload at a time)."""
    with turn:
        log.reopen()
        before = relay.config
        if reload(relay, before.source, overrides) is None:
            return
        if relay.config.log != before.log:
            try:
                log.configure(relay.config.log)
            except OSError as e:
                _log.error("cannot open log file", path=relay.config.log, reason=describe(e))


def run(entry: Callable[[], int] = main) -> None:
    """Console-script entry point: ``entry`` (the command), and any exception
    that escapes it logged as one JSON line (never a bare traceback), with
    exit status 1."""
    try:
        status = entry()
    except Exception:
        if not log.configured():
            log.configure()
        log.get_logger("restreamer").critical("crashed", exc_info=True)
        status = 1
    sys.exit(status)


def counted(number: int, noun: str) -> str:
    """``1 stream``, ``2 streams``: --check's summary reads as a sentence."""
    return f"{number} {noun}{'' if number == 1 else 's'}"
