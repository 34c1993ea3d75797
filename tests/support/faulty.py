"""restreamer's CLI with deliberate faults injected, to show a crash stays
where it happens.

Usage: python -m tests.support.faulty CONFIG

- A stream whose remote's host is ``crash.invalid`` gets a connection whose
  ``read()`` raises RuntimeError: a bug inside one stream's source.  It is
  handed to the relay as its opener.
- A viewer whose request has ``crash`` in its query string gets a response
  body that raises RuntimeError after its first chunk: a bug inside one
  viewer's greenlet.  A WSGI middleware wraps the app's response.
- A request with ``orphan`` in its query string starts a greenlet that dies
  of an exception (gevent would print its traceback on stderr); one with
  ``warn`` makes a library-style ``warnings.warn``.
- A config with a stream whose remote's host is ``crash-at-start.invalid``
  makes start-up itself fail with an exception (whose message quotes that
  URL, password and all), through the CLI's top-level handler.

Everything else is the real restreamer, serving the real sockets.
"""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402
import warnings  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

import gevent  # noqa: E402

from restreamer import cli, log  # noqa: E402
from restreamer.config import load  # noqa: E402
from restreamer.core.relay import Relay  # noqa: E402
from restreamer.assembly import Service  # noqa: E402
from restreamer.sources import open_connection  # noqa: E402
from restreamer.web.app import create_app  # noqa: E402

CRASH_HOST = "crash.invalid"
START_CRASH_HOST = "crash-at-start.invalid"


class _CrashingConnection:
    def read(self) -> bytes:
        raise RuntimeError("injected fault in the source's read()")

    def close(self) -> None:
        pass


def _open_connection(url, settings):
    if urlsplit(url).hostname == CRASH_HOST:
        return _CrashingConnection()
    return open_connection(url, settings)


class _CrashingBody:
    """A response body that fails after its first bytes; closing closes the real one."""

    def __init__(self, body):
        self._body = body

    def __iter__(self):
        for chunk in self._body:
            yield chunk  # a stream's body begins with an empty piece (the head at once)
            if chunk:
                break
        raise RuntimeError("injected fault in a viewer's response")

    def close(self):
        self._body.close()


def _orphan() -> None:
    raise RuntimeError("injected fault in a background greenlet")


def _crash_on_request(app):
    def wsgi(environ, start_response):
        query = environ.get("QUERY_STRING", "")
        if "orphan" in query:
            gevent.spawn(_orphan)
        if "warn" in query:
            warnings.warn("injected warning", RuntimeWarning)
        body = app(environ, start_response)
        return _CrashingBody(body) if "crash" in environ.get("QUERY_STRING", "") else body
    return wsgi


def main(path: str) -> int:
    config = load(path)
    for url in (url for stream in config.streams for url in stream.remotes):
        if urlsplit(url).hostname == START_CRASH_HOST:
            raise RuntimeError(f"injected fault at start-up with {url}")
    log.configure(config.log)
    service = Service(Relay(config, opener=_open_connection))
    app = create_app(service)
    app.wsgi_app = _crash_on_request(app.wsgi_app)
    return cli.serve(service, app)


if __name__ == "__main__":
    cli.run(lambda: main(sys.argv[1]))
