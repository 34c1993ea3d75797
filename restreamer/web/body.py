"""The WSGI body of a viewer's response."""

from __future__ import annotations

import itertools
from typing import Callable, Iterator

from ..core.viewer import Viewer


class ResponseBody:
    """The WSGI body of a viewer's response: the preamble, then the queue's chunks.

    Iterating it hands the server the viewer's generator itself (with the
    preamble chained in front in C), so no wrapper runs per chunk.
    ``close()``, which every WSGI server calls however the response ends,
    even before the first chunk, ends the generator and calls ``on_close``
    once.
    """

    __slots__ = ("_chunks", "_preamble", "_on_close")

    def __init__(self, viewer: Viewer, preamble: bytes, on_close: Callable[[], None]):
        self._chunks = viewer.chunks()
        self._preamble = preamble
        self._on_close: Callable[[], None] | None = on_close

    def __iter__(self) -> Iterator[bytes]:
        if self._preamble:
            return itertools.chain((self._preamble,), self._chunks)
        return self._chunks

    def close(self) -> None:
        self._chunks.close()
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()
