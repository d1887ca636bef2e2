"""Outbound HTTP that cannot be turned against the network Rapport runs in (SSRF).

Any URL that someone other than the operator typed (webhook receivers today) is vetted twice:
when it is stored (:func:`check_url`) and again when a request is sent (:func:`safe_post`). At
send time the host name is resolved once, every address it resolves to must be public, and the
connection goes to that vetted address (with the original ``Host`` header and TLS server name),
so a DNS answer that changes between the check and the connection (rebinding) cannot redirect the
request to an internal address. Redirects are never followed.

Refused: schemes other than http/https, user information in the authority, IP literals in
alternative notations (``2130706433``, ``0177.0.0.1``, ``0x7f.1``, ``127.1``), and every address
that is not globally routable unicast: loopback, private, link-local, CGNAT, multicast, reserved,
unspecified, benchmark and documentation ranges, IPv6 unique-local, and IPv6 forms that embed an
IPv4 address (mapped, 6to4, NAT64) when the embedded address is forbidden.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

from rapport.errors import InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_URL_LENGTH = 2048
TIMEOUT_SECONDS = 5.0


class OutboundRefused(InvalidInput):
    """The URL or the address it leads to may not be contacted."""

    slug, title = "outbound-url-refused", "Outbound URL refused"


def _getaddrinfo(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


# The resolver: tests replace it (no network in the test environment).
resolve_host: Callable[[str, int], list[str]] = _getaddrinfo

# Networks the operator explicitly allows despite the rules (e.g. an internal receiver), set from
# the RAPPORT_OUTBOUND_ALLOW_NETWORKS setting at start-up. Empty by default.
_allowed_networks: tuple[Network, ...] = ()


def set_allowed_networks(networks: Iterable[str]) -> None:
    global _allowed_networks
    _allowed_networks = tuple(ipaddress.ip_network(n, strict=False) for n in networks)


def forbidden_reason(ip: IPAddress) -> str | None:
    """Why ``ip`` may not be contacted, or None when it is public unicast (or allow-listed)."""
    if any(ip in net for net in _allowed_networks):
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is None and ip.teredo is not None:
            embedded = ip.teredo[1]
        if embedded is not None:
            inner = forbidden_reason(embedded)
            return f"embeds {embedded}, which {inner}" if inner else None
    for attr, label in (
        ("is_loopback", "is loopback"),
        ("is_link_local", "is link-local"),
        ("is_multicast", "is multicast"),
        ("is_unspecified", "is unspecified"),
        ("is_reserved", "is reserved"),
        ("is_private", "is private"),
    ):
        if getattr(ip, attr):
            return label
    if not ip.is_global:
        return "is not globally routable"
    return None


def _refuse(message: str) -> OutboundRefused:
    return OutboundRefused(
        f"url: {message}",
        errors=[{"loc": ["body", "url"], "field": "url", "message": message, "type": "outbound_url"}],
    )


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str
    host: str  # lower-case name or canonical IP text, without brackets
    port: int
    path: str  # path and query, at least "/"
    literal: IPAddress | None  # set when the URL names an address directly


def _literal(host: str) -> IPAddress | None:
    """The address a host names directly, refusing notations other than canonical ones."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    # inet_aton accepts what browsers and libc accept: 2130706433, 0177.0.0.1, 0x7f.1, 127.1.
    try:
        socket.inet_aton(host)
    except OSError:
        pass
    else:
        raise _refuse(f"{host!r} is an IP address in an alternative notation")
    if host.replace(".", "").isdigit():
        raise _refuse(f"{host!r} looks like an IP address but is not a valid one")
    return None


def parse(url: str) -> Target:
    """Syntax checks (no DNS): scheme, authority, IP literal notation and range."""
    if len(url) > MAX_URL_LENGTH:
        raise _refuse(f"longer than {MAX_URL_LENGTH} characters")
    if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in url) or "\\" in url:
        raise _refuse("contains whitespace, control characters or backslashes")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise _refuse(f"not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise _refuse("only http and https URLs are allowed")
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise _refuse("user information (user:password@) is not allowed in the URL")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise _refuse("has no host")
    if not host.isascii():
        raise _refuse("host must be ASCII (use the IDNA 'xn--' form)")
    literal = _literal(host)
    if literal is not None:
        reason = forbidden_reason(literal)
        if reason:
            raise _refuse(f"address {literal} {reason}")
    elif host == "localhost" or host.endswith((".localhost", ".local", ".internal", ".localdomain")):
        raise _refuse(f"host {host!r} is a local name")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(scheme, host, port or _DEFAULT_PORTS[scheme], path, literal)


def vet(url: str) -> tuple[Target, IPAddress]:
    """Parse, resolve and check every address; returns the target and the address to connect to."""
    target = parse(url)
    if target.literal is not None:
        return target, target.literal
    try:
        answers = resolve_host(target.host, target.port)
    except (OSError, UnicodeError) as exc:
        raise _refuse(f"host {target.host!r} does not resolve ({exc})") from None
    addresses: list[IPAddress] = []
    for answer in answers:
        ip = ipaddress.ip_address(answer.split("%", 1)[0])
        reason = forbidden_reason(ip)
        if reason:
            # One bad answer is enough: a client picking another answer later must not reach it.
            raise _refuse(f"host {target.host!r} resolves to {ip}, which {reason}")
        addresses.append(ip)
    if not addresses:
        raise _refuse(f"host {target.host!r} has no address")
    return target, addresses[0]


def check_url(url: str) -> None:
    """Raise :class:`OutboundRefused` unless ``url`` may be contacted right now."""
    vet(url)


def _pinned_url(target: Target, ip: IPAddress) -> str:
    host = f"[{ip}]" if isinstance(ip, ipaddress.IPv6Address) else str(ip)
    netloc = host if target.port == _DEFAULT_PORTS[target.scheme] else f"{host}:{target.port}"
    path, _, query = target.path.partition("?")
    return urlunsplit((target.scheme, netloc, path, query, ""))


def _host_header(target: Target) -> str:
    host = f"[{target.host}]" if ":" in target.host else target.host
    return host if target.port == _DEFAULT_PORTS[target.scheme] else f"{host}:{target.port}"


# Tests hand in an httpx transport (there is no network); production uses the default one.
default_transport: httpx.BaseTransport | None = None


def safe_post(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    timeout: float = TIMEOUT_SECONDS,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Response:
    """POST ``body`` to ``url`` after vetting it again, connecting to the vetted address only.

    Redirects are returned, not followed: a receiver cannot bounce the request somewhere else.
    """
    target, ip = vet(url)
    send_headers = {k: v for k, v in headers.items() if k.lower() != "host"}
    send_headers["Host"] = _host_header(target)
    extensions = {"sni_hostname": target.host} if target.scheme == "https" and target.literal is None else {}
    with httpx.Client(
        transport=transport or default_transport,
        follow_redirects=False,
        timeout=timeout,
        trust_env=False,  # a proxy from the environment would do its own, unchecked resolution
    ) as client:
        request = client.build_request(
            "POST", _pinned_url(target, ip), content=body, headers=send_headers, extensions=extensions
        )
        return client.send(request)
