"""WSGI entry point: ``gunicorn -k gevent restreamer.wsgi:app`` (or, with
the shipped settings, ``gunicorn -c python:restreamer.web.gunicorn_conf
restreamer.wsgi:app``).

The config file is ``$RESTREAMER_CONFIG`` (default ``restreamer.json``); its
``log`` key is honoured as under the CLI.  Upstreams start in the worker: at
once when this module is imported in a gevent worker (gunicorn's default, no
``--preload``), otherwise on the worker's first request, so a pre-forking
master never runs them.
"""

import os
import sys

from gevent import monkey

import restreamer
from restreamer import log
from restreamer.config import ConfigError, load
from restreamer.sources.base import describe

#: gunicorn's exit status for an app that cannot load: its master stops
#: instead of starting the worker again and again.
APP_LOAD_ERROR = 4

try:
    config = load(os.environ.get("RESTREAMER_CONFIG", "restreamer.json"))
except ConfigError as e:
    log.configure(pid=True, fmt="json")
    log.get_logger("restreamer").error("config error", detail=str(e))
    sys.exit(APP_LOAD_ERROR)
log.configure(config.log, pid=True, fmt="json")  # several workers may write to one stdout
try:
    app = restreamer.create_app(config)
except OSError as e:  # the runtime directory shared with the other workers (a full disk, say)
    log.get_logger("restreamer").error("cannot start", path=e.filename, reason=describe(e))
    sys.exit(APP_LOAD_ERROR)

if monkey.is_module_patched("socket"):
    app.extensions["restreamer"].start()
