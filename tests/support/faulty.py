"""restreamer's CLI with deliberate faults injected, to show a crash stays
where it happens.

Usage: python -m tests.support.faulty CONFIG

- A stream whose remote's host is ``crash.invalid`` gets a connection whose
  ``read()`` raises RuntimeError: a bug inside one stream's source.
- A viewer whose request has ``crash`` in its query string gets a response
  body that raises RuntimeError after its first chunk: a bug inside one
  viewer's greenlet.

Everything else is the real restreamer, serving the real sockets.
"""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

from flask import request  # noqa: E402

from restreamer import blueprint, cli, upstream, viewer  # noqa: E402

CRASH_HOST = "crash.invalid"


class _CrashingConnection:
    def read(self) -> bytes:
        raise RuntimeError("injected fault in the source's read()")

    def close(self) -> None:
        pass


def _open_connection(url, settings, _real=upstream.open_connection):
    if urlsplit(url).hostname == CRASH_HOST:
        return _CrashingConnection()
    return _real(url, settings)


class _ResponseBody(viewer.ResponseBody):
    __slots__ = ()

    def __init__(self, *args):
        super().__init__(*args)
        if "crash" in request.args:
            self._chunks = _crashing(self._chunks)


def _crashing(chunks):
    try:
        yield next(chunks)
        raise RuntimeError("injected fault in a viewer's response")
    finally:
        chunks.close()


upstream.open_connection = _open_connection
blueprint.ResponseBody = _ResponseBody

if __name__ == "__main__":
    sys.exit(cli.main(sys.argv[1:]))
