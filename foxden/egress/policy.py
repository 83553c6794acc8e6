"""The egress decision: may a job's browser connect to this host at this address (pure functions)."""
from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Reason", "Verdict", "EgressPolicy", "parse_rules", "judge_name", "judge_address",
           "normalize_host", "own_addresses"]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_PRIVATE = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"))
# One DNS label; a rule may start with "*." to match every name below a domain.
_LABEL = r"(?!-)[a-z0-9_-]{1,63}(?<!-)"
_NAME = re.compile(rf"^(\*\.)?{_LABEL}(\.{_LABEL})*$")


class Reason(enum.Enum):
    """Why a connection was allowed or refused; `allowed` says which."""

    PUBLIC = "a public address"
    ALLOWED_HOST = "allowed by [jobs] allow_hosts"
    OPEN = "[jobs] allow_private = true"
    DENIED_HOST = "denied by [jobs] deny_hosts"
    LOOPBACK = "a loopback address"
    PRIVATE = "a private address"
    LINK_LOCAL = "a link-local address"
    CGNAT = "a carrier-grade NAT address"
    MULTICAST = "a multicast address"
    UNSPECIFIED = "the unspecified address"
    RESERVED = "a reserved or non-global address"
    OWN_ADDRESS = "an address of this host"

    @property
    def allowed(self) -> bool:
        return self in (Reason.PUBLIC, Reason.ALLOWED_HOST, Reason.OPEN)


@dataclass(frozen=True)
class Verdict:
    """One decision: allowed or not, why, and about what (host or address) for messages."""

    reason: Reason
    subject: str

    @property
    def allowed(self) -> bool:
        return self.reason.allowed

    def __str__(self) -> str:
        return f"{self.subject} is {self.reason.value}"


@dataclass(frozen=True)
class EgressPolicy:
    """What a job's browser may connect to.

    `allow_private` off blocks every non-public address (and this host's own);
    the allow rules make exceptions to that; the deny rules win over both and
    apply even when allow_private is on."""

    allow_private: bool = True
    allow_nets: tuple[Network, ...] = ()
    allow_names: tuple[str, ...] = ()
    deny_nets: tuple[Network, ...] = ()
    deny_names: tuple[str, ...] = ()
    own: frozenset[Address] = frozenset()

    @classmethod
    def from_rules(cls, allow_private: bool, allow_hosts: Iterable[str] = (), deny_hosts: Iterable[str] = (),
                   own: Iterable[Address] = ()) -> EgressPolicy:
        allow_nets, allow_names = parse_rules(allow_hosts)
        deny_nets, deny_names = parse_rules(deny_hosts)
        return cls(allow_private, allow_nets, allow_names, deny_nets, deny_names, frozenset(own))

    @property
    def restricts(self) -> bool:
        """False when every connection is allowed, so nothing needs to stand in the way."""
        return not self.allow_private or bool(self.deny_nets or self.deny_names)


def parse_rules(entries: Iterable[str]) -> tuple[tuple[Network, ...], tuple[str, ...]]:
    """(networks, host-name patterns) from allow_hosts/deny_hosts entries; ValueError names a bad one.

    An entry is an address or CIDR ("10.0.0.0/8", "::1"), an exact host name
    ("api.example.com") or every name below a domain ("*.example.com")."""
    nets: list[Network] = []
    names: list[str] = []
    for entry in entries:
        if not isinstance(entry, str) or not entry.strip():
            raise ValueError(f"{entry!r} is not an address, CIDR or host name")
        text = entry.strip()
        if any(c.isdigit() for c in text[:1]) or ":" in text or "/" in text:
            try:
                nets.append(ipaddress.ip_network(text, strict=True))
                continue
            except ValueError as exc:
                if ":" in text or "/" in text:
                    raise ValueError(f"{entry!r} is not a valid address or CIDR ({exc})") from None
        name = normalize_host(text)
        if not _NAME.match(name) or name.rsplit(".", 1)[-1].isdigit():
            raise ValueError(f"{entry!r} is not an address, a CIDR, a host name or *.domain")
        names.append(name)
    return tuple(nets), tuple(names)


def normalize_host(host: str) -> str:
    """Lower case, without the brackets of an IPv6 literal or a trailing dot."""
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host[:-1] if host.endswith(".") else host


def _name_matches(host: str, patterns: tuple[str, ...]) -> bool:
    for pattern in patterns:
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]):
                return True
        elif host == pattern:
            return True
    return False


def judge_name(host: str, policy: EgressPolicy) -> Verdict | None:
    """The verdict a host name alone decides (deny or allow rules), or None: the address decides."""
    host = normalize_host(host)
    if _name_matches(host, policy.deny_names):
        return Verdict(Reason.DENIED_HOST, host)
    if _name_matches(host, policy.allow_names):
        return Verdict(Reason.ALLOWED_HOST, host)
    return None


def judge_address(host: str, address: Address, policy: EgressPolicy) -> Verdict:
    """May the browser connect to `address`, which `host` resolved to (or is)?

    Deny rules (name or network) win; then allow rules; then, unless
    allow_private is on, only a public unicast address that is not this
    host's own is allowed. IPv6 forms that carry an IPv4 address
    (mapped, 6to4, NAT64) are judged on that address too."""
    by_name = judge_name(host, policy)
    if by_name is not None and not by_name.allowed:
        return by_name
    # A mapped address is its IPv4 address; 6to4 and NAT64 ones reach theirs too.
    mapped = address.ipv4_mapped if address.version == 6 else None
    candidates = [mapped] if mapped is not None else [*_embedded(address), address]
    name = normalize_host(host)
    subject = str(address) if name == str(address) else f"{name} ({address})"
    if any(a in net for a in candidates for net in policy.deny_nets if a.version == net.version):
        return Verdict(Reason.DENIED_HOST, subject)
    if by_name is not None:
        return by_name
    if any(a in net for a in candidates for net in policy.allow_nets if a.version == net.version):
        return Verdict(Reason.ALLOWED_HOST, subject)
    if policy.allow_private:
        return Verdict(Reason.OPEN, subject)
    for a in candidates:
        reason = _category(a, policy.own)
        if reason is not Reason.PUBLIC:
            return Verdict(reason, subject)
    return Verdict(Reason.PUBLIC, subject)


def _embedded(address: Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address carries on to: 2002:AABB:CCDD::, 64:ff9b::a.b.c.d, Teredo."""
    if address.version != 6:
        return []
    found = [a for a in (address.sixtofour,) if a is not None]
    if address in _NAT64:
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if address.teredo is not None:
        found.append(address.teredo[1])
    return found


def _category(a: Address, own: frozenset[Address]) -> Reason:
    """The first blocked category `a` falls in, else PUBLIC."""
    if a.is_loopback:
        return Reason.LOOPBACK
    if a.is_unspecified:
        return Reason.UNSPECIFIED
    if a.is_link_local:
        return Reason.LINK_LOCAL
    if a.is_multicast:
        return Reason.MULTICAST
    if a.version == 4 and a in _CGNAT:
        return Reason.CGNAT
    if a in own:
        return Reason.OWN_ADDRESS
    if any(a in net for net in _PRIVATE if net.version == a.version):
        return Reason.PRIVATE
    if a.is_reserved or a.is_private or not a.is_global:  # documentation, benchmarking, 0/8, 240/4 and such
        return Reason.RESERVED
    return Reason.PUBLIC


def own_addresses() -> frozenset[Address]:
    """Every address of this host's interfaces (psutil), scope ids dropped."""
    import socket

    import psutil

    found: set[Address] = set()
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family in (socket.AF_INET, socket.AF_INET6):
                try:
                    found.add(ipaddress.ip_address(a.address.split("%", 1)[0]))
                except ValueError:
                    pass
    return frozenset(found)
