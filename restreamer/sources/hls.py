"""Live HLS upstreams: a playlist followed, its TS segments passed on as one stream.

A remote whose path ends in ``.m3u8``, or an HTTP remote that answers with an
HLS content type, is followed as HLS (:func:`open_http` decides).  A master
playlist is resolved to one variant; the media playlist is then reloaded as
RFC 8216 section 6.3.4 says, and a fetcher greenlet downloads its new segments
in order, at most :data:`PREFETCH` ahead of the reader.  The relay starts at
the live edge (the newest segment), so it adds at most one segment of delay.

Where the stream breaks off (segments skipped because the relay fell behind or
the playlist jumped, or an ``EXT-X-DISCONTINUITY``), the read that returns the
first data after the break raises :attr:`HLSConnection.breaks`, and the
upstream restarts its viewers at the next keyframe as at a failover.
"""

from __future__ import annotations

import collections
import time
from urllib.parse import urlsplit

import gevent
import requests
from gevent.event import Event

from ..log import get_logger
from ..redact import redact_url
from .base import READ_SIZE, SourceError, SourceSettings, timeout_or_none
from .http import HEAD_TIMEOUT, HTTPConnection, new_session, reason
from .playlist import Playlist, PlaylistError, Segment, choose, parse

#: Content types an HTTP remote answers an HLS playlist with.
HLS_TYPES = ("application/vnd.apple.mpegurl", "application/x-mpegurl", "audio/mpegurl", "audio/x-mpegurl")
#: Segments downloaded ahead of the one being read.
PREFETCH = 2
#: Largest playlist read, bytes: a bigger one is not a playlist.
PLAYLIST_LIMIT = 1 << 20
#: Target durations a live playlist may stay unchanged before the attempt
#: fails even with ``readtimeout`` 0 (with it, the upstream gives up sooner).
STALL_TARGETS = 10

FMP4 = "HLS: fMP4 segments (EXT-X-MAP) are not supported; only MPEG-TS segments are"

_log = get_logger("streaming")


def open_http(url: str, settings: SourceSettings):
    """An ``http(s)://`` remote: HLS if its path ends in ``.m3u8`` or it answers
    with a playlist, else the plain streaming GET."""
    if urlsplit(url).path.lower().endswith(".m3u8"):
        return HLSConnection(url, settings)
    connection = HTTPConnection(url, settings)
    if connection.content_type not in HLS_TYPES:
        return connection
    try:
        text = connection.read_all(PLAYLIST_LIMIT)
        final = connection.url
    finally:
        connection.close()
    return HLSConnection(final, settings, first=text)


class HLSConnection:
    """A live HLS playlist's segments, read as one transport stream.

    A segment arrives whole (seconds of the stream at once), but is read
    :data:`READ_SIZE` at a time, with ``pending`` saying more waits: the
    upstream then hands it out in turns, as it does a fast socket, where one
    read of the whole would hold the event loop (its analysis, its hand-out)
    for as long as every other stream and viewer waits."""

    def __init__(self, url: str, settings: SourceSettings, first: str | None = None):
        self._session = new_session()
        self._verify = settings.verify
        self._limit = timeout_or_none(settings.timeout, fallback=HEAD_TIMEOUT)
        self._name = settings.stream
        self.missing = 0  # media sequence numbers skipped
        self.breaks = 0  # places where the stream broke off (see the module's doc)
        self._queue: collections.deque[tuple[bytes, bool]] = collections.deque()
        self._rest = memoryview(b"")  # of the segment being read
        self._changed = Event()  # the queue or the fetcher's state changed
        self._error: SourceError | None = None
        self._ended = False
        self._keys: dict[str, bytes] = {}
        self._broken = False  # segments were lost before the next one queued
        try:
            playlist, url = self._resolve(url, first, settings.variant)
        except BaseException:
            self._session.close()
            raise
        self._fetcher = gevent.spawn(self._fetch_all, url, playlist)

    # -- the reader's side ---------------------------------------------------

    def read(self) -> bytes:
        if not self._rest:
            while not self._queue:
                if self._error is not None:
                    raise self._error
                if self._ended:
                    return b""
                self._changed.clear()
                self._changed.wait()
            data, broken = self._queue.popleft()
            if broken:
                self.breaks += 1
            self._changed.set()  # room for the fetcher
            if len(data) <= READ_SIZE:
                return data
            self._rest = memoryview(data)
        piece, self._rest = self._rest[:READ_SIZE], self._rest[READ_SIZE:]
        return bytes(piece)

    def pending(self) -> bool:
        """Whether a read would return at once."""
        return bool(self._rest) or bool(self._queue)

    def close(self) -> None:
        self._fetcher.kill(block=False)
        self._session.close()

    # -- the fetcher's side --------------------------------------------------

    def _resolve(self, url: str, first: str | None, wanted: str | None) -> tuple[Playlist, str]:
        """The media playlist at ``url``, or at the chosen variant of the master playlist there."""
        playlist = self._playlist(url, first)
        if playlist.variants:
            variant = choose(playlist, wanted)
            url = variant.url
            playlist = self._playlist(url)
            if playlist.variants:
                raise SourceError("HLS: a variant's playlist is itself a master playlist")
        if playlist.fmp4:
            raise SourceError(FMP4)
        return playlist, url

    def _playlist(self, url: str, text: str | None = None) -> Playlist:
        if text is None:
            body, url = self._get(url, "playlist", PLAYLIST_LIMIT)
            text = body.decode("utf-8", "replace")
        try:
            return parse(text, url)
        except PlaylistError as e:
            raise SourceError(f"HLS: {e}: {redact_url(url)}") from None

    def _get(self, url: str, what: str, limit: int | None = None) -> tuple[bytes, str]:
        """The body at ``url`` and the URL it came from after redirects."""
        failed = SourceError(f"HLS: no {what} within {self._limit:g} s: {redact_url(url)}")
        try:
            with gevent.Timeout(self._limit, failed):
                response = self._session.get(url, stream=True, verify=self._verify)
                with response:
                    if response.status_code >= 400:
                        raise SourceError(f"HLS: {what} {redact_url(url)}: HTTP {response.status_code}"
                                          f" {response.reason}")
                    body = response.raw.read(limit + 1 if limit else None, decode_content=True)
                    if limit and len(body) > limit:
                        raise SourceError(f"HLS: {what} {redact_url(url)} is larger than {limit} bytes")
                    return body, response.url
        except requests.RequestException as e:
            raise SourceError(f"HLS: {what} {redact_url(url)}: {reason(e)}") from None

    def _fetch_all(self, url: str, playlist: Playlist) -> None:
        try:
            self._follow(url, playlist)
        except SourceError as e:
            self._error = e
        except Exception as e:  # reported by the reader, which logs the attempt's end
            self._error = SourceError(f"HLS: {type(e).__name__}: {e}")
        self._changed.set()

    def _follow(self, url: str, playlist: Playlist) -> None:
        """Fetch the segments of the media playlist at ``url`` in order, reloading it, until it ends."""
        following: int | None = None  # the next media sequence number wanted
        newest: int | None = None  # the newest segment at the previous load
        began = moved = time.monotonic()  # when the last load began; when the playlist last moved
        while True:
            if playlist.fmp4:
                raise SourceError(FMP4)
            if following is None and playlist.segments:
                # The live edge; a finished playlist is played from its start.
                following = playlist.segments[0 if playlist.ended else -1].sequence
            elif following is not None and playlist.segments and playlist.last < following - 1:
                _log.warning("hls playlist restarted", stream=self._name, expected=following,
                             newest=playlist.last)
                following = playlist.last
                self._broken = True
            for segment in playlist.segments:
                if segment.sequence < following:
                    continue
                skipped = segment.sequence - following
                if skipped:
                    self.missing += skipped
                    _log.warning("hls segments skipped", stream=self._name, skipped=skipped,
                                 sequence=segment.sequence)
                self._fetch(segment, broken=bool(skipped) or segment.discontinuity)
                following = segment.sequence + 1
            if playlist.ended:
                self._ended = True
                return
            target = playlist.target or 1.0
            changed = playlist.last != newest
            newest = playlist.last
            if changed:
                moved = began
                wait = playlist.segments[-1].duration or target
            elif time.monotonic() - moved > STALL_TARGETS * target:
                raise SourceError(f"HLS: the playlist has not moved for {STALL_TARGETS * target:g} s")
            else:
                wait = target / 2
            gevent.sleep(max(0.0, began + wait - time.monotonic()))
            began = time.monotonic()
            playlist = self._playlist(url)

    def _fetch(self, segment: Segment, broken: bool) -> None:
        while len(self._queue) >= PREFETCH:
            self._changed.clear()
            self._changed.wait()
        try:
            data, _ = self._get(segment.url, "segment")
        except SourceError as e:
            if "HTTP 404" not in str(e) and "HTTP 410" not in str(e):
                raise
            # Gone before it was fetched (the relay fell behind a sliding window).
            self.missing += 1
            _log.warning("hls segment gone", stream=self._name, sequence=segment.sequence)
            self._broken = True
            return
        if segment.key is not None:
            data = self._decrypt(data, segment)
        self._queue.append((data, broken or self._broken))
        self._broken = False
        self._changed.set()

    def _decrypt(self, data: bytes, segment: Segment) -> bytes:
        key = segment.key
        assert key is not None
        if key.method != "AES-128":
            raise SourceError(f"HLS: segments encrypted with {key.method} are not supported (only AES-128)")
        if key.url is None:
            raise SourceError("HLS: an AES-128 EXT-X-KEY without a URI")
        secret = self._keys.get(key.url)
        if secret is None:
            try:
                secret, _ = self._get(key.url, "AES-128 key", 16)
            except SourceError as e:
                raise SourceError(f"{e} (the segments are AES-128 encrypted and cannot be read without it)")
            if len(secret) != 16:
                raise SourceError(f"HLS: the AES-128 key {redact_url(key.url)} is {len(secret)} bytes, not 16")
            self._keys[key.url] = secret
        return _aes128_cbc(secret, key.iv or segment.sequence.to_bytes(16, "big"), data)


def _aes128_cbc(key: bytes, iv: bytes, data: bytes) -> bytes:
    """``data`` decrypted, its PKCS#7 padding removed."""
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    if len(data) % 16:
        raise SourceError(f"HLS: an AES-128 segment of {len(data)} bytes (not a multiple of 16)")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    plain = decryptor.update(data) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(plain) + unpadder.finalize()
    except ValueError:
        raise SourceError("HLS: an AES-128 segment does not decrypt with its key (bad padding)") from None
