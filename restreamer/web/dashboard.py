"""The ``dashboard`` API: one HTML page (``dashboard.html`` beside this module,
no build step, nothing from elsewhere) and the JSON it polls from the same path.

``?json`` (or ``Accept: application/json``) answers the overview's summary
with the samples after ``since``; ``?viewers=/stream.ts`` lists that
stream's viewers.  Both come from figures sampled once a second (see
:mod:`restreamer.ops.overview`), so a poll costs what an API call costs.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import TYPE_CHECKING, Callable

from flask import Response, request

if TYPE_CHECKING:
    from ..config import ApiConfig
    from ..assembly import Service

JSON = "application/json"
HTML = "text/html; charset=utf-8"
_NO_CACHE = {"Cache-Control": "no-cache"}
#: The page acts on clicks (taking a stream offline): no other site may
#: frame it and trick a click (clickjacking).
_PAGE_HEADERS = dict(_NO_CACHE, **{"X-Frame-Options": "DENY",
                                   "Content-Security-Policy": "frame-ancestors 'none'"})


def view_for(service: "Service", resource: "ApiConfig") -> Callable[[], Response]:
    page = resources.files(__package__).joinpath("dashboard.html").read_bytes()
    overview = service.overview

    def dashboard() -> Response:
        args = request.args
        if "viewers" in args:
            viewers = overview.viewers(args["viewers"])
            if viewers is None:
                return _json({"error": "no such stream"}, 404)
            return _json({"stream": args["viewers"], "viewers": viewers})
        if "json" in args or request.accept_mimetypes.best_match(["text/html", JSON]) == JSON:
            try:
                since = int(args.get("since", 0))  # the overview clamps it to its history
            except ValueError:
                return _json({"error": "since must be a sample number"}, 400)
            members = overview.summary(since)  # shared by every poll: never copied per request
            body = [b'{"base":%s,' % json.dumps(_base(resource.serve)).encode(), members, b"}"]
            return Response(body, content_type=JSON, headers=dict(
                _NO_CACHE, **{"Content-Length": str(sum(map(len, body)))}))
        return Response(page, content_type=HTML, headers=_PAGE_HEADERS)
    return dashboard


def _base(serve: str) -> str:
    """Where the config's paths are mounted: the app's root and any blueprint prefix."""
    path = request.path
    prefix = path[:len(path) - len(serve)] if serve != "/" and path.endswith(serve) else path.rstrip("/")
    return request.script_root + prefix


def _json(data: dict, status: int = 200) -> Response:
    return Response(json.dumps(data, separators=(",", ":")), status=status, content_type=JSON,
                    headers=_NO_CACHE)
