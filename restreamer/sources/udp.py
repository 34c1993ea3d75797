"""UDP upstreams: ``udp://host:port`` listens for datagrams on a local address, or
joins ``host`` as a multicast group (on ``clientinterface`` when given)."""

from __future__ import annotations

import ipaddress
import socket
import struct
from urllib.parse import urlsplit

from ..ts import PACKET_SIZE
from .base import SourceError, SourceSettings


class UDPConnection:
    """A bound datagram socket; each read returns one datagram of up to ``mru`` bytes."""

    def __init__(self, url: str, settings: SourceSettings):
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
        try:
            info = socket.getaddrinfo(host or None, port, type=socket.SOCK_DGRAM,
                                      flags=socket.AI_PASSIVE)[0]
        except socket.gaierror as e:
            raise SourceError(f"name resolution failed: {e.strerror}") from None
        family, address = info[0], info[4]
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self._setup(family, address, settings)
        except OSError as e:
            self._sock.close()
            raise SourceError(e.strerror or str(e)) from None
        self._mru = settings.mru

    def _setup(self, family: int, address: tuple, settings: SourceSettings) -> None:
        sock = self._sock
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, max(settings.inputbuffer, 16) * PACKET_SIZE)
        group = ipaddress.ip_address(address[0])
        if not group.is_multicast:
            sock.bind(address)
            return
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)  # binding the group address filters out other groups on the port
        index = socket.if_nametoindex(settings.clientinterface) if settings.clientinterface else 0
        if family == socket.AF_INET:
            request = struct.pack("=4s4si", group.packed, b"\0\0\0\0", index)  # struct ip_mreqn
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, request)
        else:
            request = struct.pack("=16sI", group.packed, index)  # struct ipv6_mreq
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, request)

    def read(self) -> bytes:
        try:
            return self._sock.recv(self._mru)
        except OSError as e:
            raise SourceError(e.strerror or str(e)) from None

    def close(self) -> None:
        self._sock.close()
