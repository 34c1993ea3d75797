"""gunicorn settings for restreamer: ``gunicorn -c config/gunicorn.conf.py wsgi:app``.

Viewers hold their connection for hours, so workers must be gevent workers
with room for many connections, and no request timeout may kill them.
"""

import os

bind = os.environ.get("RESTREAMER_BIND", "0.0.0.0:8000")
# gunicorn's gevent worker with restreamer's write path.  ``-k gevent`` works
# too, but gunicorn frames every write of a stream as an HTTP chunk, a copy
# per viewer per write: 13-43 % more CPU with two workers at 100-300 viewers
# (README, benchmarks of 2026-11-30).
worker_class = "restreamer.web.worker.Worker"
# Each worker pulls its own upstream connections; one per core is plenty.
workers = int(os.environ.get("RESTREAMER_WORKERS", "1"))
worker_connections = 10000
# Upstreams must start in the workers, after the fork: wsgi.py starts them
# when imported in a (monkeypatched) gevent worker.
preload_app = False
# gevent workers notify the arbiter from their own loop, so a long-lived
# stream response does not count as a stuck worker.
timeout = 30
graceful_timeout = 5
keepalive = 5
accesslog = None  # restreamer logs viewers and requests itself, as JSON

