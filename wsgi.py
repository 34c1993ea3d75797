"""WSGI entry point: ``gunicorn -k gevent wsgi:app``.

The config file is ``$RESTREAMER_CONFIG`` (default ``restreamer.json``); its
``log`` key is honoured as under the CLI.  Upstreams start in the worker: at
once when this module is imported in a gevent worker (gunicorn's default, no
``--preload``), otherwise on the worker's first request, so a pre-forking
master never runs them.
"""

import os

from gevent import monkey

import restreamer
from restreamer import log
from restreamer.config import load

config = load(os.environ.get("RESTREAMER_CONFIG", "restreamer.json"))
log.configure(config.log)
app = restreamer.create_app(config)

if monkey.is_module_patched("socket"):
    app.extensions["restreamer"].start()
