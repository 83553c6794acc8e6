"""The gateway actor: clients' msgpack frames in, actor messages out, on a non-blocking socket."""
from __future__ import annotations

import errno
import hmac
import itertools
import logging
import os
import resource
import socket
import time
from collections import Counter, deque
from dataclasses import dataclass, field

from thespian.actors import ActorExitRequest, ThespianWatch, WakeupMessage, WatchMessage

from foxden import fsafety
from foxden.actors.base import FoxdenActor
from foxden.protocols import wire
from foxden.protocols.errors import ErrorCode
from foxden.protocols.messages import (
    CancelAnswer,
    CancelRequest,
    CloseGateway,
    EndLeaseRequest,
    EndSessionRequest,
    Initialized,
    InitGateway,
    JobAnswer,
    LeaseAnswer,
    LeaseEndAnswer,
    LeaseRequest,
    SessionEndAnswer,
    SessionStateAnswer,
    SessionStateRequest,
    StatusQuery,
    StatusReport,
    SubmitJob,
)

log = logging.getLogger("foxden.gateway")

FLUSH = "gateway-flush"
CLOSE_POLL = "gateway-close-poll"
SWEEP = "gateway-sweep"
STATUS_TAG = "gateway-status"
CLOSE_WAIT_S = 3.0
RECV_CHUNK = 256 * 1024
MAX_OUTBUF = 256 << 20  # a client that stops reading is cut off past this
# What a connection that has not said hello (to a daemon with a token) may
# have buffered: a hello is a few hundred bytes, so 1,024 strangers cost at
# most 16 MiB instead of 1 GiB of half-sent 1 MiB frames.
UNAUTH_MAX_BUFFER = 16 << 10
FDS_SPARE = 64  # descriptors kept for Thespian's own sockets beside the clients'


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
    opened: float = field(default_factory=time.monotonic)
    last_active: float = field(default_factory=time.monotonic)
    frame_started: float | None = None  # when the frame now half-received began
    greeted: bool = False  # has sent a valid frame (and its token, if one is required)


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
        self.supervisor = None  # lease requests go to it
        self.instance = ""
        self.max_frame = wire.MAX_FRAME
        self.flush_scheduled = False
        self.socket_path: str | None = None
        self.closer = None
        self.limits = None  # [daemon] config: connection caps and deadlines
        self.max_connections = 0
        self.status_waiters: list[tuple[int, int]] = []  # (cid, rid) of status requests awaiting one query
        self.closed_by: Counter = Counter()  # connections closed by a limit, by code (logged per sweep)

    def receiveMessage(self, msg, sender):
        super().receiveMessage(msg, sender)
        # The watch list is replaced by every return value, so return it always.
        return ThespianWatch(list(self.listeners) + list(self.conns))

    # --- setup / teardown ------------------------------------------------------

    def receiveMsg_InitGateway(self, msg: InitGateway, sender) -> None:
        cfg = msg.config.daemon
        self.dispatcher, self.admin, self.instance = msg.dispatcher, msg.admin, msg.instance
        self.supervisor = msg.supervisor
        self.token = cfg.token.encode() if cfg.token else None
        self.limits = cfg
        self.max_connections = _fd_budget(cfg.max_connections)
        try:
            self._listen_unix(str(cfg.socket))
            if cfg.tcp_port:
                self._listen_tcp(cfg.tcp_port)
        except (OSError, fsafety.UnsafePath) as exc:
            self._close_all()
            self.send(sender, Initialized("gateway", os.getpid(), {"error": str(exc)}))
            return
        self.wakeupAfter(self._sweep_every(), payload=SWEEP)
        self.send(sender, Initialized("gateway", os.getpid(), {"socket": self.socket_path, "tcp_port": cfg.tcp_port}))

    def _listen_unix(self, path: str) -> None:
        fsafety.check_socket_path(path)  # a stale entry is removed only if it is a socket of ours
        if os.path.lexists(path):
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
            if len(self.conns) >= self.max_connections and not self._shed_one():
                self._refuse(sock)
                continue
            sock.setblocking(False)
            conn = Conn(next(self.cids), sock.fileno(), sock, wire.FrameDecoder(self.max_frame), authed=self.token is None)
            self.conns[conn.fd] = conn
            self.by_cid[conn.cid] = conn

    def _shed_one(self) -> bool:
        """Close the oldest connection that has not greeted us, to admit a newcomer; False if none.

        A greeted (authenticated) connection is never closed for a newcomer."""
        strangers = [c for c in self.conns.values() if not c.greeted and not c.closing]
        if not strangers:
            return False
        self._end(min(strangers, key=lambda c: c.opened), ErrorCode.CONNECTION_SHED,
                  f"closed to admit a newer connection: {self.max_connections} connections is the limit "
                  "([daemon] max_connections) and this one had not completed a request")
        return True

    def _refuse(self, sock: socket.socket) -> None:
        """Tell a newcomer there is no room (every connection is authenticated), and close it."""
        self.closed_by[ErrorCode.TOO_MANY_CONNECTIONS.value] += 1
        try:
            sock.setblocking(False)
            sock.send(wire.encode(ErrorCode.TOO_MANY_CONNECTIONS.reply(
                None, f"{self.max_connections} authenticated connections are open "
                "([daemon] max_connections); retry later")))
        except OSError:
            pass
        sock.close()

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
            self._note_progress(conn, bool(items))
            if len(data) < RECV_CHUNK:
                break
        self._flush(conn)

    def _note_progress(self, conn: Conn, decoded: bool) -> None:
        """Restart the frame clock when a frame was completed; bound what a stranger may buffer."""
        now = time.monotonic()
        conn.last_active = now
        if not conn.decoder.pending():
            conn.frame_started = None
        elif decoded or conn.frame_started is None:
            conn.frame_started = now
        if not conn.authed and not conn.closing and conn.decoder.pending() > UNAUTH_MAX_BUFFER:
            self._end(conn, ErrorCode.FRAME_TOO_LARGE, f"more than {UNAUTH_MAX_BUFFER} bytes sent before the hello frame")

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
            conn.authed = conn.greeted = True
            self._reply(conn, wire.Welcome("foxden", wire.PROTOCOL_VERSION, self.instance))
            return
        if not conn.authed:
            self._reply(conn, ErrorCode.UNAUTHORIZED.reply(getattr(item, "rid", None),
                                                           "this daemon requires a hello frame with its token first"))
            conn.closing = True
            return
        conn.greeted = True
        if isinstance(item, (wire.Submit, wire.StatusRequest, wire.EndSession, wire.Lease, wire.EndLease, wire.Cancel,
                             wire.SessionExport, wire.SessionImport)):
            self._take(conn, item)
        elif isinstance(item, wire.Ping):
            self._reply(conn, wire.Pong(item.rid))
        else:
            self._reply(conn, ErrorCode.UNKNOWN_TYPE.reply(getattr(item, "rid", None),
                                                           f"{type(item).__name__} is not a request a client may send"))

    def _take(self, conn: Conn, item) -> None:
        """Pass a request on, unless the connection already has its fill of unanswered ones."""
        limit = self.limits.max_inflight_per_connection
        if conn.pending >= limit:
            self._reply(conn, ErrorCode.TOO_MANY_REQUESTS.reply(
                item.rid, f"{limit} requests of this connection are unanswered "
                "([daemon] max_inflight_per_connection); wait for answers first"))
            return
        conn.pending += 1
        tag = (conn.cid, item.rid)
        if isinstance(item, wire.Submit):
            self.send(self.dispatcher, SubmitJob(item.job, tag))
        elif isinstance(item, wire.EndSession):
            self.send(self.dispatcher, EndSessionRequest(item.session, tag))
        elif isinstance(item, wire.Lease):
            self.send(self.supervisor, LeaseRequest(tag, item.engine, item.ttl_s, item.idle_s))
        elif isinstance(item, wire.EndLease):
            self.send(self.supervisor, EndLeaseRequest(tag, item.lease))
        elif isinstance(item, wire.Cancel):
            self.send(self.dispatcher, CancelRequest(item.id, tag))
        elif isinstance(item, (wire.SessionExport, wire.SessionImport)):
            self.send(self.dispatcher, SessionStateRequest(item.session, tag, getattr(item, "state", None)))
        else:
            # One status query at a time for all connections: requests that
            # arrive while it runs share its answer (a snapshot and a /proc
            # walk each, 300 pipelined requests were 300 of both).
            self.status_waiters.append(tag)
            if len(self.status_waiters) == 1:
                self.send(self.admin, StatusQuery(STATUS_TAG))

    # --- answers ------------------------------------------------------------------

    def receiveMsg_JobAnswer(self, msg: JobAnswer, sender) -> None:
        cid, rid = msg.tag
        self._deliver(cid, wire.Result(rid, msg.answer))

    def receiveMsg_StatusReport(self, msg: StatusReport, sender) -> None:
        waiters, self.status_waiters = self.status_waiters, []
        for cid, rid in waiters:
            self._deliver(cid, wire.StatusReply(rid, msg.status))

    def receiveMsg_SessionEndAnswer(self, msg: SessionEndAnswer, sender) -> None:
        cid, rid = msg.tag
        if msg.error is not None:
            self._deliver(cid, wire.ErrorReply(rid, msg.error.code, msg.error.message))
        else:
            self._deliver(cid, wire.SessionEnded(rid, msg.session, msg.existed))

    def receiveMsg_LeaseAnswer(self, msg: LeaseAnswer, sender) -> None:
        cid, rid = msg.tag
        if msg.error is not None:
            self._deliver(cid, wire.ErrorReply(rid, msg.error.code, msg.error.message))
        else:
            self._deliver(cid, wire.Leased(rid, **msg.info))

    def receiveMsg_LeaseEndAnswer(self, msg: LeaseEndAnswer, sender) -> None:
        cid, rid = msg.tag
        self._deliver(cid, wire.LeaseEnded(rid, msg.lease, msg.existed))

    def receiveMsg_CancelAnswer(self, msg: CancelAnswer, sender) -> None:
        cid, rid = msg.tag
        self._deliver(cid, wire.Cancelled(rid, msg.id, msg.count > 0))

    def receiveMsg_SessionStateAnswer(self, msg: SessionStateAnswer, sender) -> None:
        cid, rid = msg.tag
        if msg.error is not None:
            self._deliver(cid, wire.ErrorReply(rid, msg.error.code, msg.error.message))
        elif msg.imported:
            self._deliver(cid, wire.SessionImported(rid, msg.session))
        else:
            self._deliver(cid, wire.SessionState(rid, msg.session, msg.state))

    def _deliver(self, cid: int, reply) -> None:
        conn = self.by_cid.get(cid)
        if conn is None or conn.closing:
            return  # the client hung up; the job still had its one answer
        conn.pending -= 1
        conn.last_active = time.monotonic()
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
        elif msg.payload == SWEEP and self.listeners:
            self._sweep(time.monotonic())
            self.wakeupAfter(self._sweep_every(), payload=SWEEP)

    # --- deadlines ------------------------------------------------------------------

    def _sweep_every(self) -> float:
        return min(1.0, max(0.05, min(self.limits.header_timeout_s, self.limits.idle_timeout_s) / 4))

    def _sweep(self, now: float) -> None:
        """Close connections past a deadline (see overdue); log how many each limit closed."""
        for conn in list(self.conns.values()):
            late = overdue(conn, now, self.limits)
            if late is not None:
                self._end(conn, *late)
        if self.closed_by:
            log.info("closed connections: %s", ", ".join(f"{n} {code}" for code, n in sorted(self.closed_by.items())))
            self.closed_by.clear()

    def _end(self, conn: Conn, code: ErrorCode, message: str) -> None:
        """Close a connection for a limit, telling the client which one (it may not be reading)."""
        self.closed_by[code.value] += 1
        self._reply(conn, code.reply(None, message))
        conn.closing = True
        self._flush(conn)
        if self.conns.get(conn.fd) is conn:
            self._drop(conn)  # its socket buffer is full: it gets no last word, and holds nothing

    def _drop(self, conn: Conn) -> None:
        conn.closing = True
        self.conns.pop(conn.fd, None)
        self.by_cid.pop(conn.cid, None)
        try:
            conn.sock.close()
        except OSError:
            pass


def overdue(conn: Conn, now: float, limits) -> tuple[ErrorCode, str] | None:
    """(code, message) if conn is past a deadline of `limits` ([daemon] config), else None.

    A connection must greet (say hello with the token, or send a first valid
    frame) and complete each frame within header_timeout_s; one that has
    greeted and has nothing in flight may idle for idle_timeout_s."""
    header, idle = limits.header_timeout_s, limits.idle_timeout_s
    if conn.closing:
        return None
    if not conn.greeted and now - conn.opened > header:
        return ErrorCode.HEADER_TIMEOUT, f"no complete request within {header:g}s of connecting ([daemon] header_timeout_s)"
    if conn.frame_started is not None and now - conn.frame_started > header:
        return ErrorCode.HEADER_TIMEOUT, f"a frame was not completed within {header:g}s ([daemon] header_timeout_s)"
    if conn.greeted and conn.pending == 0 and conn.frame_started is None and now - conn.last_active > idle:
        return ErrorCode.IDLE_TIMEOUT, f"idle for {idle:g}s with nothing in flight ([daemon] idle_timeout_s)"
    return None


def _fd_budget(wanted: int) -> int:
    """Raise this process's descriptor limit to fit `wanted` connections where it can; the cap that fits."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = wanted + FDS_SPARE
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft != resource.RLIM_INFINITY and soft < need:
        log.warning("[daemon] max_connections %d does not fit the descriptor limit %d: serving at most %d",
                    wanted, soft, max(1, soft - FDS_SPARE))
        return max(1, soft - FDS_SPARE)
    return wanted
