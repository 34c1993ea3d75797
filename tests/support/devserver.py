"""A host application that mounts restreamer's blueprint under /tv and runs
under Flask's development server (werkzeug, a thread per request, no gevent
monkeypatching): a server whose threads never run gevent's loop.

Usage: python -m tests.support.devserver CONFIG

Logs "listening" with the port in restreamer's JSON log format, so
RestreamerProcess can run it like the CLI.
"""

import signal
import sys
import threading

from flask import Flask
from werkzeug.serving import make_server

import restreamer
from restreamer import log


def main() -> None:
    log.configure()
    app = Flask("host")

    @app.route("/")
    def index():
        return "host app index\n"

    app.register_blueprint(restreamer.create_blueprint(sys.argv[1]), url_prefix="/tv")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    log.get_logger("devserver").info("listening", port=server.server_port)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    server.serve_forever()


if __name__ == "__main__":
    main()
