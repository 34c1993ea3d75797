"""A host application that embeds restreamer's blueprint under /tv, served by
gevent's pywsgi: how the test suite checks the blueprint in someone else's app.

Usage: python -m tests.support.embed CONFIG

Logs "listening" with the port, in restreamer's JSON log format, so
RestreamerProcess can run it like the CLI.
"""

from gevent import monkey

monkey.patch_all()

import signal  # noqa: E402
import sys  # noqa: E402

import gevent  # noqa: E402
from flask import Flask  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402

import restreamer  # noqa: E402
from restreamer import log  # noqa: E402


def main() -> None:
    log.configure()
    app = Flask("host")

    @app.route("/")
    def index():
        return "host app index\n"

    blueprint = restreamer.create_blueprint(sys.argv[1])
    app.register_blueprint(blueprint, url_prefix="/tv")
    server = WSGIServer(("127.0.0.1", 0), app, log=None)
    server.start()
    log.get_logger("embed").info("listening", port=server.address[1])
    blueprint.service.start()
    gevent.signal_handler(signal.SIGTERM, server.stop)
    server.serve_forever()
    blueprint.service.stop()


if __name__ == "__main__":
    main()
