"""A stream's HLS playlist and segments over HTTP (see core/segments.py).

The playlist is served at the stream's path with ``.ts`` replaced by
``.m3u8``, each segment below it as ``NUMBER.ts``.  Every request counts the
client (address and User-Agent) as a viewer of the stream while it keeps
asking (:meth:`Relay.admit_session`); the stream's authentication guards
both (the routes are the stream's).
"""

from __future__ import annotations

from typing import Callable
from flask import Response, request

from ..core.relay import Refusal, Relay
from ..core.stream import Stream
from ..log import get_logger

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
SEGMENT_TYPE = "video/mp2t"
NO_CACHE = {"Cache-Control": "no-cache"}

_access_log = get_logger("access")


def serve_playlist(relay: Relay, stream: Stream) -> Response:
    """The live media playlist; waits for the first segment of a stream that is starting."""
    admitted = _admit(relay, stream)
    if isinstance(admitted, Response):
        return admitted
    segmenter = stream.segmenter
    segmenter.expire(stream.clock.now())
    # A stream that is just starting (an on-demand one, a restart) has its
    # first segments a few keyframes later: the player waits for them, as an
    # HTTP-TS viewer waits for the first packet.
    deadline = stream.clock.now() + relay.config.graceperiod + 2 * segmenter.target_duration
    while not segmenter.ready and stream.lifecycle.accepting:
        left = deadline - stream.clock.now()
        if left <= 0 or not segmenter.added.wait(left):
            break
    if not segmenter.ready:
        return _refuse(stream, Refusal("no segment yet: the stream has no keyframe to cut at"),
                       PLAYLIST_TYPE)
    name = request.path.rsplit("/", 1)[-1]
    text = segmenter.playlist(name + "/")
    admitted.seen = stream.clock.now()
    return Response(text, status=200, content_type=PLAYLIST_TYPE, headers=NO_CACHE)


# -- the fast path -------------------------------------------------------------
# Players poll the playlist once per segment and fetch every segment: with many
# viewers, a Flask request per poll costs several times the bytes it sends.  A
# server that owns the socket (web/server.py) answers the common case, a known
# client of a ready stream, from these, with the headers and bytes the Flask
# views send; anything else (a refusal, a wait, a new client that may be
# refused) returns None and goes to the Flask views.

def playlist_answer(relay: Relay, stream: Stream, allows: Callable[[str | None], bool],
                    environ: dict) -> tuple[list[tuple[str, str]], bytes] | None:
    """The headers and body of a ready playlist for an admitted client, else None."""
    segmenter = stream.segmenter
    if not segmenter.ready or not allows(environ.get("HTTP_AUTHORIZATION")):
        return None
    session = _known(relay, stream, environ)
    if session is None:
        return None
    segmenter.expire(stream.clock.now())
    if not segmenter.ready:
        return None
    text = segmenter.playlist(environ["PATH_INFO"].rsplit("/", 1)[-1] + "/")
    session.seen = stream.clock.now()
    return [("Content-Type", PLAYLIST_TYPE), ("Content-Length", str(len(text))),
            ("Cache-Control", "no-cache")], text


def segment_answer(relay: Relay, stream: Stream, allows: Callable[[str | None], bool],
                   environ: dict, name: str) -> tuple[list[tuple[str, str]], bytes] | None:
    """The headers and body of a held segment for an admitted client, else None."""
    number = name[:-3] if name.endswith(".ts") else ""
    segment = stream.segmenter.get(int(number)) if number.isdigit() else None
    if segment is None or not allows(environ.get("HTTP_AUTHORIZATION")):
        return None
    session = _known(relay, stream, environ)
    if session is None:
        return None
    data = segment.data
    session.sent(len(data), stream.clock.now())
    return [("Content-Type", SEGMENT_TYPE), ("Content-Length", str(len(data))),
            ("Cache-Control", "max-age=60")], data


def _known(relay: Relay, stream: Stream, environ: dict):
    """The session of a client the relay admits; None if it would be refused."""
    remote = environ.get("REMOTE_ADDR") or ""
    admitted = relay.admit_session(stream, (remote, environ.get("HTTP_USER_AGENT", "")), remote)
    return None if isinstance(admitted, Refusal) else admitted


def serve_segment(relay: Relay, stream: Stream, name: str) -> Response:
    """One segment, while it is held (listed, or just dropped from the list)."""
    number = name[:-3] if name.endswith(".ts") else ""
    segment = stream.segmenter.get(int(number)) if number.isdigit() else None
    if segment is None:
        return Response(b"", status=404, content_type=SEGMENT_TYPE)
    admitted = _admit(relay, stream)
    if isinstance(admitted, Response):
        return admitted
    data = segment.data
    if request.method == "HEAD":
        return Response(b"", status=200, content_type=SEGMENT_TYPE,
                        headers={"Content-Length": str(len(data))})
    admitted.sent(len(data), stream.clock.now())
    # Segments never change: a cache in front may keep them.
    return Response(data, status=200, content_type=SEGMENT_TYPE,
                    headers={"Cache-Control": "max-age=60"})


def _admit(relay: Relay, stream: Stream):
    """The client's session, or the response that refuses it."""
    remote = request.remote_addr or ""
    key = (remote, request.headers.get("User-Agent", ""))
    admitted = relay.admit_session(stream, key, remote)
    if isinstance(admitted, Refusal):
        return _refuse(stream, admitted, PLAYLIST_TYPE)
    return admitted


def _refuse(stream: Stream, refusal: Refusal, content_type: str) -> Response:
    _access_log.info("viewer refused", remote=request.remote_addr, path=request.path,
                     stream=stream.serve, status=refusal.status, reason=refusal.reason, hls=True)
    return Response(b"", status=refusal.status, content_type=content_type)
