"""The ``type: api`` resources: health, statistics, check, control, prometheus and dashboard.

Bodies and status codes are those of the original restreamer, so existing
load balancers and monitoring keep working.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Callable

from flask import Response, request

from ..ops.metrics import CONTENT_TYPE as PROMETHEUS_CONTENT_TYPE, exposition
from . import dashboard

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
    if kind == "statistics":
        return lambda: _json(relay.statistics.statistics())
    if kind == "prometheus":
        return lambda: Response(exposition(relay.metrics), content_type=PROMETHEUS_CONTENT_TYPE)
    if kind == "dashboard":
        return dashboard.view_for(relay, resource)
    stream = relay.streams[resource.remote]
    if kind == "check":
        # A stream switched offline serves nobody, so a load balancer should
        # look elsewhere; an idle on-demand stream connects for its next viewer.
        def check() -> Response:
            return _text(200, "200 ok") if stream.serving else _text(404, "404 not found")
        return check
    if kind == "control":
        def control() -> Response:
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
                 "prometheus": PROMETHEUS_CONTENT_TYPE, "dashboard": dashboard.HTML}


def _json(data: dict) -> Response:
    return Response(json.dumps(data), status=200, content_type=JSON)


def _text(status: int, body: str) -> Response:
    return Response(body, status=status, content_type=TEXT)
