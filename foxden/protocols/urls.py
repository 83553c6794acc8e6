"""Which URLs a job may open: http(s) and about:blank, optionally no private targets."""
from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from foxden.protocols.errors import ErrorCode
from foxden.protocols.wire import ErrorInfo

ALLOWED_SCHEMES = frozenset({"http", "https"})


def check_url(url: str, *, allow_private: bool = True) -> ErrorInfo | None:
    """None if a job may open `url`, else why not (code and message).

    Codes: "bad_url" (unparseable, no host), "unsupported_scheme" (file:,
    chrome:, view-source:, javascript:, data:, about: other than about:blank),
    "private_target" (loopback/private/link-local address while
    allow_private is off). Host names other than localhost are not resolved
    here: a DNS lookup would block the dispatcher, so deployments that need
    hard isolation should also filter at the network layer."""
    if url == "about:blank":
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        return ErrorCode.BAD_URL.error(f"cannot parse URL {url!r}: {exc}")
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        shown = f"{scheme}:" if scheme else "(none)"
        return ErrorCode.UNSUPPORTED_SCHEME.error(f"scheme {shown} is not allowed; only http, https and about:blank")
    if not host:
        return ErrorCode.BAD_URL.error(f"URL {url!r} has no host")
    if not allow_private and _is_private(host):
        return ErrorCode.PRIVATE_TARGET.error(
            f"{host} is a loopback or private address, refused by [jobs] allow_private = false")
    return None


def _is_private(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_reserved
