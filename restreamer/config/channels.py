"""The checks of the keys that offer channels to players other than an HTTP-TS
one: HLS playlists and segments, and the channel list's trusted proxies."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from . import Config
    from .keys import Reader


def check_channels(config: "Config", reader: "Reader", served: dict[str, str]) -> None:
    """An HLS playlist must not take another resource's path; ``hlssegment``
    must be positive; ``trustedproxies`` must be addresses or networks."""
    for stream in config.streams:
        if config.hls_of(stream):
            path = stream.playlist_path
            if path in served:
                reader.report(reader.fail(f"{stream.where}.serve", f"its HLS playlist {path!r} is "
                                                                  f"already served by {served[path]}"))
            served.setdefault(path, f"{stream.where} (HLS)")
    if config.hlssegment <= 0:
        reader.report(reader.fail("hlssegment", "must be more than 0"))
    for i, proxy in enumerate(config.trustedproxies):
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            reader.report(reader.fail(f"trustedproxies[{i}]", "expected an address or a network such as "
                                                              f"10.0.0.0/8, got {proxy!r}"))
