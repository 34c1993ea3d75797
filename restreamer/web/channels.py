"""The ``playlist`` API: the streams as an extended M3U channel list.

IPTV players (Kodi, TiviMate, VLC's playlist view) start from such a list.
Each stream the requester may open is one entry: its name, EPG id, logo and
group, then its absolute URL (``?hls``: its HLS playlist's, for the streams
served as HLS).  The URLs are built from the request's scheme and Host, or,
behind a reverse proxy listed in ``trustedproxies``, from its
``X-Forwarded-Proto`` and ``X-Forwarded-Host``.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Callable

from flask import Request, Response, request

from ..core.credentials import Authenticator

if TYPE_CHECKING:
    from ..config import ApiConfig
    from ..core.relay import Relay

CONTENT_TYPE = "audio/x-mpegurl"


def view_for(relay: "Relay", resource: "ApiConfig") -> Callable[[], Response]:
    def channels() -> Response:
        config = relay.config
        base = origin(request, config.trustedproxies) + mount_point(request, resource.serve)
        authorization = request.headers.get("Authorization")
        hls = "hls" in request.args
        lines = ["#EXTM3U"]
        for stream in config.streams:
            if hls and not config.hls_of(stream):
                continue
            if not Authenticator(stream.authentication, config.userlist).allows(authorization):
                continue
            name = stream.name or stream.serve
            attributes = " ".join(f'{key}="{_attribute(value)}"' for key, value in (
                ("tvg-id", stream.tvgid), ("tvg-name", name), ("tvg-logo", stream.logo),
                ("group-title", stream.group)))
            lines.append(f"#EXTINF:-1 {attributes},{_title(name)}")
            lines.append(base + (stream.playlist_path if hls else stream.serve))
        return Response("\n".join(lines) + "\n", status=200, content_type=CONTENT_TYPE,
                        headers={"Cache-Control": "no-cache"})
    return channels


def origin(req: Request, trusted: tuple[str, ...]) -> str:
    """``scheme://host`` as the client addressed us: a trusted proxy's forwarded
    values, else the request's own."""
    scheme, host = req.scheme, req.host
    if trusted and _trusted(req.remote_addr, trusted):
        scheme = _first(req.headers.get("X-Forwarded-Proto")) or scheme
        host = _first(req.headers.get("X-Forwarded-Host")) or host
    if scheme not in ("http", "https"):
        scheme = req.scheme
    return f"{scheme}://{host}"


def mount_point(req: Request, serve: str) -> str:
    """Where the blueprint is mounted: the request's path up to the resource's own."""
    path = req.script_root + req.path
    return path[:-len(serve)] if path.endswith(serve) else req.script_root


def _trusted(remote: str | None, trusted: tuple[str, ...]) -> bool:
    try:
        address = ipaddress.ip_address(remote or "")
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(network, strict=False) for network in trusted)


def _first(value: str | None) -> str:
    """The first of a comma-separated header's values (the client-facing proxy's)."""
    return (value or "").split(",")[0].strip()


def _attribute(value: str) -> str:
    """An M3U attribute value: no quote or line break can end it early."""
    return value.replace('"', "'").replace("\r", " ").replace("\n", " ")


def _title(value: str) -> str:
    return value.replace("\r", " ").replace("\n", " ")
