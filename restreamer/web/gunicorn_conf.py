"""gunicorn settings for restreamer:
``gunicorn -c python:restreamer.web.gunicorn_conf restreamer.wsgi:app``
(from a checkout: ``gunicorn -c config/gunicorn.conf.py wsgi:app``).

Environment: ``RESTREAMER_CONFIG`` (the config file, default
``restreamer.json``), ``RESTREAMER_BIND`` (instead of the config's
``listen``; ``-b`` on the command line wins over both),
``RESTREAMER_WORKERS`` (default 1) and ``RESTREAMER_RUNTIME_DIR`` (see below).

Viewers hold their connection for hours, so workers must be gevent workers
with room for many connections, and no request timeout may kill them.  The
worker gives a client ``droptimeout`` (restreamer.json) to send its whole
request head, as much to send its body, and as much to take an answer that
is not a stream, as the CLI does: gunicorn itself has no such deadlines for
gevent workers, and silent or slow clients would otherwise fill
``worker_connections``.
"""

import os
import socket
import sys


def _config_path() -> str:
    return os.environ.get("RESTREAMER_CONFIG", "restreamer.json")


def _listen_bind() -> list[str]:
    """The config's ``listen`` as gunicorn binds it (as the CLI would listen)."""
    from restreamer.config import ConfigError, load, parse_listen

    try:
        host, port = parse_listen(load(_config_path()).listen)
    except (ConfigError, OSError, ValueError):
        return []  # gunicorn's default; the worker reports the config's problem and stops
    if not host:
        # Every interface, as Go's ":port": the IPv6 wildcard takes IPv4 too,
        # where the host has IPv6 at all.
        try:
            socket.socket(socket.AF_INET6, socket.SOCK_STREAM).close()
            host = "[::]"
        except OSError:
            host = "0.0.0.0"
    elif ":" in host:
        host = f"[{host}]"
    return [f"{host}:{port}"]


_chosen = os.environ["RESTREAMER_BIND"].split(",") if os.environ.get("RESTREAMER_BIND") else _listen_bind()
if _chosen:
    bind = _chosen
# gunicorn's gevent worker with restreamer's write path.  ``-k gevent`` works
# too, but gunicorn frames every write of a stream as an HTTP chunk, a copy
# per viewer per write: 13-43 % more CPU with two workers at 100-300 viewers
# (README, benchmarks of 2026-11-30).
worker_class = "restreamer.web.worker.Worker"
# Each worker pulls its own upstream connections; one per core is plenty.
workers = int(os.environ.get("RESTREAMER_WORKERS", "1"))
worker_connections = 10000
# Upstreams must start in the workers, after the fork: restreamer.wsgi starts them
# when imported in a (monkeypatched) gevent worker.
preload_app = False
# gevent workers notify the arbiter from their own loop, so a long-lived
# stream response does not count as a stuck worker.
timeout = 30
graceful_timeout = 5
keepalive = 5
accesslog = None  # restreamer logs viewers and requests itself, as JSON

# gunicorn's own messages (start, workers, errors) as restreamer's JSON
# lines on stdout (naming their process), secrets in URLs redacted, like
# everything restreamer logs.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "restreamer.log.json_formatter", "pid": True}},
    "handlers": {"json": {"class": "logging.StreamHandler", "formatter": "json",
                          "stream": "ext://sys.stdout"}},
    "root": {"level": "INFO", "handlers": ["json"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["json"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["json"], "propagate": False},
    },
}


# --- Workers sharing one server (README "Scaling") ----------------------------
# The workers meet in a runtime directory (0700, the service user's): the
# worker holding a stream's lock there pulls its upstream and serves it to
# the others over a unix socket; a viewer census holds maxconnections and
# fullconnections for the whole server; prometheus_client's multiprocess
# files sum every worker's metrics.  The directory is $RESTREAMER_RUNTIME_DIR,
# else the config's runtimedir, else systemd's $RUNTIME_DIRECTORY, else a new
# one with a random name in $XDG_RUNTIME_DIR or the temp dir.

#: gunicorn's exit status for an app that cannot load, as the workers use it.
APP_LOAD_ERROR = 4


def on_starting(server):
    # Before the first fork, and before anything imports prometheus_client:
    # it picks its multiprocess value store from the environment at import.
    from restreamer import log
    from restreamer.config import ConfigError, load
    from restreamer.core import runtime
    from restreamer.sources.base import resolve_path

    path = _config_path()
    try:
        config = load(path)
        configured = resolve_path(config.base_dir, config.runtimedir) if config.runtimedir else ""
    except (ConfigError, OSError):
        configured = ""  # the workers report the config's problem and stop the server
    try:
        held = runtime.prepare_directory(runtime.named_directory(configured))
    except runtime.RuntimeDirectoryError as e:
        log.configure(pid=True, fmt="json")
        log.get_logger("restreamer").error("cannot use runtime directory", path=e.path, reason=e.reason)
        sys.exit(APP_LOAD_ERROR)
    server.restreamer_runtime = held
    os.environ[runtime.ENV] = str(held.path)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(held.path / runtime.METRICS_SUBDIR)


def on_exit(server):
    # After the last worker: the directory goes if this run made it.
    held = getattr(server, "restreamer_runtime", None)
    if held is not None:
        held.release()


def child_exit(server, worker):
    # A dead worker's viewers leave the gauges; its counters stay in the totals.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
