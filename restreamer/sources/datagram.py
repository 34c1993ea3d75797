"""Datagram upstreams, read one datagram of up to ``mru`` bytes at a time.

``udp://host:port`` listens on a local address, or joins ``host`` as a
multicast group (on ``clientinterface`` when given); ``unixgram:///path``
receives the datagrams sent to ``path``.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import stat
import struct
from urllib.parse import urlsplit

from ..ts.packets import PACKET_SIZE
from .base import SourceError, SourceSettings
from .exclusive import Claim


class _DatagramSocket:
    """A bound datagram socket; each read returns one datagram of up to ``mru`` bytes."""

    _sock: socket.socket
    _mru: int
    _claim: Claim | None = None

    def read(self) -> bytes:
        try:
            return self._sock.recv(self._mru)
        except OSError as e:
            raise SourceError.from_os_error(e) from None

    def close(self) -> None:
        self._sock.close()
        if self._claim is not None:
            self._claim.release()


class UDPConnection(_DatagramSocket):
    """A UDP socket bound to the URL's address, or joined to its multicast group."""

    def __init__(self, url: str, settings: SourceSettings):
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
        try:
            info = socket.getaddrinfo(host or None, port, type=socket.SOCK_DGRAM,
                                      flags=socket.AI_PASSIVE)[0]
        except socket.gaierror as e:
            raise SourceError.from_os_error(e) from None
        family, address = info[0], info[4]
        if not ipaddress.ip_address(address[0]).is_multicast:  # every member of a group gets it all
            self._claim = Claim(f"udp {port}", f"UDP port {port}")
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self._setup(family, address, settings)
        except OSError as e:
            self.close()
            raise SourceError.from_os_error(e) from None
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


class UnixDatagramConnection(_DatagramSocket):
    """A unix datagram socket bound at the URL's path, as ``udp://`` binds a port.

    Datagrams have no connection to dial: a sender addresses them to a path,
    so restreamer owns that path while the stream runs.  A stale socket file
    left by an earlier run is replaced; any other file is left alone.
    """

    def __init__(self, url: str, settings: SourceSettings):
        self._path = urlsplit(url).path
        self._mru = settings.mru
        # Claimed first: a second reader would replace this one's socket file.
        self._claim = Claim(f"unixgram {os.path.abspath(self._path)}", f"the socket {self._path}")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            _remove_stale_socket(self._path)
            self._sock.bind(self._path)
        except OSError as e:
            self._sock.close()
            self._claim.release()
            raise SourceError.from_os_error(e, self._path) from None

    def close(self) -> None:
        if self._sock.fileno() >= 0:
            self._sock.close()
            _remove_stale_socket(self._path)
        self._claim.release()


def _remove_stale_socket(path: str) -> None:
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass
