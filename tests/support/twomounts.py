"""restreamer's blueprint mounted twice in one app served by restreamer's own
server: at the root, where the server answers HLS polls itself, and under
/flask, where Flask's views do.  One process, one segmenter: both mounts must
send the same bytes.

Usage: python -m tests.support.twomounts CONFIG

Logs "listening" with the port, so RestreamerProcess can run it like the CLI.
"""

from gevent import monkey

monkey.patch_all()

import signal  # noqa: E402
import sys  # noqa: E402

import gevent  # noqa: E402
from flask import Flask  # noqa: E402

import restreamer  # noqa: E402
from restreamer import log  # noqa: E402
from restreamer.web.server import make_server  # noqa: E402


def main() -> None:
    log.configure()
    app = Flask("host")
    blueprint = restreamer.create_blueprint(sys.argv[1])
    app.register_blueprint(blueprint)
    app.register_blueprint(blueprint, url_prefix="/flask", name="flask")
    server = make_server(app, "127.0.0.1:0")
    server.start()
    log.get_logger("twomounts").info("listening", port=server.address[1])
    blueprint.service.start()
    gevent.signal_handler(signal.SIGTERM, server.stop)
    server.serve_forever()
    blueprint.service.stop()


if __name__ == "__main__":
    main()
