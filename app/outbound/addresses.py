"""Where a webhook may go (spec §11): https only, and never to loopback, private,
link-local (cloud metadata lives there) or other internal addresses, checked when an
endpoint is added and again at every delivery, whose connection goes to the address that
was checked (a DNS answer that changes in between cannot redirect it)."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

# Cloud metadata services that are not link-local (Alibaba's; AWS's IPv6 one is ULA).
_METADATA = {ipaddress.ip_address("100.100.100.200"), ipaddress.ip_address("fd00:ec2::254")}


class UnsafeUrl(ValueError):
    """The URL may not receive webhooks; the message says why."""


@dataclass(frozen=True)
class Target:
    scheme: str  # https (http only when private addresses are allowed)
    host: str  # as written in the URL: for the Host header and TLS
    port: int
    path: str  # path and query
    address: str  # the checked IP address to connect to


def _internal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    for reason, test in (
        ("loopback", address.is_loopback),
        ("link-local (cloud metadata)", address.is_link_local),
        ("cloud metadata", address in _METADATA),
        ("private", address.is_private),
        ("multicast", address.is_multicast),
        ("unspecified", address.is_unspecified),
        ("reserved", address.is_reserved),
        ("shared (carrier-grade NAT)", address in ipaddress.ip_network("100.64.0.0/10")),
    ):
        if test:
            return reason
    return None


def resolve(url: str, allow_private: bool = False) -> Target:
    """Check ``url`` and resolve its host; UnsafeUrl naming the problem if it may not be
    used. ``allow_private`` (ENDPOINTS_ALLOW_PRIVATE) lifts both rules."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl(f"{url!r} is not a URL: {exc}") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UnsafeUrl(f"{url!r} is not an http(s) URL with a host")
    if parts.scheme != "https" and not allow_private:
        raise UnsafeUrl(f"{url!r} must use https")
    if parts.username or parts.password:
        raise UnsafeUrl("the URL must not carry a user name or password")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        found = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UnsafeUrl(f"{parts.hostname} does not resolve: {exc.strerror}") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in found]
    if not allow_private:
        for address in addresses:
            reason = _internal(address)
            if reason:
                raise UnsafeUrl(
                    f"{parts.hostname} resolves to {address}, a {reason} address"
                    " (ENDPOINTS_ALLOW_PRIVATE=true allows it)"
                )
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(parts.scheme, parts.hostname, port, path, str(addresses[0]))
