"""A gunicorn worker with restreamer's own write path: ``gunicorn -k restreamer.web.worker.Worker``.

``gunicorn -k gevent`` works, but its HTTP writer frames every write as a
chunk (a copy per viewer per write) and uses gevent's sendall, which asks the
kernel for the send buffer size on every call.  This worker serves through
pywsgi with the same handler and server as restreamer's own CLI, so viewers
cost the same under gunicorn as there, and get the same protection: a
deadline (``droptimeout``) for each of a request's head, body and answer,
strict request parsing (a request body is read and dropped before the app
runs: restreamer's resources take none),
a raised file descriptor limit and a pause in accepting when it runs out.
On SIGUSR1 (which gunicorn's master passes on to its workers) it also
reopens restreamer's log file, for logrotate.
"""

from __future__ import annotations

import gevent
from gunicorn.workers.ggevent import GeventPyWSGIWorker, PyWSGIHandler

from .. import fdlimit, log
from .server import StreamingHandler, StreamingServer


class _Handler(StreamingHandler, PyWSGIHandler):
    """restreamer's write path, gunicorn's access log and environ."""


class Worker(GeventPyWSGIWorker):
    server_class = StreamingServer
    wsgi_handler = _Handler

    def handle_usr1(self, sig, frame) -> None:
        super().handle_usr1(sig, frame)  # gunicorn's own log files
        # In a greenlet, not in the signal handler: the log's lock may be held
        # by the greenlet the signal interrupted.
        gevent.spawn(log.reopen)

    def run(self) -> None:
        relay = getattr(self.wsgi, "extensions", {}).get("restreamer")
        fdlimit.raise_limit(log.get_logger("restreamer"),
                            relay.config.maxconnections if relay is not None else 0,
                            len(relay.streams) if relay is not None else 0)
        super().run()
