"""Malformed input on a raw gateway connection, and what the gateway must answer to each kind."""
from __future__ import annotations

import random
import socket
import struct

import msgpack

from foxden.chaos.context import Context
from foxden.client import job_request
from foxden.protocols import wire

__all__ = ["VARIANTS", "payload", "send_bad_frame"]

VARIANTS = ("random_bytes", "garbage_body", "bad_fields", "truncated", "oversize")


def payload(variant: str, rng: random.Random, site) -> tuple[bytes, str | None]:
    """The bytes of one bad input, and the error code a well-framed one must get back (None: no answer)."""
    if variant == "random_bytes":
        return rng.randbytes(rng.randrange(1, 64)), None
    if variant == "garbage_body":
        n = rng.randrange(1, 200)
        body = bytes([0xC1]) + rng.randbytes(n - 1)  # 0xc1 is never valid msgpack
        return struct.pack(">I", n) + body, "bad_frame"
    if variant == "bad_fields":
        body = msgpack.packb({"v": 1, "type": "submit", "rid": 7, "job": {"url": rng.randrange(100)}})
        return struct.pack(">I", len(body)) + body, "bad_field"
    if variant == "truncated":
        frame = wire.encode(wire.Submit(9, job_request(site.url("/page/1"), id="truncated")))
        return frame[: rng.randrange(1, len(frame))], None
    if variant == "oversize":
        return struct.pack(">I", rng.randrange(wire.MAX_FRAME + 1, 1 << 32)), "frame_too_large"
    raise ValueError(variant)


def _check_reply(ctx: Context, s: socket.socket, variant: str, expect: str) -> None:
    """The gateway answered with `expect`; after a recoverable error the same connection still serves."""
    reply = wire.read_frame(s)
    code = getattr(reply, "code", None)
    if code != expect:
        ctx.violation(f"chaos: gateway answered a {variant} frame with {reply!r}, expected {expect}")
    elif variant != "oversize":
        s.sendall(wire.encode(wire.Ping(42)))
        pong = wire.read_frame(s)
        if not isinstance(pong, wire.Pong):
            ctx.violation(f"chaos: after a {variant} frame the connection got {pong!r} for a ping")


def send_bad_frame(ctx: Context, variant: str, rng: random.Random) -> bool:
    """One malformed input on a raw connection; False if the connection could not be made."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(3)
    try:
        s.connect(str(ctx.daemon.config.daemon.socket))
    except OSError as exc:
        ctx.connection_errors.append(f"bad_frame connect: {exc}")
        s.close()
        return False
    expect = None
    try:
        data, expect = payload(variant, rng, ctx.site)
        s.sendall(data)
        if expect is not None:
            _check_reply(ctx, s, variant, expect)
    except OSError as exc:
        if expect is not None:
            ctx.violation(f"chaos: gateway connection failed after a {variant} frame: {exc}")
    finally:
        s.close()
    return True
