"""Datagram upstreams, read one datagram of up to ``mru`` bytes at a time.

``udp://host:port`` listens on a local address, or joins ``host`` as a
multicast group (on ``clientinterface`` when given; ``udp://SOURCE@GROUP:PORT``
joins only SOURCE's datagrams to the group, source-specific multicast);
``unixgram:///path`` receives the datagrams sent to ``path``.
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
        self._source = parts.username or None  # SOURCE@GROUP; "@GROUP" (udpxy's form) names none
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
        if self._source is not None:
            _join_source(sock, family, index, address, self._source)
        elif family == socket.AF_INET:
            request = struct.pack("=4s4si", group.packed, b"\0\0\0\0", index)  # struct ip_mreqn
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, request)
        else:
            request = struct.pack("=16sI", group.packed, index)  # struct ipv6_mreq
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, request)


#: setsockopt of Linux's protocol-independent source-specific join (linux/in.h);
#: Python's socket module does not name it.
MCAST_JOIN_SOURCE_GROUP = 46


def _join_source(sock: socket.socket, family: int, index: int, group: tuple, source: str) -> None:
    """Join ``group`` for ``source``'s datagrams only (struct group_source_req)."""
    try:
        sender = socket.getaddrinfo(source, 0, family, socket.SOCK_DGRAM)[0][4]
    except socket.gaierror as e:
        raise SourceError.from_os_error(e, f"multicast source {source}") from None

    def storage(address: tuple) -> bytes:  # struct sockaddr_storage
        if family == socket.AF_INET:
            packed = struct.pack("=H", family) + struct.pack("!H4s", 0, socket.inet_pton(family, address[0]))
        else:
            packed = struct.pack("=H", family) + struct.pack("!HI16sI", 0, 0,
                                                             socket.inet_pton(family, address[0]), 0)
        return packed.ljust(128, b"\0")

    # gsr_interface, then padding to the 8-byte alignment of sockaddr_storage.
    request = struct.pack("=I4x", index) + storage(group) + storage(sender)
    level = socket.IPPROTO_IP if family == socket.AF_INET else socket.IPPROTO_IPV6
    sock.setsockopt(level, MCAST_JOIN_SOURCE_GROUP, request)


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
