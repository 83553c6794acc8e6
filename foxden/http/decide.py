"""The HTTP layer's decisions as pure functions: status codes, readiness, authorization."""
from __future__ import annotations

import hmac

from foxden.protocols.errors import ErrorCode, Kind

__all__ = ["http_status", "readiness", "authorized"]

_BY_CODE = {
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.DUPLICATE_ID: 409,
    ErrorCode.BODY_TOO_LARGE: 413,
    ErrorCode.HEADER_TIMEOUT: 408,
    ErrorCode.FRAME_TOO_LARGE: 413,
}
_BY_KIND = {Kind.CLIENT: 400, Kind.PAGE: 502, Kind.TIMEOUT: 504, Kind.BUSY: 429, Kind.DAEMON: 503}


def http_status(code: str) -> int:
    """The HTTP status of an error body with `code` (a request that was not taken: never a job's answer)."""
    try:
        known = ErrorCode(code)
    except ValueError:
        return 502  # a code this build does not know came from the daemon
    return _BY_CODE.get(known, _BY_KIND[known.kind])


def readiness(status: dict, max_queue: int) -> str | None:
    """None when jobs can be served now, else the reason (for /readyz's 503)."""
    if status.get("draining"):
        return "shutting down"
    if status["pool"]["state"] == "failed":
        return "the pool has given up (restart intensity exceeded): jobs are answered no_browsers"
    depth = status["queue"]["depth"]
    if depth >= max_queue:
        return f"the queue is full ({depth} of [jobs] max_queue {max_queue})"
    return None


def authorized(header: str | None, token: str | None) -> bool:
    """Whether an Authorization header carries `token` (Bearer), compared in constant time; no token: yes."""
    if token is None:
        return True
    scheme, _, given = (header or "").partition(" ")
    # Both sides as bytes: compare_digest refuses non-ASCII str, and a header may carry anything.
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())
