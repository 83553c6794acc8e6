"""The gateway actor: clients' msgpack frames in, actor messages out, on a non-blocking socket."""
from __future__ import annotations

import errno
import hmac
import itertools
import logging
import os
import socket
import time
from collections import deque
from dataclasses import dataclass, field

from thespian.actors import ActorExitRequest, ThespianWatch, WakeupMessage, WatchMessage

from foxden.actors.base import FoxdenActor
from foxden.protocols import wire
from foxden.protocols.errors import ErrorCode
from foxden.protocols.messages import (
    CloseGateway,
    Initialized,
    InitGateway,
    JobAnswer,
    StatusQuery,
    StatusReport,
    SubmitJob,
)

log = logging.getLogger("foxden.gateway")

FLUSH = "gateway-flush"
CLOSE_POLL = "gateway-close-poll"
CLOSE_WAIT_S = 3.0
RECV_CHUNK = 256 * 1024
MAX_CONNECTIONS = 1024
MAX_PENDING_PER_CONNECTION = 100_000
MAX_OUTBUF = 256 << 20  # a client that stops reading is cut off past this


@dataclass
class Conn:
    """One client connection (private to the gateway)."""

    cid: int
    fd: int
    sock: socket.socket
    decoder: wire.FrameDecoder
    authed: bool
    out: deque = field(default_factory=deque)
    out_bytes: int = 0
    pending: int = 0
    closing: bool = False


class GatewayActor(FoxdenActor):
    """Serves the client protocol without ever blocking the actor's loop.

    Thespian's ThespianWatch wakes this actor when a listening or client
    socket is readable; writes are non-blocking with a per-connection buffer
    flushed on the next wakeup. Nothing from a client is unpickled: frames
    are decoded by foxden.protocols.wire and turned into our own messages."""

    role = "gateway"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.listeners: dict[int, socket.socket] = {}
        self.conns: dict[int, Conn] = {}
        self.by_cid: dict[int, Conn] = {}
        self.cids = itertools.count(1)
        self.token: bytes | None = None
        self.dispatcher = None
        self.admin = None
        self.instance = ""
        self.max_frame = wire.MAX_FRAME
        self.flush_scheduled = False
        self.socket_path: str | None = None
        self.closer = None

    def receiveMessage(self, msg, sender):
        super().receiveMessage(msg, sender)
        # The watch list is replaced by every return value, so return it always.
        return ThespianWatch(list(self.listeners) + list(self.conns))

    # --- setup / teardown ------------------------------------------------------

    def receiveMsg_InitGateway(self, msg: InitGateway, sender) -> None:
        cfg = msg.config.daemon
        self.dispatcher, self.admin, self.instance = msg.dispatcher, msg.admin, msg.instance
        self.token = cfg.token.encode() if cfg.token else None
        try:
            self._listen_unix(str(cfg.socket))
            if cfg.tcp_port:
                self._listen_tcp(cfg.tcp_port)
        except OSError as exc:
            self._close_all()
            self.send(sender, Initialized("gateway", os.getpid(), {"error": str(exc)}))
            return
        self.send(sender, Initialized("gateway", os.getpid(), {"socket": self.socket_path, "tcp_port": cfg.tcp_port}))

    def _listen_unix(self, path: str) -> None:
        if os.path.exists(path):
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(path)
            except OSError:
                os.unlink(path)  # stale: nobody answers on it
            else:
                raise OSError(errno.EADDRINUSE, f"another daemon is serving {path}")
            finally:
                probe.close()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o077)  # owner-only: the socket is the daemon's front door
        try:
            sock.bind(path)
        finally:
            os.umask(old)
        sock.listen(128)
        sock.setblocking(False)
        self.listeners[sock.fileno()] = sock
        self.socket_path = path

    def _listen_tcp(self, port: int) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))  # loopback only, by design
        sock.listen(128)
        sock.setblocking(False)
        self.listeners[sock.fileno()] = sock

    def receiveMsg_CloseGateway(self, msg: CloseGateway, sender) -> None:
        """Stop accepting; close once every request has its reply (or after CLOSE_WAIT_S).

        The last answers come from the dispatcher, and this request from the
        daemon: Thespian orders messages per sender only, so answers sent
        before the drain finished may still be on their way here."""
        for sock in self.listeners.values():
            sock.close()
        self.listeners.clear()
        self.closer = (sender, time.monotonic() + CLOSE_WAIT_S)
        self._maybe_closed()

    def _maybe_closed(self) -> None:
        if self.closer is None:
            return
        sender, deadline = self.closer
        if any(c.pending > 0 for c in self.conns.values()) and time.monotonic() < deadline:
            self.wakeupAfter(0.02, payload=CLOSE_POLL)
            return
        self.closer = None
        self._flush_all(final=True)
        self._close_all()
        self.send(sender, Initialized("gateway-closed", os.getpid()))

    def receiveMsg_ActorExitRequest(self, msg: ActorExitRequest, sender) -> None:
        self._close_all()

    def _close_all(self) -> None:
        for sock in self.listeners.values():
            sock.close()
        self.listeners.clear()
        for conn in list(self.conns.values()):
            self._drop(conn)
        if self.socket_path:
            try:
                os.unlink(self.socket_path)
            except OSError:
                pass
            self.socket_path = None

    # --- reading ----------------------------------------------------------------

    def receiveMsg_WatchMessage(self, msg: WatchMessage, sender) -> None:
        for fd in msg.ready:
            if fd in self.listeners:
                self._accept(self.listeners[fd])
            elif fd in self.conns:
                self._read(self.conns[fd])

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("accept failed: %s", exc)
                return
            if len(self.conns) >= MAX_CONNECTIONS:
                sock.close()
                continue
            sock.setblocking(False)
            conn = Conn(next(self.cids), sock.fileno(), sock, wire.FrameDecoder(self.max_frame), authed=self.token is None)
            self.conns[conn.fd] = conn
            self.by_cid[conn.cid] = conn

    def _read(self, conn: Conn) -> None:
        while not conn.closing:
            try:
                data = conn.sock.recv(RECV_CHUNK)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self._drop(conn)
                return
            if not data:
                self._drop(conn)
                return
            try:
                items = conn.decoder.feed(data)
            except wire.ProtocolError as exc:
                items = [exc]
            for item in items:
                self._handle(conn, item)
                if conn.closing:
                    break
            if len(data) < RECV_CHUNK:
                break
        self._flush(conn)

    def _handle(self, conn: Conn, item) -> None:
        if isinstance(item, wire.ProtocolError):
            self._reply(conn, item.to_reply())
            # Before authentication a bad frame ends the connection: an
            # unauthenticated peer gets no second try at the parser.
            if item.fatal or not conn.authed:
                conn.closing = True
            return
        if isinstance(item, wire.Hello):
            if self.token is not None and not hmac.compare_digest((item.token or "").encode(), self.token):
                self._reply(conn, ErrorCode.UNAUTHORIZED.reply(None, "bad or missing token"))
                conn.closing = True
                return
            conn.authed = True
            self._reply(conn, wire.Welcome("foxden", wire.PROTOCOL_VERSION, self.instance))
            return
        if not conn.authed:
            self._reply(conn, ErrorCode.UNAUTHORIZED.reply(getattr(item, "rid", None),
                                                           "this daemon requires a hello frame with its token first"))
            conn.closing = True
            return
        if isinstance(item, wire.Submit):
            if conn.pending >= MAX_PENDING_PER_CONNECTION:
                self._reply(conn, ErrorCode.TOO_MANY_REQUESTS.reply(
                    item.rid, f"more than {MAX_PENDING_PER_CONNECTION} unanswered requests"))
                return
            conn.pending += 1
            self.send(self.dispatcher, SubmitJob(item.job, (conn.cid, item.rid)))
        elif isinstance(item, wire.StatusRequest):
            conn.pending += 1
            self.send(self.admin, StatusQuery((conn.cid, item.rid)))
        elif isinstance(item, wire.Ping):
            self._reply(conn, wire.Pong(item.rid))
        else:
            self._reply(conn, ErrorCode.UNKNOWN_TYPE.reply(getattr(item, "rid", None),
                                                           f"{type(item).__name__} is not a request a client may send"))

    # --- answers ------------------------------------------------------------------

    def receiveMsg_JobAnswer(self, msg: JobAnswer, sender) -> None:
        cid, rid = msg.tag
        self._deliver(cid, wire.Result(rid, msg.answer))

    def receiveMsg_StatusReport(self, msg: StatusReport, sender) -> None:
        cid, rid = msg.tag
        self._deliver(cid, wire.StatusReply(rid, msg.status))

    def _deliver(self, cid: int, reply) -> None:
        conn = self.by_cid.get(cid)
        if conn is None or conn.closing:
            return  # the client hung up; the job still had its one answer
        conn.pending -= 1
        self._reply(conn, reply)
        self._flush(conn)

    # --- writing ------------------------------------------------------------------

    def _reply(self, conn: Conn, reply) -> None:
        data = wire.encode(reply)
        conn.out.append(memoryview(data))
        conn.out_bytes += len(data)
        if conn.out_bytes > MAX_OUTBUF:
            log.warning("client %d does not read its answers; disconnecting", conn.cid)
            self._drop(conn)

    def _flush(self, conn: Conn) -> None:
        while conn.out:
            chunk = conn.out[0]
            try:
                sent = conn.sock.send(chunk)
            except (BlockingIOError, InterruptedError):
                self._schedule_flush()
                return
            except OSError:
                self._drop(conn)
                return
            conn.out_bytes -= sent
            if sent == len(chunk):
                conn.out.popleft()
            else:
                conn.out[0] = chunk[sent:]
        if conn.closing:
            self._drop(conn)

    def _flush_all(self, final: bool = False) -> None:
        for conn in list(self.conns.values()):
            if final:
                conn.sock.setblocking(True)
                conn.sock.settimeout(2.0)
            self._flush(conn)

    def _schedule_flush(self) -> None:
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.wakeupAfter(0.005, payload=FLUSH)

    def receiveMsg_WakeupMessage(self, msg: WakeupMessage, sender) -> None:
        if msg.payload == FLUSH:
            self.flush_scheduled = False
            self._flush_all()
        elif msg.payload == CLOSE_POLL:
            self._maybe_closed()

    def _drop(self, conn: Conn) -> None:
        conn.closing = True
        self.conns.pop(conn.fd, None)
        self.by_cid.pop(conn.cid, None)
        try:
            conn.sock.close()
        except OSError:
            pass
