"""The udpxy gateway's addresses: the groups a request names in udpxy's URL
form, and the networks a gateway resource's ``allow`` lets viewers ask for.

A request's path below the gateway's ``serve`` is ``udp/GROUP:PORT`` or
``rtp/GROUP:PORT``; GROUP may be written ``@GROUP`` (udpxy's form) or
``SOURCE@GROUP`` (source-specific multicast), an IPv6 one in brackets.
Names are not resolved: a viewer must not make the server look anything up.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Union

if TYPE_CHECKING:
    from . import Config
    from .keys import Reader

Address = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

#: The first segment of a group's path: the scheme of the source that reads it.
SCHEMES = ("udp", "rtp")
#: What a gateway lets viewers ask for unless ``allow`` says otherwise: any multicast group.
MULTICAST = ("224.0.0.0/4", "ff00::/8")
EXAMPLE = "udp/239.0.0.1:1234"


@dataclass(frozen=True)
class Group:
    """A multicast group (or, where ``allow`` lets it, a local unicast address) and port."""

    scheme: str  # udp or rtp
    address: Address
    port: int
    source: Address | None = None  # source-specific multicast: only this sender's datagrams

    @property
    def name(self) -> str:
        """``[SOURCE@]GROUP:PORT``, the one spelling of the group in paths and logs."""
        host = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        source = f"{self.source}@" if self.source is not None else ""
        return f"{source}{host}:{self.port}"

    @property
    def path(self) -> str:
        """Below the gateway's serve path."""
        return f"{self.scheme}/{self.name}"

    @property
    def remote(self) -> str:
        """The URL the stream pulls (sources/datagram.py, sources/rtp.py)."""
        return f"{self.scheme}://{self.name}"


#: Characters of a request's text shown in a refusal: the body and the log line stay short.
SHOWN = 60


def parse_group(rest: str) -> Group:
    """The group that ``rest`` (a request's path below the gateway) names;
    ValueError with the one-line reason if it names none."""
    scheme, slash, spec = rest.partition("/")
    if scheme not in SCHEMES or not slash:
        raise ValueError(f"expected /udp/GROUP:PORT or /rtp/GROUP:PORT, as in /{EXAMPLE}")
    source_text, at, target = spec.rpartition("@")
    host, colon, port_text = target.rpartition(":")
    if not colon or not host:
        raise ValueError(f"{_shown(spec)} is not GROUP:PORT, as in /{EXAMPLE}")
    if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
        raise ValueError(f"port {_shown(port_text)} is not a number from 1 to 65535")
    address = _address(host, "group")
    source = _address(source_text, "source") if source_text else None
    if source is not None and (source.version, address.version) != (4, 4):
        # A URL's user part cannot hold an IPv6 address: udp:// takes IPv4 sources only.
        raise ValueError(f"source {source_text!r}: a source-specific group is IPv4 only")
    return Group(scheme, address, int(port_text), source)


def _address(text: str, what: str) -> Address:
    bracketed = text.startswith("[") and text.endswith("]")
    try:
        address = ipaddress.ip_address(text[1:-1] if bracketed else text)
    except ValueError:
        raise ValueError(f"{what} {_shown(text)} is not an IP address (names are not looked up)") from None
    if (address.version == 6) != bracketed:
        raise ValueError(f"{what} {text!r}: an IPv6 address goes in brackets, an IPv4 one not")
    if address.version == 6 and address.scope_id:
        raise ValueError(f"{what} {text!r}: give the interface as the gateway's clientinterface")
    return address


def _shown(text: str) -> str:
    """``text`` quoted (control characters escaped), cut to :data:`SHOWN` characters."""
    return repr(text) if len(text) <= SHOWN else repr(text[:SHOWN]) + "..."


def networks(allow: Iterable[str]) -> tuple[Network, ...]:
    """``allow``'s entries as networks (a bare address is a network of one)."""
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in allow)


def refusal(group: Group, allowed: tuple[Network, ...]) -> tuple[int, str] | None:
    """Why a viewer may not ask for ``group`` (HTTP status, reason), or None.

    A unicast address is a malformed group (400) unless ``allow`` lets it:
    then the gateway binds that local address, as ``udp://HOST:PORT`` does.
    """
    if any(group.address in network for network in allowed):
        return None
    if not group.address.is_multicast:
        return 400, f"{group.address} is not a multicast group"
    return 403, f"group {group.address} is not in the gateway's allow list"


def check_gateways(config: "Config", reader: "Reader") -> None:
    """``allow`` must be addresses or networks; no other resource may be
    served where a gateway serves its groups (the gateway would never see
    those paths), nor two gateways at one path.  A gateway's own path is free
    for another resource (a dashboard at ``/``)."""
    gateways = [r for r in config.resources if r.TYPE == "udpxy"]
    prefixes: dict[str, str] = {}
    for gateway in gateways:
        if gateway.group_prefix in prefixes:
            reader.report(reader.fail(f"{gateway.where}.serve", f"{gateway.serve!r}: the udpxy gateway "
                                                               f"{prefixes[gateway.group_prefix]} serves there"))
        prefixes.setdefault(gateway.group_prefix, gateway.where)
        for i, entry in enumerate(gateway.allow):
            try:
                network = ipaddress.ip_network(entry, strict=False)
            except ValueError:
                reader.report(reader.fail(f"{gateway.where}.allow[{i}]", "expected an address or a network "
                                                                        f"such as 239.0.0.0/8, got {entry!r}"))
                continue
            if not network.is_multicast:
                reader.note(f"{gateway.where}.allow[{i}]", f"{entry} is not multicast: a viewer asking for an "
                                                          "address in it makes the gateway bind that local "
                                                          "address and port")
        groups = tuple(gateway.group_prefix + scheme + "/" for scheme in SCHEMES)
        for r in config.resources:
            if r.TYPE != "udpxy" and r.serve.startswith(groups):
                reader.report(reader.fail(f"{r.where}.serve", f"{r.serve!r} is where the udpxy gateway "
                                                             f"{gateway.where} serves its groups"))
