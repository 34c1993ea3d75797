"""HLS playlists (RFC 8216) read into what a live relay needs: the variants of
a master playlist, or the segments of a media playlist."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urljoin

#: ``NAME=value`` or ``NAME="quoted, value"`` in a tag's attribute list.
_ATTRIBUTE = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')


class PlaylistError(ValueError):
    """A playlist that is not one, or that uses what a TS relay cannot follow."""


@dataclass(frozen=True)
class Variant:
    url: str
    bandwidth: int
    name: str  # its NAME, RESOLUTION or URI, whichever a ``variant`` key may match


@dataclass(frozen=True)
class Key:
    """How the segments after an ``EXT-X-KEY`` are encrypted."""

    method: str  # NONE, AES-128 or SAMPLE-AES
    url: str | None
    iv: bytes | None  # None: the segment's media sequence number is its IV


@dataclass(frozen=True)
class Segment:
    sequence: int
    url: str
    duration: float
    discontinuity: bool  # an EXT-X-DISCONTINUITY precedes it
    key: Key | None


@dataclass
class Playlist:
    """A master playlist (``variants``) or a media playlist (the rest)."""

    variants: list[Variant] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    target: float = 0.0  # EXT-X-TARGETDURATION, seconds
    ended: bool = False  # EXT-X-ENDLIST: nothing will be added
    fmp4: bool = False  # EXT-X-MAP: segments are fragmented MP4, not TS

    @property
    def last(self) -> int:
        """The media sequence number of the newest segment (-1: none)."""
        return self.segments[-1].sequence if self.segments else -1


def attributes(text: str) -> dict[str, str]:
    """A tag's attribute list, quotes removed."""
    return {name: value[1:-1] if value.startswith('"') else value
            for name, value in _ATTRIBUTE.findall(text)}


def parse(text: str, base: str) -> Playlist:
    """The playlist ``text`` fetched from ``base`` (relative URIs resolve against it)."""
    lines = [line.strip() for line in text.splitlines()]
    if not lines or not lines[0].lstrip("\ufeff").startswith("#EXTM3U"):
        raise PlaylistError("not an HLS playlist (no #EXTM3U first line)")
    playlist = Playlist()
    sequence = 0
    duration = 0.0
    discontinuity = False
    key: Key | None = None
    stream_inf: dict[str, str] | None = None
    for number, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        tag, _, value = line.partition(":")
        if tag == "#EXT-X-TARGETDURATION":
            playlist.target = _number(value, number, float)
        elif tag == "#EXT-X-MEDIA-SEQUENCE":
            sequence = _number(value, number, int)
        elif tag == "#EXTINF":
            duration = _number(value.split(",")[0], number, float)
        elif tag == "#EXT-X-DISCONTINUITY":
            discontinuity = True
        elif tag == "#EXT-X-ENDLIST":
            playlist.ended = True
        elif tag == "#EXT-X-MAP":
            playlist.fmp4 = True
        elif tag == "#EXT-X-KEY":
            key = _key(attributes(value), base, number)
        elif tag == "#EXT-X-STREAM-INF":
            stream_inf = attributes(value)
        elif not line.startswith("#"):
            url = urljoin(base, line)
            if stream_inf is not None:
                name = stream_inf.get("NAME") or stream_inf.get("RESOLUTION") or line
                bandwidth = stream_inf.get("BANDWIDTH", "0")
                playlist.variants.append(Variant(url, int(bandwidth) if bandwidth.isdigit() else 0, name))
                stream_inf = None
            else:
                playlist.segments.append(Segment(sequence, url, duration, discontinuity, key))
                sequence += 1
                discontinuity = False
    return playlist


def choose(playlist: Playlist, wanted: str | None) -> Variant:
    """The variant named ``wanted`` (its NAME, RESOLUTION or URI), else the highest bandwidth."""
    if wanted:
        for variant in playlist.variants:
            if wanted in (variant.name, variant.url) or variant.url.endswith("/" + wanted):
                return variant
        names = ", ".join(variant.name for variant in playlist.variants)
        raise PlaylistError(f"no variant {wanted!r} in the master playlist (it has {names})")
    return max(playlist.variants, key=lambda variant: variant.bandwidth)


def _key(attrs: dict[str, str], base: str, number: int) -> Key | None:
    method = attrs.get("METHOD", "NONE")
    if method == "NONE":
        return None
    iv = attrs.get("IV")
    if iv is not None:
        try:
            iv_bytes = bytes.fromhex(iv[2:] if iv[:2].lower() == "0x" else iv)
        except ValueError:
            iv_bytes = b""
        if len(iv_bytes) != 16:
            raise PlaylistError(f"line {number}: EXT-X-KEY IV {iv!r} is not 16 bytes of hex")
    uri = attrs.get("URI")
    return Key(method, urljoin(base, uri) if uri else None, iv_bytes if iv is not None else None)


def _number(text: str, number: int, kind: type):
    try:
        return kind(text.strip())
    except ValueError:
        raise PlaylistError(f"line {number}: {text.strip()!r} is not a number") from None
