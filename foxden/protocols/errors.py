"""Every error code foxden answers with, defined once: what it means and whose fault it is."""
from __future__ import annotations

import enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # wire imports this module; the constructors import wire when called
    from foxden.protocols.wire import ErrorInfo, ErrorReply

__all__ = ["ErrorCode", "Kind", "Where"]


class Kind(enum.Enum):
    """Whose fault an error is, which says what a caller should do about it."""

    CLIENT = "client"    # the request was wrong: fix it, sending it again as is fails again
    PAGE = "page"        # the target or the page failed: the daemon is fine
    TIMEOUT = "timeout"  # a deadline passed
    BUSY = "busy"        # a limit was reached: retry later
    DAEMON = "daemon"    # the daemon failed, lost something or is going away


class Where(enum.Enum):
    """Where a code appears on the wire (docs/protocol.md)."""

    FRAME = "error"    # an `error` frame: the request was not taken
    ANSWER = "answer"  # a job's answer, `error.code`
    HTTP = "http"      # an HTTP API error body, `{"error": {code, message}}` (docs/http.md)


_C, _P, _T, _B, _D = Kind.CLIENT, Kind.PAGE, Kind.TIMEOUT, Kind.BUSY, Kind.DAEMON
_F, _A, _H = Where.FRAME, Where.ANSWER, Where.HTTP


class ErrorCode(str, enum.Enum):
    """One error code: its wire value, its Kind, where it appears and what it means.

    The value (a plain str) is what goes on the wire and across actors; the
    enum itself never leaves a process (nothing pickles it)."""

    # --- frames (`error` replies) ----------------------------------------------------------
    BAD_FRAME = ("bad_frame", _C, _F, "body is not one msgpack value, or not a map")
    UNSUPPORTED_VERSION = ("unsupported_version", _C, _F, "`v` is not 1")
    UNKNOWN_TYPE = ("unknown_type", _C, _F, "`type` is unknown, or a type only the server sends")
    MISSING_FIELD = ("missing_field", _C, _F, "a required field is absent")
    BAD_FIELD = ("bad_field", _C, _F, "wrong type, out of range, or unknown key")
    FRAME_TOO_LARGE = ("frame_too_large", _C, _F, "the length prefix exceeds the limit; the connection is closed")
    UNAUTHORIZED = ("unauthorized", _C, _F, "token missing or wrong; the connection is closed")
    TOO_MANY_REQUESTS = ("too_many_requests", _B, _F,
                         "too many unanswered requests on this connection; retry later")
    UNKNOWN_SESSION = ("unknown_session", _C, _F, "`end_session` named a session that does not exist")
    TOO_MANY_LEASES = ("too_many_leases", _B, _F, "`[leases] max` browsers are leased; end one or retry later")
    LEASE_HELD_BACK = ("lease_held_back", _B, _F,
                       "memory admission: the box lacks the memory for one more browser; retry later")
    LEASE_FAILED = ("lease_failed", _D, _F, "the leased browser could not be started (the message says why)")
    HEADER_TIMEOUT = ("header_timeout", _C, _F,
                      "no complete request (or frame) within `[daemon] header_timeout_s`; the connection is closed")
    IDLE_TIMEOUT = ("idle_timeout", _C, _F,
                    "nothing in flight for `[daemon] idle_timeout_s`; the connection is closed")
    CONNECTION_SHED = ("connection_shed", _B, _F,
                       "closed to admit a newer connection at `[daemon] max_connections` (it had not completed a request)")
    TOO_MANY_CONNECTIONS = ("too_many_connections", _B, _F,
                            "`[daemon] max_connections` authenticated connections are open; retry later")
    # --- job answers: refused before any attempt ---------------------------------------------
    BAD_URL = ("bad_url", _C, _A, "the URL cannot be parsed or has no host")
    UNSUPPORTED_SCHEME = ("unsupported_scheme", _C, _A, "only `http`, `https` and `about:blank` may be opened")
    PRIVATE_TARGET = ("private_target", _C, _A,
                      "a loopback or private address, refused by `[jobs] allow_private = false`")
    BAD_INPUT = ("bad_input", _C, _A,
                 "a job option out of bounds (e.g. `timeout_s` above `[jobs] max_timeout_s`), or a bad batch line")
    UNSUPPORTED_OPTION = ("unsupported_option", _C, _A,
                          "the daemon's engine cannot do a job option (e.g. `pdf` on Firefox); the message names both")
    QUEUE_FULL = ("queue_full", _B, _A, "`[jobs] max_queue` jobs already wait; retry later")
    TOO_MANY_SESSIONS = ("too_many_sessions", _B, _A, "`[sessions] max` sessions are live; end one or retry later")
    SHUTTING_DOWN = ("shutting_down", _D, _A, "the daemon is stopping; the job did not run, or did not finish")
    NO_BROWSERS = ("no_browsers", _D, _A, "the supervisor gave up on the pool (restart intensity exceeded)")
    # --- job answers: the attempt ------------------------------------------------------------
    BLOCKED_TARGET = ("blocked_target", _C, _A, "the egress policy refused a navigation; the message names the URL")
    NAVIGATION_FAILED = ("navigation_failed", _P, _A, "the page could not be loaded (DNS, connection, TLS, ...)")
    BAD_SELECTOR = ("bad_selector", _C, _A, "`wait_for` is not a valid CSS selector")
    WAIT_FAILED = ("wait_failed", _P, _A, "waiting for `wait_for` failed")
    EVAL_ERROR = ("eval_error", _P, _A, "`eval` threw")
    PAGE_ERROR = ("page_error", _P, _A, "the page failed in another step (e.g. the screenshot)")
    RESULT_TOO_LARGE = ("result_too_large", _C, _A,
                        "the encoded result (eval value, title, screenshot) is above `[jobs] max_result_mb`")
    TIMEOUT = ("timeout", _T, _A, "the attempt overran its budget (the page was closed, or its browser killed)")
    QUEUE_TIMEOUT = ("queue_timeout", _T, _A, "no browser became free within `[jobs] queue_timeout_s`")
    BROWSER_CRASHED = ("browser_crashed", _D, _A, "the browser died during the job and its retries are spent")
    NODE_LOST = ("node_lost", _D, _A,
                 "the cluster node running the job stopped heartbeating (docs/cluster.md) and the retries are spent")
    SESSION_LOST = ("session_lost", _D, _A,
                    "the session's browser died; submit with `new_session` to start it afresh")
    SESSION_ENDED = ("session_ended", _C, _A,
                     "the session was ended by the client, or expired after `[sessions] idle_s`")
    CANCELLED = ("cancelled", _C, _A,
                 "a `cancel` request named the job; a running job's browser was replaced")
    INTERNAL_ERROR = ("internal_error", _D, _A, "a bug in foxden; the job was answered instead of lost")
    # --- HTTP API only (docs/http.md); the wire's own codes are used there too ----------------
    BAD_JSON = ("bad_json", _C, _H, "the request body is not one JSON object (or repeats a key)")
    BODY_TOO_LARGE = ("body_too_large", _C, _H, "the request body exceeds `[http] max_body_kb`")
    NOT_FOUND = ("not_found", _C, _H, "no such route or method, or no job with that id is kept (`[http] results_ttl_s`)")
    DUPLICATE_ID = ("duplicate_id", _C, _H, "a `?wait=false` job with this `id` is already kept")
    DAEMON_UNREACHABLE = ("daemon_unreachable", _D, _H, "the HTTP process cannot reach the daemon's socket; retry later")

    def __new__(cls, value: str, kind: Kind, where: Where, meaning: str):
        member = str.__new__(cls, value)
        member._value_ = value
        member.kind, member.where, member.meaning = kind, where, meaning
        return member

    def __str__(self) -> str:
        return self.value

    __format__ = str.__format__  # f"{code}" is its wire value on every Python version

    def error(self, message: str) -> "ErrorInfo":
        """This code with `message`, as a job answer's error."""
        from foxden.protocols.wire import ErrorInfo

        return ErrorInfo(self.value, message)

    def reply(self, rid: int | None, message: str) -> "ErrorReply":
        """This code with `message`, as an `error` frame about request `rid`."""
        from foxden.protocols.wire import ErrorReply

        return ErrorReply(rid, self.value, message)
