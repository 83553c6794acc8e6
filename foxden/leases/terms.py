"""A lease's terms and the decisions about it, from plain data (no clock, no process, no message)."""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from foxden.protocols.errors import ErrorCode
from foxden.protocols.exits import ExitReason

__all__ = ["LeaseRefused", "LeaseTerms", "admit", "decide_terms", "endpoint_url", "lease_verdict", "new_id",
           "new_secret"]


class LeaseRefused(Exception):
    """A lease request that cannot be granted: `code` (errors registry) and a message for people."""

    def __init__(self, code: ErrorCode, message: str):
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True)
class LeaseTerms:
    """How long a lease may live, and be left without a client (seconds)."""

    ttl_s: float
    idle_s: float


def decide_terms(leases: Any, ttl_s: float | None, idle_s: float | None) -> LeaseTerms:
    """The request's ttl and idle, or [leases]' defaults; above the configured bounds is refused, naming the field."""
    ttl = leases.ttl_s if ttl_s is None else ttl_s
    idle = leases.idle_s if idle_s is None else idle_s
    if ttl > leases.max_ttl_s:
        raise LeaseRefused(ErrorCode.BAD_FIELD, f"ttl_s: {ttl:g} is above [leases] max_ttl_s ({leases.max_ttl_s:g})")
    if idle > leases.max_idle_s:
        raise LeaseRefused(ErrorCode.BAD_FIELD,
                           f"idle_s: {idle:g} is above [leases] max_idle_s ({leases.max_idle_s:g})")
    return LeaseTerms(ttl, idle)


def admit(live_leases: int, max_leases: int, memory_hold: str | None) -> None:
    """Refuse one more lease when `max_leases` are live, or memory admission holds browsers back."""
    if live_leases >= max_leases:
        raise LeaseRefused(ErrorCode.TOO_MANY_LEASES,
                           f"{live_leases} browsers are leased, [leases] max is {max_leases}; end one or retry later")
    if memory_hold:
        raise LeaseRefused(ErrorCode.LEASE_HELD_BACK, f"no memory for one more browser ({memory_hold})")


def lease_verdict(now: float, expires: float, idle_for: float, idle_s: float) -> ExitReason | None:
    """Why a running lease ends at `now` (monotonic): past its expiry, or idle too long; else None."""
    if now >= expires:
        return ExitReason.LEASE_EXPIRED
    if idle_for >= idle_s:
        return ExitReason.LEASE_IDLE
    return None


def new_secret() -> str:
    """An unguessable path secret for one lease's endpoint (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def new_id() -> str:
    """A lease's public id (shown in status; it opens nothing)."""
    return "lease-" + secrets.token_hex(6)


def endpoint_url(host: str, port: int, secret: str) -> str:
    """The endpoint a client connects to."""
    shown = f"[{host}]" if ":" in host else host
    return f"ws://{shown}:{port}/{secret}"
