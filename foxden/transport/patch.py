"""Thespian's TCP transport, patched in the daemon before anything is forked: sealed frames, no source loading."""
from __future__ import annotations

import os
import pickle

from foxden.transport import mac, unpickle
from foxden.transport.refusals import Refusal, SharedCounters, refused, use

__all__ = ["MAX_FRAME_BYTES", "MAX_HEADER_BYTES", "FrameRefused", "SealedSerializer", "bounded_receive_buffer",
           "install"]


class FrameRefused(pickle.UnpicklingError):
    """A frame that was not sealed with this instance's key; it was not unpickled."""


class SealedSerializer:
    """Thespian's `serializer` (dumps/loads): a pickle behind an HMAC-SHA256 tag.

    Thespian frames every message, and every ACK, as b"<length>>" + dumps(obj)
    (streamBuffer.toSendBuffer) and reads a complete frame back with loads
    (streamBuffer.ReceiveBuffer.completed), so sealing here covers every
    frame of every listener, in every process that inherits this module."""

    def __init__(self, key: bytes):
        self.key = key

    def dumps(self, obj) -> bytes:
        return mac.seal(self.key, pickle.dumps(obj, pickle.DEFAULT_PROTOCOL))

    def length_ok(self, size: int, head: bytes) -> bool:
        return mac.length_ok(self.key, size, head)

    def loads(self, frame: bytes):
        try:
            payload = mac.unseal(self.key, frame)
        except mac.BadTag as exc:
            _refuse(Refusal.MAC, f"a {len(frame)}-byte frame: {exc}")
        try:
            return unpickle.loads(payload)
        except unpickle.RefusedPickle as exc:
            refused(Refusal.PICKLE, f"{exc}; dropped, connection closed")
            raise


# Thespian reads a frame's length digits until ">" and then buffers as many
# bytes as they say, with no bound on either; these bound both before any
# byte is kept. The largest real frame is a job's answer (results are capped
# below 48 MiB).
MAX_HEADER_BYTES = 12
MAX_FRAME_BYTES = 128 << 20


def bounded_receive_buffer(base, length_ok=None):
    """Thespian's ReceiveBuffer, refusing a frame as soon as its header shows it is not one of ours.

    A length header over MAX_HEADER_BYTES or a length over MAX_FRAME_BYTES is
    refused (FRAME); with `length_ok(size, head)`, so is a frame whose first
    bytes are not its sealed length tag (MAC): a stranger's connection costs
    a few dozen bytes, never the body it announces."""

    class BoundedReceiveBuffer(base):
        _length_checked = False

        def addMore(self, buf):
            if self._size is None:
                head = self._buf + buf
                if b">" not in head[:MAX_HEADER_BYTES + 1] and len(head) > MAX_HEADER_BYTES:
                    _refuse(Refusal.FRAME, f"no frame length in the first {MAX_HEADER_BYTES} bytes")
            super().addMore(buf)
            if self._size is None:
                return
            if self._size > MAX_FRAME_BYTES:
                _refuse(Refusal.FRAME, f"a {self._size}-byte frame (at most {MAX_FRAME_BYTES})")
            if length_ok and not self._length_checked and len(self._buf) >= min(self._size, mac.LENGTH_TAG_BYTES):
                self._length_checked = True
                if not length_ok(self._size, self._buf):
                    _refuse(Refusal.MAC, f"a {self._size}-byte frame: its length tag does not match this "
                                         "instance's key")

    return BoundedReceiveBuffer


def _refuse(reason: Refusal, detail: str):
    refused(reason, f"{detail}; dropped, connection closed")
    raise FrameRefused(detail)


# The serializer the daemon installs; a benchmark may swap in its own before
# the daemon starts (bench/nomac.py), nothing else does.
SERIALIZER = SealedSerializer


def install(key: bytes, *, config=None, loopback_only: bool = True, bind: str | None = None) -> None:
    """Patch Thespian in this process, before the actor system starts (every actor process is forked from it)."""
    from thespian.system.transport import TCPTransport
    from thespian.system.transport.streamBuffer import ackDataErrPacket, ackPacket, toSendBuffer

    use(SharedCounters(), config)
    serializer = SERIALIZER(key)
    TCPTransport.serializer = serializer
    # The ACKs are frames too, built once at import with plain pickle.
    TCPTransport.ackMsg = toSendBuffer(ackPacket, serializer.dumps)
    TCPTransport.ackDataErrMsg = toSendBuffer(ackDataErrPacket, serializer.dumps)
    base = getattr(TCPTransport.ReceiveBuffer, "_foxden_base", TCPTransport.ReceiveBuffer)
    TCPTransport.ReceiveBuffer = bounded_receive_buffer(base, getattr(serializer, "length_ok", None))
    TCPTransport.ReceiveBuffer._foxden_base = base
    _guard_ack_path(TCPTransport.TCPTransport)
    _refuse_source_loading()
    unpickle.loads(pickle.dumps(None))  # compute the allow-list once, here, so every fork inherits it
    if bind is not None:  # a cluster node: its [cluster] bind (docs/cluster.md)
        _bind_to(bind)
    elif loopback_only:
        _bind_loopback()


def _guard_ack_path(transport_class) -> None:
    """A refused frame where a sender awaits its ACK is handled like a corrupted ACK, not raised.

    Thespian reads that ACK outside any try (TCPTransport._check_XMIT_4_done);
    whoever answers on a socket we opened (a process that took a dead
    actor's port) must not be able to end the sending process."""
    original = transport_class._check_XMIT_4_done
    if getattr(original, "_foxden_guarded", False):
        return

    def check_ack(self, intent, rcv):
        try:
            return original(self, intent, rcv)
        except (pickle.UnpicklingError, ValueError):  # ValueError: Thespian's own, for a bad length
            intent.backoffPause(True)
            intent.stage = self._XMITStepRetry
            return self._nextTransmitStep(intent)

    check_ack._foxden_guarded = True
    transport_class._check_XMIT_4_done = check_ack


_SOURCE_HANDLERS = ("h_RegisterSourceAuthority", "h_NotifyOnSourceAvailability", "h_ValidateSource",
                    "h_ValidatedSource", "h_SourceHashTransferRequest", "h_SourceHashTransferReply")


def _refuse_source_loading() -> None:
    """Thespian's admin loads and runs actor code sent to it (a zip); foxden never does.

    Those messages are not in the allow-list either; this holds even if one
    is sealed and allowed by mistake. (Thespian stops its admin when a
    handler returns None, as h_RegisterSourceAuthority does: ours return True.)"""
    from thespian.system.messages.admin import PendingActorResponse
    from thespian.system.systemAdmin import ThespianAdmin

    def refuse(self, envelope):
        refused(Refusal.SOURCE_LOADING, f"{type(envelope.message).__name__} from {envelope.sender}; "
                                        "foxden never loads actor sources")
        return True

    def no_source(self, source_hash, envelope):
        if not source_hash:
            return None  # the normal case: the actor's code is foxden's own, already importable
        refused(Refusal.SOURCE_LOADING, f"an actor to be created from source {source_hash!r}")
        self._sendPendingActorResponse(envelope, None, errorCode=PendingActorResponse.ERROR_Invalid_SourceHash)
        return True

    for name in _SOURCE_HANDLERS:
        setattr(ThespianAdmin, name, refuse)
    ThespianAdmin._get_source_for_hash = no_source


def _bind_loopback() -> None:
    """Bind every Thespian socket to 127.0.0.1, and hand out loopback addresses."""
    _bind_to("127.0.0.1")


def _bind_to(address: str) -> None:
    """Bind every Thespian socket to `address`, and hand out addresses on it (a cluster node's [cluster] bind)."""
    from thespian.system.transport import IPBase

    if getattr(IPBase.IPActorAddress, "_foxden_loopback", False):
        return
    os.environ["THESPIAN_BASE_IPADDR"] = address
    original = IPBase.IPActorAddress.__init__

    def bound_init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        if self.bindname and self.bindname[0] in ("", "0.0.0.0"):
            self.bindname = (address,) + tuple(self.bindname[1:])

    IPBase.IPActorAddress.__init__ = bound_init
    IPBase.IPActorAddress._foxden_loopback = True
