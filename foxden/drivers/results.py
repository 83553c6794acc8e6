"""Turning what a page gave into a job Outcome: the result shape, its size limit, error codes."""
from __future__ import annotations

import datetime as _dt
import math

import msgpack

from foxden.protocols.messages import Outcome

# An answer must fit the client's frame limit (wire.MAX_REPLY_FRAME, 64 MiB)
# with room for the envelope; a page's eval value can be arbitrarily large.
MAX_RESULT_BYTES = 48 << 20


def page_outcome(*, final_url: str, http_status: int | None, title, content_length, value, screenshot) -> Outcome:
    """An "ok" Outcome carrying the page's result, or "failed" if it is too large to answer."""
    result = {
        "final_url": final_url,
        "http_status": http_status,
        "title": title if isinstance(title, str) else str(title),
        "content_length": content_length if isinstance(content_length, int) else 0,
        "eval": jsonable(value),
        "screenshot": screenshot,
    }
    size = len(msgpack.packb(result, use_bin_type=True))
    if size > MAX_RESULT_BYTES:
        return Outcome("failed", error=("result_too_large",
                                        f"the result is {size} bytes; at most {MAX_RESULT_BYTES} fit an answer"))
    return Outcome("ok", result=result)


def first_line(text) -> str:
    text = str(text).strip()
    return text.splitlines()[0] if text else "error"


def error_code(step: str, message: str) -> str:
    """The answer's error code for a failure at `step` of a job."""
    if step == "navigate":
        return "navigation_failed"
    if step == "eval":
        return "eval_error"
    if step == "wait_for":
        return "bad_selector" if "selector" in message.lower() else "wait_failed"
    return "page_error"


def jsonable(value):
    """Make an evaluated value safe for msgpack and JSON (dates, NaN, odd keys)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
