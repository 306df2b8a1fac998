"""Where webhooks may be sent: ``http``/``https`` URLs whose host resolves to public addresses.

A URL that resolves to loopback, private, link-local, unspecified, multicast, shared
(carrier-grade NAT), reserved or documentation addresses is refused - when a subscription is
created or changed, and again before every delivery attempt, which then connects to the very
address it checked (so a DNS answer that changes between the check and the connection, "DNS
rebinding", cannot steer a delivery inside the network). IPv6 addresses that embed an IPv4
one (IPv4-mapped, NAT64, 6to4, Teredo) are judged by the address they embed too.

``allow_private`` (``TIERFLOW_WEBHOOKS_ALLOW_PRIVATE=true``) lifts the address rule, e.g. for
receivers on the same host in tests; the scheme rule stays.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from .errors import InputError

__all__ = [
    "MAX_URL_LENGTH",
    "Refused",
    "Resolver",
    "Target",
    "check_url",
    "refusal",
    "resolve",
    "system_resolver",
]

MAX_URL_LENGTH = 2000
Resolver = Callable[[str, int], list[str]]
"""host, port -> the addresses it resolves to (``socket.getaddrinfo`` by default)."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SHARED = ipaddress.ip_network("100.64.0.0/10")


class Refused(Exception):
    """A URL (or what it resolves to) that webhooks must not be sent to; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def refusal(address: IPAddress) -> str | None:
    """Why ``address`` is not a public one (``None`` when it is)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded: list[IPAddress] = []
        if address.ipv4_mapped is not None:
            embedded.append(address.ipv4_mapped)
        if address.sixtofour is not None:
            embedded.append(address.sixtofour)
        if address.teredo is not None:
            embedded.extend(address.teredo)
        if address in _NAT64:
            embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        for inner in embedded:
            why = refusal(inner)
            if why is not None:
                return f"{why}, embedded in {address}"
    checks = (
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (isinstance(address, ipaddress.IPv4Address) and address in _SHARED, "carrier-grade NAT"),
        (address.is_reserved, "reserved"),
        (address.is_private, "private"),
        (not address.is_global, "not globally routable"),
    )
    for bad, name in checks:
        if bad:
            return name
    return None


@dataclass(frozen=True, slots=True)
class Target:
    """A checked URL: its parts and the address to connect to."""

    url: str
    scheme: str
    host: str
    """The host as written (a name, or an address without brackets)."""
    port: int
    address: str
    """The checked address the connection goes to."""


def _split(url: str) -> tuple[SplitResult, str, int]:
    """(parts, host, port) of an acceptable URL, else :class:`Refused`."""
    if len(url) > MAX_URL_LENGTH:
        raise Refused(f"longer than {MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise Refused("must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Refused(f"not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise Refused(f"scheme {parts.scheme or '(none)'!r}: only http and https are delivered to")
    if parts.username is not None or parts.password is not None:
        raise Refused("must not carry credentials (user:password@): they would be stored as text")
    if parts.fragment:
        raise Refused("must not have a #fragment")
    host = parts.hostname or ""
    if not host:
        raise Refused("has no host")
    return parts, host, port or (443 if parts.scheme == "https" else 80)


def _literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def resolve(url: str, *, allow_private: bool, resolver: Resolver | None = None) -> Target:
    """Check ``url`` and pick the address to connect to; :class:`Refused` says why not.

    Every address the host resolves to must be public (a name with one private answer among
    public ones is refused: which one a connection gets is up to the resolver)."""
    parts, host, port = _split(url)
    literal = _literal(host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            addresses = (resolver or system_resolver)(host, port)
        except (OSError, UnicodeError) as exc:
            raise Refused(f"host {host!r} does not resolve ({exc})") from None
        if not addresses:
            raise Refused(f"host {host!r} does not resolve")
    if not allow_private:
        for a in addresses:
            why = refusal(ipaddress.ip_address(a.split("%")[0]))
            if why is not None:
                raise Refused(
                    f"host {host!r} resolves to {a} ({why}): webhooks go to public "
                    "addresses only (TIERFLOW_WEBHOOKS_ALLOW_PRIVATE=true lifts this)"
                )
    return Target(url=url, scheme=parts.scheme, host=host, port=port, address=addresses[0])


def check_url(url: str, *, allow_private: bool, resolver: Resolver | None = None) -> str:
    """``url`` when webhooks may be sent to it, else :class:`InputError` naming ``url``."""
    try:
        resolve(url, allow_private=allow_private, resolver=resolver)
    except Refused as exc:
        raise InputError("url", exc.reason) from None
    return url
