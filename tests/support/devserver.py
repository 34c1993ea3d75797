"""A host application that mounts restreamer's blueprint under /tv and runs
under Flask's development server (werkzeug, a thread per request, no gevent
monkeypatching): a server whose threads never run gevent's loop.

Usage: python -m tests.support.devserver CONFIG
"""

import signal
import sys
import threading

from werkzeug.serving import make_server

from restreamer import log
from tests.support.hosting import host_app, listening


def main() -> None:
    log.configure()
    app, _ = host_app(sys.argv[1], "/tv")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    listening("devserver", server.server_port)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    server.serve_forever()


if __name__ == "__main__":
    main()
