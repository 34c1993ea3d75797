"""A host application that embeds restreamer's blueprint under /tv, served by
gevent's pywsgi: how the test suite checks the blueprint in someone else's app.

Usage: python -m tests.support.embed CONFIG
"""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

from gevent.pywsgi import WSGIServer  # noqa: E402

from restreamer import log  # noqa: E402
from tests.support.hosting import host_app, serve_under_gevent  # noqa: E402


def main() -> None:
    log.configure()
    app, blueprint = host_app(sys.argv[1], "/tv")
    serve_under_gevent("embed", WSGIServer(("127.0.0.1", 0), app, log=None), blueprint)


if __name__ == "__main__":
    main()
