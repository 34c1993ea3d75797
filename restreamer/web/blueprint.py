"""The Flask blueprint that serves a configuration's resources.

``create_blueprint(config)`` is the one entry point for every way restreamer
runs: the CLI and gunicorn mount it in a bare app (:mod:`restreamer.web.app`),
and a host application can mount it under any ``url_prefix``.
"""

from __future__ import annotations

import functools
import os
from dataclasses import replace
from typing import Callable

import gevent
from flask import Blueprint, Flask, Response, abort, request
from werkzeug.exceptions import MethodNotAllowed
from werkzeug.http import http_date

from ..config import Authentication, Config, Resource, StaticConfig, StreamConfig, UdpxyConfig
from ..core.credentials import Authenticator
from ..core.relay import Refusal, Relay
from ..core.stream import Stream
from ..core.viewer import Viewer
from ..log import get_logger
from ..assembly import Service
from . import apis, hls
from .auth import TEXT, denial
from .body import ResponseBody
from .static import StaticResource

STREAM_HEADERS = {
    "Content-Type": "video/mpeg",
    "Cache-Control": "no-cache,no-store,no-transform",
    "Accept-Ranges": "none",
    # An nginx in front would otherwise buffer the endless response.
    "X-Accel-Buffering": "no",
}
#: A live stream ends only with its connection, so it is sent close-delimited.
LIVE_HEADERS = {"Connection": "close"}

_access_log = get_logger("access")
_log = get_logger("restreamer")

#: Why a server that does not run gevent's loop cannot serve the relay, and what can.
NO_GEVENT = ("restreamer needs a server that runs gevent's loop: restreamer's own CLI, gunicorn "
             "-k gevent (or -k restreamer.web.worker.Worker), or gevent.pywsgi.WSGIServer; this "
             "server handles requests in threads, where upstreams never run (Flask's development "
             "server, a threaded WSGI server)")


#: Methods the dispatch sees, so that a resource answers 405 to the others and an
#: unknown path 404 to all of them.
_METHODS = ["GET", "HEAD", "OPTIONS", "POST", "PUT", "DELETE", "PATCH", "TRACE"]
_ALLOWED = ["GET", "HEAD", "OPTIONS"]


def create_blueprint(config: str | os.PathLike | dict | Config | Relay | Service,
                     name: str = "restreamer") -> Blueprint:
    """A blueprint serving every resource of ``config``.

    Upstreams start with the first request the app handles (or at once when
    ``service.start()`` is called), so nothing runs in a process that only
    imports the app, such as a pre-forking master.  ``blueprint.service`` is
    the :class:`~restreamer.assembly.Service`; the app finds it in
    ``app.extensions["restreamer"]``.

    Flask fixes a blueprint's routes when it is registered, but a reload
    changes the resources: so one catch-all route dispatches through a table
    of the relay's current resources (:class:`Routes`).
    """
    service = Service.of(config)
    blueprint = Blueprint(name, __name__)
    blueprint.service = service  # type: ignore[attr-defined]
    routes = Routes(service)
    blueprint.add_url_rule("/", endpoint="resource", view_func=routes.dispatch,
                           defaults={"path": ""}, methods=_METHODS)
    blueprint.add_url_rule("/<path:path>", endpoint="resource", view_func=routes.dispatch,
                           methods=_METHODS)
    blueprint.before_app_request(functools.partial(_start, service, Warned()))
    blueprint.before_request(_refuse_without_gevent)
    blueprint.record_once(lambda state: _attach(state.app, service, routes, state.url_prefix))
    return blueprint


def _attach(app: Flask, service: Service, routes: "Routes", prefix: str | None) -> None:
    app.extensions["restreamer"] = service
    if not prefix or prefix == "/":
        # Our server answers HLS polls itself where the paths are ours as they are.
        app.extensions["restreamer.fast"] = routes.fast


def _under_gevent() -> bool:
    """Whether this request runs in a greenlet of gevent's loop, which then also
    runs the upstreams between requests: a plain thread (or the main greenlet
    of one) never lets them run."""
    return isinstance(gevent.getcurrent(), gevent.Greenlet)


class Warned:
    """Whether the app's missing gevent server has been logged (once is enough)."""

    done = False


def _start(service: Service, warned: Warned) -> None:
    if service.started:
        return
    if _under_gevent():
        service.start()
    elif not warned.done:
        warned.done = True
        _log.error("no gevent server", detail=NO_GEVENT)


def _refuse_without_gevent() -> Response | None:
    if _under_gevent():
        return None
    return Response(NO_GEVENT + "\n", status=500, content_type=TEXT)


class Routes:
    """The relay's resources by ``serve`` path, rebuilt when its config changes."""

    def __init__(self, service: Service):
        self.service = service
        self.relay = service.relay
        self._config: Config | None = None
        self._views: dict[str, Callable[[], Response]] = {}
        self._segments: dict[str, Callable[[str], Response]] = {}  # by playlist path
        self._fast: dict[str, Callable] = {}  # hls's answers, by playlist path
        self._fast_segments: dict[str, Callable] = {}  # by playlist path
        self._statics: dict[tuple, StaticResource] = {}
        self._gateways: list[tuple[str, Callable[[str], Response]]] = []  # by group prefix, longest first

    def dispatch(self, path: str) -> Response:
        view = self.views().get("/" + path)
        if view is None:
            playlist, _, name = ("/" + path).rpartition("/")
            segments = self._segments.get(playlist)
            if segments is not None:
                view = functools.partial(segments, name)
            else:
                view = self._group_view("/" + path)
        if request.method not in ("GET", "HEAD"):
            if request.method == "OPTIONS":
                return Response(b"", status=200, headers={"Allow": ", ".join(_ALLOWED)})
            raise MethodNotAllowed(valid_methods=_ALLOWED)
        return view()

    def fast(self, environ: dict) -> tuple[list[tuple[str, str]], bytes] | None:
        """The answer to a GET of an HLS playlist or segment that needs nothing
        of Flask (see hls.playlist_answer), else None."""
        if self.relay.config is not self._config:
            self._rebuild(self.relay.config)
        path = environ["PATH_INFO"]
        answer = self._fast.get(path)
        if answer is not None:
            return answer(environ)
        playlist, _, name = path.rpartition("/")
        answer = self._fast_segments.get(playlist)
        return answer(environ, name) if answer is not None else None

    def _group_view(self, path: str) -> Callable[[], Response]:
        """The view of a udpxy gateway's group (``udp/...``, ``rtp/...`` below its serve path)."""
        for prefix, view in self._gateways:
            if path.startswith(prefix) and path[len(prefix):].startswith(("udp/", "rtp/")):
                return functools.partial(view, path[len(prefix):])
        abort(404)

    def views(self) -> dict[str, Callable[[], Response]]:
        config = self.relay.config
        if config is not self._config:
            self._rebuild(config)
        return self._views

    def _rebuild(self, config: Config) -> None:
        views, statics, segments, fast, fast_segments = {}, {}, {}, {}, {}
        gateways = []
        for resource in config.resources:
            if isinstance(resource, UdpxyConfig):
                authenticator = Authenticator(resource.authentication, config.userlist)
                gateways.append((resource.group_prefix, functools.partial(
                    _group_guarded, authenticator, resource, self.relay)))
                continue
            view, headers = self._view_for(resource, config, statics)
            authenticator = Authenticator(resource.authentication, config.userlist)
            views[resource.serve] = _guard(authenticator, resource, view, headers)
            if isinstance(resource, StreamConfig) and config.hls_of(resource):
                stream = self.relay.streams[resource.serve]
                views[resource.playlist_path] = _guard(
                    authenticator, resource, functools.partial(hls.serve_playlist, self.relay, stream),
                    {"Content-Type": hls.PLAYLIST_TYPE})
                segments[resource.playlist_path] = functools.partial(
                    _segment_view, authenticator, resource, self.relay, stream)
                fast[resource.playlist_path] = functools.partial(
                    hls.playlist_answer, self.relay, stream, authenticator.allows)
                fast_segments[resource.playlist_path] = functools.partial(
                    hls.segment_answer, self.relay, stream, authenticator.allows)
        self._views, self._statics, self._segments, self._config = views, statics, segments, config
        self._fast, self._fast_segments = fast, fast_segments
        self._gateways = sorted(gateways, key=lambda gateway: -len(gateway[0]))

    def _view_for(self, resource: Resource, config: Config, statics: dict
                  ) -> tuple[Callable[[], Response], dict[str, str]]:
        """A resource's view, and the headers its refusals carry."""
        relay = self.relay
        if isinstance(resource, StreamConfig):
            stream = relay.streams[resource.serve]
            return functools.partial(serve_stream, relay, stream), STREAM_HEADERS
        if isinstance(resource, StaticConfig):
            # An unchanged static keeps its cached content across a reload.
            key = (replace(resource, where="", authentication=Authentication()),
                   config.timeout, config.base_dir)
            static = statics[key] = self._statics.get(key) or StaticResource(resource, config)
            return (lambda: static.respond(request)), {}
        return apis.view_for(self.service, resource), {"Content-Type": apis.CONTENT_TYPES[resource.api]}


def _guard(authenticator: Authenticator, resource: Resource, view: Callable[[], Response],
           headers: dict[str, str]) -> Callable[[], Response]:
    """Check credentials first, then log every request but a stream's (viewers log their own)."""
    def guarded() -> Response:
        if not authenticator.allows(request.headers.get("Authorization")):
            response = denial(authenticator, headers)
            _access_log.info("request refused", remote=request.remote_addr, path=request.path,
                             status=response.status_code, reason="authentication failed")
            return response
        response = view()
        if not isinstance(resource, (StreamConfig, UdpxyConfig)):
            _access_log.info("request", remote=request.remote_addr, method=request.method,
                             path=request.path, status=response.status_code)
        return response
    return guarded


def _segment_view(authenticator: Authenticator, resource: StreamConfig, relay: Relay, stream: Stream,
                  name: str) -> Response:
    """An HLS segment, guarded as its stream is."""
    view = functools.partial(hls.serve_segment, relay, stream, name)
    return _guard(authenticator, resource, view, {"Content-Type": hls.SEGMENT_TYPE})()


def _group_guarded(authenticator: Authenticator, resource: UdpxyConfig, relay: Relay, rest: str) -> Response:
    """A group of a udpxy gateway, guarded as its gateway is."""
    view = functools.partial(serve_group, relay, resource, rest)
    return _guard(authenticator, resource, view, STREAM_HEADERS)()


def serve_group(relay: Relay, resource: UdpxyConfig, rest: str) -> Response:
    """A viewer's request for a group: its stream (see core/gateway.py), or
    the refusal, its reason as the body's one line."""
    opened = relay.gateway.open(resource, rest)
    if isinstance(opened, Refusal):
        _access_log.info("viewer refused", remote=request.remote_addr, path=request.path,
                         gateway=resource.serve, status=opened.status, reason=opened.reason)
        return Response(opened.reason + "\n", status=opened.status, content_type=TEXT)
    try:
        return serve_stream(relay, opened)
    finally:
        relay.gateway.settle(opened)


def serve_stream(relay: Relay, stream: Stream) -> Response:
    """A viewer's request: the live stream from now on, or a refusal."""
    headers = dict(STREAM_HEADERS, **{"Last-Modified": http_date()})
    if request.method == "HEAD":
        refusal = relay.refusal(stream)
        if refusal is not None:
            return _refuse(stream, refusal, headers)
        # The headers of a live stream: no length (an empty body would say 0).
        return Response(iter(()), status=200, headers=dict(headers, **LIVE_HEADERS))
    admitted = relay.admit(stream, request.remote_addr or "")
    if isinstance(admitted, Refusal):
        return _refuse(stream, admitted, headers)
    viewer = admitted
    _access_log.info("viewer connected", remote=viewer.remote, path=request.path,
                     stream=stream.serve, status=200)
    # direct_passthrough hands this iterable to the server as it is (werkzeug's
    # call_on_close would never run), so the body's own close() frees the
    # viewer, however the response ends.
    body = ResponseBody(viewer, functools.partial(_viewer_left, relay, stream, viewer, request.path))
    return Response(body, status=200, headers=dict(headers, **LIVE_HEADERS), direct_passthrough=True)


def _refuse(stream: Stream, refusal: Refusal, headers: dict[str, str]) -> Response:
    _access_log.info("viewer refused", remote=request.remote_addr, path=request.path,
                     stream=stream.serve, status=refusal.status, reason=refusal.reason)
    return Response(b"", status=refusal.status, headers=dict(headers, **{"Content-Type": TEXT}))


def _viewer_left(relay: Relay, stream: Stream, viewer: Viewer, path: str) -> None:
    relay.release(stream, viewer)
    _access_log.info("viewer disconnected", remote=viewer.remote, path=path, stream=stream.serve,
                     duration=round(viewer.duration, 3), bytes=viewer.bytes_sent,
                     packets=viewer.packets_sent, dropped_packets=viewer.packets_dropped)
