"""restreamer's blueprint mounted twice in one app served by restreamer's own
server: at the root, where the server answers HLS polls itself, and under
/flask, where Flask's views do.  One process, one segmenter: both mounts must
send the same bytes.

Usage: python -m tests.support.twomounts CONFIG
"""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

from restreamer import log  # noqa: E402
from restreamer.web.server import make_server  # noqa: E402
from tests.support.hosting import host_app, serve_under_gevent  # noqa: E402


def main() -> None:
    log.configure()
    app, blueprint = host_app(sys.argv[1], "", "/flask")
    serve_under_gevent("twomounts", make_server(app, "127.0.0.1:0"), blueprint)


if __name__ == "__main__":
    main()
