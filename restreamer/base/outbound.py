"""Every HTTP request restreamer makes (HTTP upstreams, static resources,
notifications) goes out through a :func:`session`: one User-Agent, one place
to set what all of them share."""

from __future__ import annotations

import requests
import urllib3
from requests.adapters import HTTPAdapter

from ..version import __version__

#: What restreamer calls itself in every HTTP request it makes.
USER_AGENT = f"restreamer/{__version__}"


class _SocketOptionsAdapter(HTTPAdapter):
    """requests' adapter, with extra options on the sockets it opens."""

    def __init__(self, socket_options: list[tuple]):
        self._socket_options = socket_options
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["socket_options"] = (urllib3.connection.HTTPConnection.default_socket_options
                                    + self._socket_options)
        super().init_poolmanager(*args, **kwargs)


def session(socket_options: list[tuple] | None = None) -> requests.Session:
    """A requests session that names restreamer as its User-Agent and sets
    ``socket_options`` (``(level, option, value)``) on every socket it opens."""
    outbound = requests.Session()
    outbound.headers["User-Agent"] = USER_AGENT
    if socket_options:
        adapter = _SocketOptionsAdapter(socket_options)
        outbound.mount("http://", adapter)
        outbound.mount("https://", adapter)
    return outbound
