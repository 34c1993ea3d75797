"""The ``type: api`` resources: health, statistics, check, control, prometheus, dashboard and playlist.

Bodies and status codes are those of the original restreamer, so existing
load balancers and monitoring keep working.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit
from typing import TYPE_CHECKING, Callable

from flask import Response, request

from ..ops.metrics import CONTENT_TYPE as PROMETHEUS_CONTENT_TYPE, exposition
from . import channels, dashboard
from ..ops.snapshot import Snapshot

if TYPE_CHECKING:
    from ..config import ApiConfig
    from ..assembly import Service

JSON = "application/json"
TEXT = "text/plain"


def view_for(service: "Service", resource: "ApiConfig") -> Callable[[], Response]:
    """The Flask view function of an API resource."""
    kind = resource.api
    if kind == "health":
        return lambda: _json(service.statistics.health())
    # These two read every stream: a poll reuses an answer up to a second old.
    if kind == "statistics":
        # Encoded once: a shared answer is not copied per response.
        statistics = Snapshot(lambda: json.dumps(service.statistics.statistics()).encode())
        return lambda: Response(statistics.get(), status=200, content_type=JSON)
    if kind == "prometheus":
        metrics = Snapshot(lambda: exposition(service.metrics))
        return lambda: Response(metrics.get(), content_type=PROMETHEUS_CONTENT_TYPE)
    if kind == "dashboard":
        return dashboard.view_for(service, resource)
    relay = service.relay
    if kind == "playlist":
        return channels.view_for(relay, resource)
    stream = relay.streams[resource.remote]
    if kind == "check":
        # A stream switched offline serves nobody, so a load balancer should
        # look elsewhere; an idle on-demand stream connects for its next viewer.
        def check() -> Response:
            return _text(200, "200 ok") if stream.serving else _text(404, "404 not found")
        return check
    if kind == "control":
        def control() -> Response:
            # GET changes state, as in the original (its clients use GET), so
            # a page on another site must not be able to make a browser with
            # cached credentials send it (an <img> tag would do); and HEAD,
            # which crawlers and link checkers assume safe, never does.
            if _cross_site():
                return _text(403, "403 forbidden")
            if request.method == "HEAD":
                return Response(status=405, headers={"Allow": "GET"}, content_type=TEXT)
            # As the original: "offline" wins when both are given.
            if "offline" in request.args:
                relay.set_stream_enabled(stream, False)
            elif "online" in request.args:
                relay.set_stream_enabled(stream, True)
            else:
                return _text(400, "400 bad request")
            return _text(202, "202 accepted")
        return control
    raise ValueError(f"unknown API {kind!r}")


#: The Content-Type each API answers with, also on an authentication failure.
CONTENT_TYPES = {"health": JSON, "statistics": JSON, "check": TEXT, "control": TEXT,
                 "prometheus": PROMETHEUS_CONTENT_TYPE, "dashboard": dashboard.HTML,
                 "playlist": channels.CONTENT_TYPE}


def _cross_site() -> bool:
    """Whether any sign this request carries says it may come from elsewhere.

    A browser sends ``Sec-Fetch-Site`` (recent ones, with every request),
    ``Origin`` (with cross-origin ones) and ``Referer`` (unless told not to):
    each one present must name this very origin, scheme included (an
    ``https`` page is another origin than this ``http`` server).  Clients
    that are not browsers send none and are let through.
    """
    headers = request.headers
    site = headers.get("Sec-Fetch-Site")
    if site is not None and site.lower() not in ("same-origin", "none"):
        return True
    origin = headers.get("Origin")
    if origin is not None and _origin(origin) != _origin(request.host_url):
        return True
    referer = headers.get("Referer")
    return referer is not None and _origin(referer) != _origin(request.host_url)


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> tuple[str, str, int | None] | None:
    """(scheme, host, port) of a URL, the port spelled out; None if it has none."""
    try:
        parts = urlsplit(url)
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    return parts.scheme.lower(), parts.hostname.lower(), port


def _json(data: dict) -> Response:
    return Response(json.dumps(data), status=200, content_type=JSON)


def _text(status: int, body: str) -> Response:
    return Response(body, status=status, content_type=TEXT)
