"""WSGI entry point: ``gunicorn -k gevent wsgi:app``.

The config file is ``$RESTREAMER_CONFIG`` (default ``restreamer.json``).
Upstreams start in the worker: at once when this module is imported in a
gevent worker (gunicorn's default, no ``--preload``), otherwise on the
worker's first request, so a pre-forking master never runs them.
"""

import os

from gevent import monkey

import restreamer
from restreamer import log

log.configure()
app = restreamer.create_app(os.environ.get("RESTREAMER_CONFIG", "restreamer.json"))

if monkey.is_module_patched("socket"):
    app.extensions["restreamer"].start()
