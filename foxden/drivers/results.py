"""Turning what a page gave into a job Outcome: the result, its encoded size, the error codes of each step."""
from __future__ import annotations

import datetime as _dt
import math

import msgpack

from foxden.protocols.errors import ErrorCode
from foxden.protocols.messages import Outcome
from foxden.protocols.wire import PageResult

__all__ = ["capped", "encoded_size", "failed", "first_line", "jsonable", "page_outcome", "step_code", "timed_out"]


def page_outcome(*, final_url: str, http_status: int | None, title, content_length, value, screenshot,
                 html: str | None = None, pdf: bytes | None = None, response_headers: dict | None = None) -> Outcome:
    """An "ok" Outcome carrying the page's result (its size is checked by capped(), in the actor)."""
    return Outcome("ok", result=PageResult(
        final_url=final_url,
        http_status=http_status,
        title=title if isinstance(title, str) else str(title),
        content_length=content_length if isinstance(content_length, int) else 0,
        eval=jsonable(value),
        screenshot=screenshot,
        html=html,
        pdf=pdf,
        response_headers=response_headers,
    ))


def encoded_size(result: PageResult) -> int:
    """Bytes the result's fields take in msgpack, as they would in the client's answer."""
    return len(msgpack.packb((result.final_url, result.http_status, result.title, result.content_length,
                              result.eval, result.screenshot, result.html, result.pdf, result.response_headers),
                             use_bin_type=True))


def capped(outcome: Outcome, max_bytes: int) -> Outcome:
    """`outcome`, or a "failed" result_too_large one if its result encodes to more than max_bytes.

    Measured in the browser actor, before the result is copied to any other process."""
    if outcome.result is None:
        return outcome
    size = encoded_size(outcome.result)
    if size <= max_bytes:
        return outcome
    return Outcome("failed", error=ErrorCode.RESULT_TOO_LARGE.error(
        f"the result is {size} bytes, more than {max_bytes} ([jobs] max_result_mb)"))


def failed(step: str, message) -> Outcome:
    """A "failed" Outcome for a failure at `step` of a job (the code says which step)."""
    return Outcome("failed", error=step_code(step, str(message)).error(f"{step}: {first_line(message)}"))


def timed_out(step: str, message) -> Outcome:
    """A "timeout" Outcome: the attempt's budget ran out at `step` (the browser is kept)."""
    return Outcome("timeout", error=ErrorCode.TIMEOUT.error(f"{step}: {first_line(message)}"))


def first_line(text) -> str:
    text = str(text).strip()
    return text.splitlines()[0] if text else "error"


def step_code(step: str, message: str) -> ErrorCode:
    """The answer's error code for a failure at `step` of a job."""
    if step == "navigate":
        return ErrorCode.NAVIGATION_FAILED
    if step == "eval":
        return ErrorCode.EVAL_ERROR
    if step == "wait_for_function":
        return ErrorCode.WAIT_FAILED
    if step == "wait_for":
        return ErrorCode.BAD_SELECTOR if "selector" in message.lower() else ErrorCode.WAIT_FAILED
    return ErrorCode.PAGE_ERROR


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
