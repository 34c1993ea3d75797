"""The WSGI body of a viewer's response."""

from __future__ import annotations

from typing import Callable, Iterator

from ..core.viewer import Sink, Viewer


class ResponseBody:
    """The WSGI body of a viewer's response.

    Any WSGI server iterates it: that hands the server the viewer's generator
    itself (the generator path), so no wrapper runs per chunk.  restreamer's
    own server calls :meth:`serve` instead with the client's socket (the
    direct path).  ``close()``, which every WSGI server calls however the
    response ends, even before the first chunk, ends the generator and calls
    ``on_close`` once.
    """

    __slots__ = ("_viewer", "_chunks", "_on_close")

    def __init__(self, viewer: Viewer, on_close: Callable[[], None]):
        self._viewer = viewer
        self._chunks: Iterator[bytes] | None = None
        self._on_close: Callable[[], None] | None = on_close

    def __iter__(self) -> Iterator[bytes]:
        self._chunks = self._viewer.chunks()
        return self._chunks

    def serve(self, sink: Sink) -> int:
        """Send the stream to ``sink`` until it ends; the bytes sent."""
        self._viewer.serve(sink)
        return self._viewer.bytes_sent

    def close(self) -> None:
        if self._chunks is not None:
            self._chunks.close()
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()
