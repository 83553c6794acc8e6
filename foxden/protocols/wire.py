"""The client protocol: length-prefixed msgpack maps, decoded strictly into frozen dataclasses."""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Union

import msgpack

from foxden.protocols.errors import ErrorCode

PROTOCOL_VERSION = 1
# Inbound (client -> server) frames; enough for any sane job, small enough
# that a hostile client cannot make the gateway buffer much.
MAX_FRAME = 1 << 20
# Replies carry screenshots, so clients accept far larger frames.
MAX_REPLY_FRAME = 64 << 20

_HEADER = 4
_MAX_RID = (1 << 63) - 1
_MAX_URL = 8192
_MAX_NAME = 256
_MAX_SHOWN = 60
_MAX_OPTION_ITEMS = 100  # headers, cookies, block entries of one job


class ProtocolError(Exception):
    """A frame this side cannot accept; `fatal` means the connection must be closed.

    Codes (foxden.protocols.errors): bad_frame, unsupported_version,
    unknown_type, missing_field, bad_field, frame_too_large (the only fatal
    one: after a bad length prefix there is no way to find where the next
    frame starts)."""

    def __init__(self, code: ErrorCode | str, message: str, rid: int | None = None, fatal: bool = False):
        # A registered code or ValueError; stored as its plain str value, and
        # everything goes to Exception, so the error survives pickling across actors.
        code = ErrorCode(code).value
        super().__init__(code, message, rid, fatal)
        self.code = code
        self.message = message
        self.rid = rid
        self.fatal = fatal

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def to_reply(self) -> ErrorReply:
        """The "error" message that tells the peer about this error."""
        return ErrorReply(rid=self.rid, code=self.code, message=self.message)


# --- messages ----------------------------------------------------------------

@dataclass(frozen=True)
class Hello:
    """Client -> server, optional first frame: who is calling, and the token if
    the server requires one. The server answers Welcome (or "unauthorized")."""

    token: str | None = None
    client: str = ""


@dataclass(frozen=True)
class Welcome:
    """Server -> client: the answer to Hello; `instance` identifies this daemon run."""

    server: str
    protocol: int
    instance: str


@dataclass(frozen=True)
class JobRequest:
    """One page to load: `url`, then optionally wait for the CSS selector
    `wait_for`, evaluate the JavaScript `eval` and take a screenshot.

    `id` labels the answer (the daemon makes one up when absent); `session`
    names a browser context kept between jobs, `new_session` starts it afresh;
    `timeout_s` overrides the daemon's per-job timeout. The page options
    after `screenshot` (issue #14, docs/protocol.md) are checked for their
    types here and for their values by foxden.protocols.jobcheck."""

    url: str
    id: str | None = None
    eval: str | None = None
    wait_for: str | None = None
    timeout_s: float | None = None
    session: str | None = None
    new_session: bool = False
    screenshot: bool = False
    wait_until: str | None = None  # load (default) | domcontentloaded | networkidle | commit
    wait_for_function: str | None = None  # a JavaScript expression the job waits to be truthy
    headers: dict | None = None  # extra request headers, name -> value
    user_agent: str | None = None
    locale: str | None = None  # a BCP 47 tag: navigator.language and Accept-Language
    timezone: str | None = None  # an IANA name
    viewport: dict | None = None  # {width, height}
    cookies: tuple | None = None  # [{name, value, domain?, path?, url?, secure?, http_only?, same_site?, expires?}]
    block: tuple | None = None  # resource types and/or URL globs
    # {server, username?, password?} or a URL string; never in a repr (it may carry credentials)
    proxy: Any = dataclasses.field(default=None, repr=False)
    html: bool = False  # result.html: the serialized DOM after the waits
    full_page: bool = False  # the screenshot covers the whole page
    screenshot_selector: str | None = None  # the screenshot covers this element
    pdf: bool = False  # result.pdf (Chromium only)


@dataclass(frozen=True)
class Submit:
    """Client -> server: run `job`; exactly one Result (or ErrorReply) with `rid` follows."""

    rid: int
    job: JobRequest


@dataclass(frozen=True)
class ErrorInfo:
    """Why a job did not succeed: a stable machine-readable `code` and a message for people."""

    code: str
    message: str


@dataclass(frozen=True)
class PageResult:
    """What a successful job saw; `eval` is the JSON-like value of the job's
    script and `screenshot` a PNG, each only when the job asked for it;
    `blocked` lists requests of the page that the egress policy refused."""

    final_url: str
    http_status: int | None
    title: str
    content_length: int
    eval: Any = None
    screenshot: bytes | None = None
    blocked: tuple[str, ...] = ()  # URLs the egress policy refused while the page loaded (at most 100)
    html: str | None = None  # the serialized DOM after the waits, when the job asked for it (options.html)
    pdf: bytes | None = None  # the page as PDF, when the job asked for it (options.pdf, Chromium only)
    response_headers: dict | None = None  # the main document's response headers (lower-case names)


@dataclass(frozen=True)
class Answer:
    """The one terminal answer of a job: `result` when status is "ok", else `error`.

    `attempts` counts browser attempts (0 when rejected before any);
    `browser` is the one that ran the last attempt."""

    id: str
    status: Literal["ok", "failed", "timeout", "rejected"]
    error: ErrorInfo | None
    result: PageResult | None
    attempts: int
    browser: str | None
    elapsed_ms: float

    def to_json_dict(self) -> dict:
        """The answer as `--json` prints it; screenshot and pdf bytes are left out (they are not JSON)."""
        r = self.result
        return {
            "id": self.id,
            "status": self.status,
            "error": None if self.error is None else {"code": self.error.code, "message": self.error.message},
            "result": None if r is None else {
                "final_url": r.final_url,
                "http_status": r.http_status,
                "title": r.title,
                "content_length": r.content_length,
                "eval": r.eval,
                "blocked": list(r.blocked),
                "html": r.html,
                "response_headers": r.response_headers,
            },
            "attempts": self.attempts,
            "browser": self.browser,
            "elapsed_ms": self.elapsed_ms,
        }


@dataclass(frozen=True)
class Result:
    """Server -> client: the answer to the Submit with the same `rid`."""

    rid: int
    answer: Answer


@dataclass(frozen=True)
class StatusRequest:
    """Client -> server: ask for the daemon's status; a StatusReply follows."""

    rid: int


@dataclass(frozen=True)
class StatusReply:
    """Server -> client: the status document (as `foxden status --json` prints it)."""

    rid: int
    status: dict


@dataclass(frozen=True)
class Ping:
    """Client -> server: liveness check; a Pong with the same `rid` follows."""

    rid: int


@dataclass(frozen=True)
class Pong:
    """Server -> client: the answer to Ping."""

    rid: int


@dataclass(frozen=True)
class EndSession:
    """Client -> server: end `session` (close its browser context) after the jobs of it already
    submitted; a SessionEnded with `rid` follows."""

    rid: int
    session: str


@dataclass(frozen=True)
class SessionEnded:
    """Server -> client: the answer to EndSession; `existed` is False when the daemon held no such
    session (never opened, already ended or expired, or lost with its browser)."""

    rid: int
    session: str
    existed: bool


@dataclass(frozen=True)
class Lease:
    """Client -> server: lease one browser of its own (see docs/leases.md); a Leased with `rid`
    follows, or an error (too_many_leases, lease_held_back, lease_failed)."""

    rid: int
    engine: str | None = None  # default: the pool's engine
    ttl_s: float | None = None  # default: [leases] ttl_s; at most [leases] max_ttl_s
    idle_s: float | None = None  # default: [leases] idle_s; at most [leases] max_idle_s


@dataclass(frozen=True)
class Leased:
    """Server -> client: the answer to Lease. `endpoint` carries the lease's secret: keep it."""

    rid: int
    lease: str
    engine: str
    endpoint: str
    expires_at: float  # Unix time
    playwright_version: str | None = None  # Firefox and Camoufox: the client's Playwright must match it


@dataclass(frozen=True)
class EndLease:
    """Client -> server: end lease `lease` now (its browser is killed); a LeaseEnded with `rid` follows."""

    rid: int
    lease: str


@dataclass(frozen=True)
class LeaseEnded:
    """Server -> client: the answer to EndLease; `existed` is False when no such lease was live."""

    rid: int
    lease: str
    existed: bool


@dataclass(frozen=True)
class Cancel:
    """Client -> server: cancel every unanswered job whose answer id is `id` (its client id, or the
    daemon's key when it had none); a Cancelled with `rid` follows."""

    rid: int
    id: str


@dataclass(frozen=True)
class Cancelled:
    """Server -> client: the answer to Cancel; `found` is False when no job by that id was in flight
    (unknown, or already answered). Each cancelled job is answered failed/cancelled."""

    rid: int
    id: str
    found: bool


@dataclass(frozen=True)
class SessionExport:
    """Client -> server: the storage state of `session` (Playwright's storage-state JSON shape);
    a SessionState with `rid` follows."""

    rid: int
    session: str


@dataclass(frozen=True)
class SessionState:
    """Server -> client: the answer to SessionExport; `state` is nil when the daemon holds none
    for that session."""

    rid: int
    session: str
    state: dict | None = None


@dataclass(frozen=True)
class SessionImport:
    """Client -> server: the next job of `session` starts from `state` (Playwright's storage-state
    JSON shape); a SessionImported with `rid` follows."""

    rid: int
    session: str
    state: dict


@dataclass(frozen=True)
class SessionImported:
    """Server -> client: the answer to SessionImport."""

    rid: int
    session: str


@dataclass(frozen=True)
class ErrorReply:
    """Server -> client: a request could not be taken; `rid` is None when the
    offending frame had no usable rid. Codes are ProtocolError's plus "unauthorized"."""

    rid: int | None
    code: str
    message: str


Message = Union[Hello, Welcome, Submit, Result, StatusRequest, StatusReply, Ping, Pong, EndSession, SessionEnded,
                Lease, Leased, EndLease, LeaseEnded, Cancel, Cancelled, SessionExport, SessionState, SessionImport,
                SessionImported, ErrorReply]


# --- field checks ------------------------------------------------------------
# Each check takes (value, field path) and returns the value to store, or
# raises bad_field naming the path, e.g. "job.timeout_s".

_Check = Callable[[Any, str], Any]


def _show(value: Any) -> str:
    # Echo enough of the offending value to debug with, never a whole megabyte.
    if isinstance(value, (str, bytes)) and len(value) > _MAX_SHOWN:
        return repr(value[:_MAX_SHOWN]) + "..."
    if isinstance(value, (list, dict)):
        return f"a {'map' if isinstance(value, dict) else 'list'} of {len(value)} items"
    return repr(value)


def _bad(path: str, expected: str, value: Any) -> ProtocolError:
    return ProtocolError(ErrorCode.BAD_FIELD, f"{path}: expected {expected}, got {_show(value)}")


def _nullable(check: _Check) -> _Check:
    def nullable(value: Any, path: str) -> Any:
        return None if value is None else check(value, path)
    return nullable


def _text(value: Any, path: str) -> str:
    if type(value) is not str:
        raise _bad(path, "a string", value)
    return value


def _str(min_len: int, max_len: int) -> _Check:
    expected = f"a string of {min_len}..{max_len} characters"

    def check(value: Any, path: str) -> str:
        if type(value) is not str or not min_len <= len(value) <= max_len:
            raise _bad(path, expected, value)
        return value
    return check


def _int(lo: int, hi: int) -> _Check:
    expected = f"an integer in {lo}..{hi}"

    def check(value: Any, path: str) -> int:
        # `type(...) is int` rather than isinstance: True must not pass as 1.
        if type(value) is not int or not lo <= value <= hi:
            raise _bad(path, expected, value)
        return value
    return check


def _number(positive: bool) -> _Check:
    expected = "a finite number > 0" if positive else "a finite number >= 0"

    def check(value: Any, path: str) -> float:
        # JavaScript and friends send whole numbers as msgpack ints.
        if type(value) is not float and type(value) is not int:
            raise _bad(path, expected, value)
        number = float(value)
        if not math.isfinite(number) or number < 0 or (positive and number == 0):
            raise _bad(path, expected, value)
        return number
    return check


def _bool(value: Any, path: str) -> bool:
    if type(value) is not bool:
        raise _bad(path, "true or false", value)
    return value


def _bytes(value: Any, path: str) -> bytes:
    if type(value) is not bytes:
        raise _bad(path, "binary data", value)
    return value


def _one_of(*choices: str) -> _Check:
    expected = "one of " + ", ".join(map(repr, choices))

    def check(value: Any, path: str) -> str:
        if type(value) is not str or value not in choices:
            raise _bad(path, expected, value)
        return value
    return check


def _str_map(value: Any, path: str) -> dict:
    # strict_map_key lets bin keys through; a document for JSON needs str keys.
    if type(value) is not dict or not all(type(k) is str for k in value):
        raise _bad(path, "a map with string keys", value)
    return value


def _text_list(max_items: int, max_len: int) -> _Check:
    expected = f"a list of at most {max_items} strings of at most {max_len} characters"

    def check(value: Any, path: str) -> tuple[str, ...]:
        if type(value) not in (list, tuple) or len(value) > max_items or not all(
                type(v) is str and len(v) <= max_len for v in value):
            raise _bad(path, expected, value)
        return tuple(value)
    return check


def _anything(value: Any, path: str) -> Any:
    return value


def _text_map(max_items: int) -> _Check:
    expected = f"a map of at most {max_items} string keys to string values"

    def check(value: Any, path: str) -> dict:
        if type(value) is not dict or len(value) > max_items or not all(
                type(k) is str and type(v) is str for k, v in value.items()):
            raise _bad(path, expected, value)
        return value
    return check


def _record(required: dict[str, _Check], optional: dict[str, _Check]) -> _Check:
    """A map with these keys (no others), each value passing its check; kept as a plain dict."""
    def check(value: Any, path: str) -> dict:
        _str_map(value, path)
        for key in value:
            if key not in required and key not in optional:
                raise ProtocolError(ErrorCode.BAD_FIELD, f"{path}.{key}: unknown field")
        for key, key_check in required.items():
            if key not in value:
                raise ProtocolError(ErrorCode.MISSING_FIELD, f"{path}.{key}: required field is missing")
            key_check(value[key], f"{path}.{key}")
        for key, key_check in optional.items():
            if value.get(key) is not None:
                key_check(value[key], f"{path}.{key}")
        return value
    return check


def _list_of(check_item: _Check, max_items: int) -> _Check:
    def check(value: Any, path: str) -> tuple:
        if type(value) not in (list, tuple) or len(value) > max_items:
            raise _bad(path, f"a list of at most {max_items} items", value)
        return tuple(check_item(item, f"{path}[{i}]") for i, item in enumerate(value))
    return check


_VIEWPORT_FORM = _record({"width": _int(-(1 << 31), (1 << 31) - 1), "height": _int(-(1 << 31), (1 << 31) - 1)}, {})
_COOKIE_FORM = _record({"name": _text, "value": _text}, {
    "domain": _text, "path": _text, "url": _text, "secure": _bool, "http_only": _bool, "same_site": _text,
    "expires": _number(positive=False)})
_PROXY_MAP_FORM = _record({"server": _text}, {"username": _text, "password": _text})


def _proxy_form(value: Any, path: str) -> Any:
    # A URL string or a {server, username?, password?} map; jobcheck reads either.
    if type(value) is str:
        return value
    if type(value) is dict:
        return _PROXY_MAP_FORM(value, path)
    raise _bad(path, "a proxy URL string or a map {server, username?, password?}", value)


def _storage_state(value: Any, path: str) -> dict:
    from foxden.protocols.storage_state import BadState, check_state

    try:
        return check_state(value, path)
    except BadState as exc:
        raise ProtocolError(ErrorCode.BAD_FIELD, str(exc)) from None


# --- the table ---------------------------------------------------------------

_MISSING = dataclasses.MISSING
_ENVELOPE = ("v", "type")


@dataclass(frozen=True)
class _Spec:
    """How one dataclass goes on the wire: (name, default, check) per field."""

    cls: type
    fields: tuple[tuple[str, Any, _Check], ...]
    names: frozenset[str]
    post: Callable[[Any], None] | None


def _spec(cls: type, checks: dict[str, _Check], post: Callable[[Any], None] | None = None) -> _Spec:
    # Defaults come from the dataclass itself so the two cannot drift apart.
    fields = tuple((f.name, f.default, checks[f.name]) for f in dataclasses.fields(cls))
    return _Spec(cls, fields, frozenset(name for name, _, _ in fields), post)


def _from_map(spec: _Spec, m: dict, prefix: str, envelope: int) -> Any:
    """Build spec.cls from map `m`; `envelope` counts keys already accounted for ("v", "type")."""
    kwargs = {}
    for name, default, check in spec.fields:
        value = m.get(name, _MISSING)
        if value is _MISSING:
            if default is _MISSING:
                raise ProtocolError(ErrorCode.MISSING_FIELD, f"{prefix}{name}: required field is missing")
        else:
            kwargs[name] = check(value, prefix + name)
    if len(m) != len(kwargs) + envelope:
        unknown = next(k for k in m if k not in spec.names and not (envelope and k in _ENVELOPE))
        shown = unknown if type(unknown) is str else repr(unknown)
        raise ProtocolError(ErrorCode.BAD_FIELD, f"{prefix}{shown}: unknown field")
    obj = spec.cls(**kwargs)
    if spec.post is not None:
        spec.post(obj)
    return obj


def _nested(spec: _Spec) -> _Check:
    def check(value: Any, path: str) -> Any:
        if type(value) is not dict:
            raise _bad(path, "a map", value)
        return _from_map(spec, value, path + ".", 0)
    return check


def _answer_consistent(a: Answer) -> None:
    # Clients branch on status; a result without "ok" (or an "ok" without one)
    # would be a daemon bug, better caught at the boundary than in every client.
    if a.status == "ok":
        if a.result is None:
            raise ProtocolError(ErrorCode.BAD_FIELD, "answer.result: required when status is 'ok'")
        if a.error is not None:
            raise ProtocolError(ErrorCode.BAD_FIELD, "answer.error: must be nil when status is 'ok'")
    else:
        if a.error is None:
            raise ProtocolError(ErrorCode.BAD_FIELD, f"answer.error: required when status is {a.status!r}")
        if a.result is not None:
            raise ProtocolError(ErrorCode.BAD_FIELD, f"answer.result: must be nil when status is {a.status!r}")


_rid = _int(0, _MAX_RID)
_opt_text = _nullable(_text)
_name = _nullable(_str(1, _MAX_NAME))

_JOB = _spec(JobRequest, {
    "url": _str(1, _MAX_URL),
    "id": _name,
    "eval": _opt_text,
    "wait_for": _opt_text,
    "timeout_s": _nullable(_number(positive=True)),
    "session": _name,
    "new_session": _bool,
    "screenshot": _bool,
    "wait_until": _nullable(_str(1, _MAX_NAME)),
    "wait_for_function": _opt_text,
    "headers": _nullable(_text_map(_MAX_OPTION_ITEMS)),
    "user_agent": _nullable(_str(0, _MAX_URL)),
    "locale": _nullable(_str(0, _MAX_NAME)),
    "timezone": _nullable(_str(0, _MAX_NAME)),
    "viewport": _nullable(_VIEWPORT_FORM),
    "cookies": _nullable(_list_of(_COOKIE_FORM, _MAX_OPTION_ITEMS)),
    "block": _nullable(_text_list(_MAX_OPTION_ITEMS, _MAX_URL)),
    "proxy": _nullable(_proxy_form),
    "html": _bool,
    "full_page": _bool,
    "screenshot_selector": _opt_text,
    "pdf": _bool,
})
_ERROR_INFO = _spec(ErrorInfo, {"code": _text, "message": _text})
_PAGE_RESULT = _spec(PageResult, {
    "final_url": _text,
    "http_status": _nullable(_int(0, 999)),
    "title": _text,
    "content_length": _int(0, _MAX_RID),
    "eval": _anything,
    "screenshot": _nullable(_bytes),
    "blocked": _text_list(100, _MAX_URL),
    "html": _opt_text,
    "pdf": _nullable(_bytes),
    "response_headers": _nullable(_str_map),
})
_ANSWER = _spec(Answer, {
    "id": _text,
    "status": _one_of("ok", "failed", "timeout", "rejected"),
    "error": _nullable(_nested(_ERROR_INFO)),
    "result": _nullable(_nested(_PAGE_RESULT)),
    "attempts": _int(0, _MAX_RID),
    "browser": _opt_text,
    "elapsed_ms": _number(positive=False),
}, post=_answer_consistent)

# Wire "type" -> spec of the top-level message.
_MESSAGES: dict[str, _Spec] = {
    "hello": _spec(Hello, {"token": _opt_text, "client": _text}),
    "welcome": _spec(Welcome, {"server": _text, "protocol": _int(0, _MAX_RID), "instance": _text}),
    "submit": _spec(Submit, {"rid": _rid, "job": _nested(_JOB)}),
    "result": _spec(Result, {"rid": _rid, "answer": _nested(_ANSWER)}),
    "status": _spec(StatusRequest, {"rid": _rid}),
    "status_reply": _spec(StatusReply, {"rid": _rid, "status": _str_map}),
    "ping": _spec(Ping, {"rid": _rid}),
    "pong": _spec(Pong, {"rid": _rid}),
    "end_session": _spec(EndSession, {"rid": _rid, "session": _str(1, _MAX_NAME)}),
    "session_ended": _spec(SessionEnded, {"rid": _rid, "session": _text, "existed": _bool}),
    "cancel": _spec(Cancel, {"rid": _rid, "id": _str(1, _MAX_NAME)}),
    "cancelled": _spec(Cancelled, {"rid": _rid, "id": _text, "found": _bool}),
    "session_export": _spec(SessionExport, {"rid": _rid, "session": _str(1, _MAX_NAME)}),
    "session_state": _spec(SessionState, {"rid": _rid, "session": _text, "state": _nullable(_storage_state)}),
    "session_import": _spec(SessionImport, {"rid": _rid, "session": _str(1, _MAX_NAME), "state": _storage_state}),
    "session_imported": _spec(SessionImported, {"rid": _rid, "session": _text}),
    "error": _spec(ErrorReply, {"rid": _nullable(_rid), "code": _text, "message": _text}),
    "lease": _spec(Lease, {"rid": _rid, "engine": _nullable(_one_of("camoufox", "chromium", "firefox")),
                           "ttl_s": _nullable(_number(positive=True)), "idle_s": _nullable(_number(positive=True))}),
    "leased": _spec(Leased, {"rid": _rid, "lease": _text, "engine": _text, "endpoint": _text,
                             "expires_at": _number(positive=False), "playwright_version": _opt_text}),
    "end_lease": _spec(EndLease, {"rid": _rid, "lease": _str(1, _MAX_NAME)}),
    "lease_ended": _spec(LeaseEnded, {"rid": _rid, "lease": _text, "existed": _bool}),
}
_TYPE_OF = {spec.cls: name for name, spec in _MESSAGES.items()}
# Values of these types inside a message are encoded as nested maps.
_NESTED_SPECS = {spec.cls: spec for spec in (_JOB, _ERROR_INFO, _PAGE_RESULT, _ANSWER)}


# --- encoding ----------------------------------------------------------------

def _to_map(spec: _Spec, obj: Any, m: dict) -> dict:
    for name, default, _ in spec.fields:
        value = getattr(obj, name)
        # Fields left at their default are omitted: smaller frames, same meaning.
        if default is not _MISSING and type(value) is type(default) and value == default:
            continue
        nested = _NESTED_SPECS.get(type(value))
        m[name] = value if nested is None else _to_map(nested, value, {})
    return m


def encode(msg: Message) -> bytes:
    """One frame (length prefix and body) carrying `msg`."""
    wire_type = _TYPE_OF[type(msg)]
    body = msgpack.packb(_to_map(_MESSAGES[wire_type], msg, {"v": PROTOCOL_VERSION, "type": wire_type}),
                         use_bin_type=True)
    return len(body).to_bytes(_HEADER, "big") + body


# --- decoding ----------------------------------------------------------------

def _no_ext(code: int, data: bytes) -> Any:
    # Raised inside unpackb and reported as bad_frame like any other malformed body.
    raise ValueError(f"msgpack extension type {code} is not allowed")


def decode_body(body: bytes | bytearray | memoryview) -> Message:
    """The message in one frame body (without its length prefix); raises ProtocolError."""
    try:
        m = msgpack.unpackb(body, raw=False, strict_map_key=True, ext_hook=_no_ext)
    except ValueError as e:  # msgpack's errors, bad UTF-8 and _no_ext are all ValueErrors
        raise ProtocolError(ErrorCode.BAD_FRAME, f"not a msgpack value: {e or type(e).__name__}") from None
    if type(m) is not dict:
        raise ProtocolError(ErrorCode.BAD_FRAME, f"frame body must be a map, got {_show(m)}")
    rid = m.get("rid")
    if type(rid) is not int or not 0 <= rid <= _MAX_RID:
        rid = None
    try:
        v = m.get("v", _MISSING)
        if v is _MISSING:
            raise ProtocolError(ErrorCode.MISSING_FIELD, "v: required field is missing")
        if type(v) is not int:
            raise _bad("v", "an integer", v)
        if v != PROTOCOL_VERSION:
            raise ProtocolError(ErrorCode.UNSUPPORTED_VERSION,
                                f"v: protocol version {v} is not supported (this side speaks {PROTOCOL_VERSION})")
        wire_type = m.get("type", _MISSING)
        if wire_type is _MISSING:
            raise ProtocolError(ErrorCode.MISSING_FIELD, "type: required field is missing")
        if type(wire_type) is not str:
            raise _bad("type", "a string", wire_type)
        spec = _MESSAGES.get(wire_type)
        if spec is None:
            raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"type: unknown message type {_show(wire_type)}")
        return _from_map(spec, m, "", 2)
    except ProtocolError as e:
        if rid is None:
            raise
        raise ProtocolError(e.code, e.message, rid) from None


def _too_large(n: int, max_frame: int) -> ProtocolError:
    return ProtocolError(ErrorCode.FRAME_TOO_LARGE, f"frame of {n} bytes exceeds the limit of {max_frame}", fatal=True)


class FrameDecoder:
    """Splits a byte stream into messages, for non-blocking sockets.

    Bad frames come back inline as ProtocolErrors and decoding goes on with
    the next frame; an oversize length prefix is fatal, after which the
    decoder refuses all input."""

    def __init__(self, max_frame: int = MAX_FRAME):
        self.max_frame = max_frame
        self._buf = bytearray()
        self._fatal: ProtocolError | None = None

    def feed(self, data: bytes | bytearray | memoryview) -> list[Message | ProtocolError]:
        """Add received bytes; returns what the frames completed by them decode to, in order."""
        if self._fatal is not None:
            raise self._fatal
        buf = self._buf
        buf += data
        out: list[Message | ProtocolError] = []
        pos = 0
        end = len(buf)
        # The view avoids copying bodies; it must be released before the
        # bytearray is resized, hence the `with`.
        with memoryview(buf) as view:
            while end - pos >= _HEADER:
                n = int.from_bytes(view[pos:pos + _HEADER], "big")
                if n > self.max_frame:
                    # Checked on the header alone, so nothing of the frame is buffered.
                    self._fatal = _too_large(n, self.max_frame)
                    out.append(self._fatal)
                    break
                if end - pos - _HEADER < n:
                    break
                start = pos + _HEADER
                pos = start + n
                try:
                    out.append(decode_body(view[start:pos]))
                except ProtocolError as e:
                    # Returned, not raised: its traceback and context would pin
                    # the body's memoryview, and with it the buffer's size.
                    e.__traceback__ = e.__context__ = None
                    out.append(e)
        if self._fatal is not None:
            self._buf = bytearray()
        elif pos:
            del buf[:pos]
        return out

    def pending(self) -> int:
        """Bytes received but not yet part of a complete frame."""
        return len(self._buf)


def _recv_exactly(sock: Any, n: int, started: bool) -> bytearray:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:])
        if k == 0:
            if got or started:
                raise ConnectionError(f"connection closed mid-frame ({got} of {n} bytes)")
            raise ConnectionError("connection closed")
        got += k
    return buf


def read_frame(sock: Any, max_frame: int = MAX_REPLY_FRAME) -> Message:
    """Block until one whole frame has arrived on `sock` and return its message.

    Raises ConnectionError if the peer closes (before or within the frame),
    ProtocolError if the frame is bad."""
    n = int.from_bytes(_recv_exactly(sock, _HEADER, False), "big")
    if n > max_frame:
        raise _too_large(n, max_frame)
    return decode_body(_recv_exactly(sock, n, True))


def decode_job(m: Any, prefix: str = "") -> JobRequest:
    """A job map (as inside `submit`, or a batch line, or an HTTP body) checked by the wire's own table;
    raises ProtocolError naming the field (`prefix` + its name)."""
    if type(m) is not dict:
        raise _bad(prefix.rstrip(".") or "job", "a map", m)
    return _from_map(_JOB, m, prefix, 0)
