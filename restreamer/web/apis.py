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
    from ..core.relay import Relay

JSON = "application/json"
TEXT = "text/plain"


def view_for(relay: "Relay", resource: "ApiConfig") -> Callable[[], Response]:
    """The Flask view function of an API resource."""
    kind = resource.api
    if kind == "health":
        return lambda: _json(relay.statistics.health())
    # These two read every stream: a poll reuses an answer up to a second old.
    if kind == "statistics":
        statistics = Snapshot(lambda: json.dumps(relay.statistics.statistics()))
        return lambda: Response(statistics.get(), status=200, content_type=JSON)
    if kind == "prometheus":
        metrics = Snapshot(lambda: exposition(relay.metrics))
        return lambda: Response(metrics.get(), content_type=PROMETHEUS_CONTENT_TYPE)
    if kind == "dashboard":
        return dashboard.view_for(relay, resource)
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
    """Whether the browser says this request comes from another site.

    Browsers send ``Sec-Fetch-Site`` with every request (recent ones) and
    ``Origin`` with cross-origin ones; clients that are not browsers send
    neither and are let through.
    """
    if request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
        return True
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    return urlsplit(origin).netloc.lower() != request.host.lower()


def _json(data: dict) -> Response:
    return Response(json.dumps(data), status=200, content_type=JSON)


def _text(status: int, body: str) -> Response:
    return Response(body, status=status, content_type=TEXT)
