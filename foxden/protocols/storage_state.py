"""A session's storage state in Playwright's storage-state JSON shape: checked, normalised and measured."""
from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["MAX_STATE_BYTES", "EMPTY", "BadState", "check_state", "state_size", "too_large", "cookie_count"]

# What the dispatcher keeps per session at most (the state's compact JSON).
# Beyond it a snapshot is dropped with a log line and the session falls back
# to session_lost semantics; an imported state must fit a client frame
# (1 MiB, wire.MAX_FRAME) anyway.
MAX_STATE_BYTES = 1 << 20

# The state of a context nothing has run in yet.
EMPTY: dict = {"cookies": [], "origins": []}

_SAME_SITE = ("Strict", "Lax", "None")
_MAX_ITEMS = 10_000


class BadState(ValueError):
    """A storage state that is not Playwright's shape; the message names the field (`state.cookies[0].name`)."""


def _need(ok: bool, path: str, expected: str, value: Any) -> None:
    if not ok:
        shown = repr(value) if not isinstance(value, (dict, list)) else f"a {type(value).__name__}"
        raise BadState(f"{path}: expected {expected}, got {shown[:60]}")


def _string(m: dict, key: str, path: str, default: str | None = None) -> str:
    value = m.get(key, default)
    _need(isinstance(value, str), f"{path}.{key}", "a string", value)
    return value


def _cookie(c: Any, path: str) -> dict:
    _need(isinstance(c, dict), path, "a map", c)
    name, value = _string(c, "name", path), _string(c, "value", path)
    _need(bool(name), f"{path}.name", "a non-empty string", name)
    domain = _string(c, "domain", path)
    _need(bool(domain), f"{path}.domain", "a non-empty string", domain)
    cookie_path = _string(c, "path", path, "/")
    expires = c.get("expires", -1)
    _need(type(expires) in (int, float) and math.isfinite(expires) and (expires == -1 or expires >= 0),
          f"{path}.expires", "-1 (a session cookie) or a Unix time in seconds", expires)
    flags = {}
    for key in ("httpOnly", "secure"):
        flags[key] = c.get(key, False)
        _need(type(flags[key]) is bool, f"{path}.{key}", "true or false", flags[key])
    same_site = c.get("sameSite", "Lax")
    _need(same_site in _SAME_SITE, f"{path}.sameSite", "one of " + ", ".join(_SAME_SITE), same_site)
    return {"name": name, "value": value, "domain": domain, "path": cookie_path, "expires": expires,
            "httpOnly": flags["httpOnly"], "secure": flags["secure"], "sameSite": same_site}


def _origin(o: Any, path: str) -> dict:
    _need(isinstance(o, dict), path, "a map", o)
    origin = _string(o, "origin", path)
    _need(origin.startswith(("http://", "https://")) and origin.count("/") == 2,
          f"{path}.origin", "scheme://host[:port] (http or https, no path)", origin)
    items = o.get("localStorage", [])
    _need(isinstance(items, list) and len(items) <= _MAX_ITEMS, f"{path}.localStorage",
          f"a list of at most {_MAX_ITEMS} {{name, value}} maps", items)
    out = []
    for i, item in enumerate(items):
        where = f"{path}.localStorage[{i}]"
        _need(isinstance(item, dict), where, "a map", item)
        out.append({"name": _string(item, "name", where), "value": _string(item, "value", where)})
    return {"origin": origin, "localStorage": out}


def check_state(state: Any, path: str = "state") -> dict:
    """`state` checked and normalised to {"cookies": [...], "origins": [...]} (Playwright's field names).

    Unknown keys are ignored, as Playwright does (newer versions add some);
    raises BadState naming the first bad field."""
    _need(isinstance(state, dict), path, 'a map {"cookies": [...], "origins": [...]}', state)
    cookies, origins = state.get("cookies", []), state.get("origins", [])
    _need(isinstance(cookies, list) and len(cookies) <= _MAX_ITEMS, f"{path}.cookies",
          f"a list of at most {_MAX_ITEMS} cookies", cookies)
    _need(isinstance(origins, list) and len(origins) <= _MAX_ITEMS, f"{path}.origins",
          f"a list of at most {_MAX_ITEMS} origins", origins)
    return {"cookies": [_cookie(c, f"{path}.cookies[{i}]") for i, c in enumerate(cookies)],
            "origins": [_origin(o, f"{path}.origins[{i}]") for i, o in enumerate(origins)]}


def state_size(state: dict) -> int:
    """Bytes of the state's compact JSON (what a snapshot costs to keep)."""
    return len(json.dumps(state, separators=(",", ":"), ensure_ascii=False).encode())


def too_large(state: dict, limit: int = MAX_STATE_BYTES) -> str | None:
    """Why a snapshot is not kept (its size beyond `limit`), or None to keep it."""
    size = state_size(state)
    if size > limit:
        return f"its storage state is {size} bytes, above the {limit} kept per session"
    return None


def cookie_count(state: dict | None) -> int:
    """How many cookies a state holds (for logs: never the values)."""
    return len(state.get("cookies", ())) if state else 0
