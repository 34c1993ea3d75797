"""Addresses in the config: where the server listens (``listen``) and the URL
paths it serves (``serve``)."""

from __future__ import annotations

import socket
from typing import Any


def url_path_problem(serve: str) -> str | None:
    if not serve.startswith("/"):
        return f"must be a URL path starting with '/', got {serve!r}"
    if "<" in serve or ">" in serve:
        return f"must not contain '<' or '>' (Flask would take it as a routing template), got {serve!r}"
    if any(ord(c) < 0x20 or ord(c) == 0x7f for c in serve):
        # A CR or LF would reach log lines and metrics' labels raw.
        return f"must not contain control characters, got {serve!r}"
    if "?" in serve or "#" in serve:
        return f"must not contain '?' or '#' (a request's path never does), got {serve!r}"
    if any(segment in (".", "..") for segment in serve.split("/")):
        return f"must not contain '.' or '..' segments (clients resolve them away), got {serve!r}"
    return None


def listen_problem(listen: str) -> str | None:
    try:
        parse_listen(listen)
    except ValueError as e:
        return str(e) + (f"; did you mean ':{listen}'?" if listen.isdigit() else "")
    return None


def listen_hint(value: Any) -> str:
    """A bare port number (``listen: 8000``) was meant as every interface's port."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"; did you mean \":{value}\"?"
    return ""


def parse_listen(listen: str) -> tuple[str, int]:
    """``host:port``, ``:port``, ``[v6]:port`` or ``host:service`` -> (host, port).

    An empty host means all interfaces, as in Go's ``net.Listen``.
    """
    host, sep, port = listen.rpartition(":")
    if not sep:
        raise ValueError(f"expected host:port, got {listen!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"IPv6 addresses need brackets, as in [::1]:8000, got {listen!r}")
    if port.isdigit():
        number = int(port)
    else:
        try:
            number = socket.getservbyname(port, "tcp")
        except OSError:
            raise ValueError(f"unknown service or port {port!r} in {listen!r}") from None
    if not 0 <= number <= 65535:
        raise ValueError(f"port {number} out of range in {listen!r}")
    return host, number
