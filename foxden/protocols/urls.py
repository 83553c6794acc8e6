"""Which URLs a job may open: http(s) and about:blank, optionally no private targets."""
from __future__ import annotations

import dataclasses
import functools
import ipaddress
from urllib.parse import urlsplit

from foxden.egress.policy import EgressPolicy, Reason, Verdict, judge_address, judge_name
from foxden.protocols.errors import ErrorCode
from foxden.protocols.wire import ErrorInfo

__all__ = ["ALLOWED_SCHEMES", "check_url"]

ALLOWED_SCHEMES = frozenset({"http", "https"})


def check_url(url: str, jobs=None, *, allow_private: bool = True) -> ErrorInfo | None:
    """None if a job may open `url`, else why not (code and message); `jobs` is the [jobs] config, if any.

    Codes: "bad_url" (unparseable, no host), "unsupported_scheme" (file:,
    chrome:, view-source:, javascript:, data:, about: other than about:blank),
    "private_target" (a literal loopback/private/link-local address or
    localhost while allow_private is off), "blocked_target" (a host of
    [jobs] deny_hosts). This is an early, clear answer only: host names are
    not resolved here and browsers read URLs differently from Python, so the
    wall is the egress proxy (foxden.egress), which judges the address each
    connection is actually made to."""
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
    policy = _policy(jobs.allow_private, jobs.allow_hosts, jobs.deny_hosts) if jobs is not None \
        else _policy(allow_private, (), ())
    verdict = _judge(host, policy)
    if verdict is None or verdict.allowed:
        return None
    if verdict.reason is Reason.DENIED_HOST:
        return ErrorCode.BLOCKED_TARGET.error(f"{verdict}, refused")
    return ErrorCode.PRIVATE_TARGET.error(f"{verdict}, refused by [jobs] allow_private = false")


@functools.lru_cache(maxsize=8)
def _policy(allow_private: bool, allow_hosts: tuple[str, ...], deny_hosts: tuple[str, ...]) -> EgressPolicy:
    return EgressPolicy.from_rules(allow_private, allow_hosts, deny_hosts)


def _judge(host: str, policy: EgressPolicy) -> Verdict | None:
    """The verdict on a literal address or localhost name; None for a name only a lookup can judge."""
    try:
        return judge_address(host, ipaddress.ip_address(host), policy)
    except ValueError:
        pass
    by_name = judge_name(host, policy)
    if by_name is not None:
        return by_name
    if host == "localhost" or host.endswith(".localhost"):
        return dataclasses.replace(judge_address(host, ipaddress.ip_address("127.0.0.1"), policy), subject=host)
    return None
