"""A loopback forward proxy that connects only where the egress policy allows (CONNECT and absolute URIs).

It resolves each name itself, judges every address it got, and connects to
exactly an address it judged: there is no second lookup a DNS answer could
change in between. HTTP is parsed by h11 on both sides; a request is
forwarded on a connection of its own (`Connection: close`), so one browser
connection never carries requests to two hosts."""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

import h11

from foxden.egress.policy import EgressPolicy, Verdict, judge_address, judge_name, normalize_host

__all__ = ["EgressProxy", "Refusal", "MAX_RECORDED"]

log = logging.getLogger("foxden.egress")

MAX_HEAD = 64 << 10          # bytes of one request or response head
HEAD_TIMEOUT_S = 30.0        # for a client to send its request head
RESOLVE_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 15.0
IDLE_TIMEOUT_S = 300.0       # a tunnel or a response with nothing moving either way
MAX_RECORDED = 100           # refusals kept per job
MAX_URL = 2048               # characters of a recorded URL
_CHUNK = 64 << 10
# Headers about this hop only: never passed on (h11 writes its own framing
# from Content-Length / Transfer-Encoding, which are passed on).
_HOP = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"proxy-authorization",
                  b"proxy-authenticate", b"te", b"trailer", b"upgrade"})


@dataclass(frozen=True)
class Refusal:
    """One connection the proxy refused: what the browser asked for, and why."""

    url: str
    why: str


class _Refused(Exception):
    def __init__(self, verdict: Verdict):
        super().__init__(str(verdict))
        self.verdict = verdict


class _BadRequest(Exception):
    pass


class EgressProxy:
    """The proxy of one browser, on 127.0.0.1, served by an asyncio loop in a thread of its own.

    The owner calls begin_job() when a job starts and refusals() when it
    ends: the refusals in between are that job's (one job at a time)."""

    def __init__(self, policy: EgressPolicy):
        self._policy = policy
        self._lock = threading.Lock()
        self._refusals: list[Refusal] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self.port = 0

    # --- the owner's side --------------------------------------------------------

    def start(self, timeout_s: float = 10.0) -> str:
        """Listen on a free loopback port; the proxy's URL."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="foxden-egress", daemon=True)
        self._thread.start()
        serving = asyncio.start_server(self._serve, "127.0.0.1", 0, limit=_CHUNK)
        self._server = asyncio.run_coroutine_threadsafe(serving, self._loop).result(timeout_s)
        self.port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{self.port}"

    def stop(self, timeout_s: float = 2.0) -> None:
        """Close the listener and every connection, end the thread. Idempotent."""
        loop, self._loop = self._loop, None
        if loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout_s)
        except Exception:  # a loop that does not answer in time is stopped below anyway
            pass
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(timeout_s)
        if not self._thread.is_alive():
            loop.close()

    def begin_job(self) -> None:
        with self._lock:
            self._refusals.clear()

    def refusals(self) -> list[Refusal]:
        """What was refused since begin_job(), oldest first, at most MAX_RECORDED."""
        with self._lock:
            return list(self._refusals)

    async def _shutdown(self) -> None:
        self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _record(self, url: str, verdict: Verdict) -> None:
        with self._lock:
            if len(self._refusals) < MAX_RECORDED:
                self._refusals.append(Refusal(url[:MAX_URL], str(verdict)))

    # --- one client connection ---------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        try:
            request = await asyncio.wait_for(_next_event(conn, reader), HEAD_TIMEOUT_S)
            if not isinstance(request, h11.Request):
                return
            try:
                if request.method == b"CONNECT":
                    await self._tunnel(conn, request, reader, writer)
                else:
                    await self._forward(conn, request, reader, writer)
            except _BadRequest as exc:
                _respond(conn, writer, 400, str(exc))
            except (OSError, asyncio.TimeoutError) as exc:
                if conn.our_state is h11.SEND_RESPONSE:
                    _respond(conn, writer, 502, f"cannot reach the target: {exc or type(exc).__name__}")
            await writer.drain()
        except h11.RemoteProtocolError as exc:
            if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):  # h11 lets a server still answer 400
                _respond(conn, writer, exc.error_status_hint, f"bad request: {exc}")
        except (h11.LocalProtocolError, OSError, asyncio.TimeoutError):
            pass  # a broken or too slow client: nothing to answer it with
        finally:
            writer.close()

    async def _open(self, conn, writer, host: str, port: int, shown: str):
        """A connection to an allowed address of host, or None after answering 403."""
        try:
            return await self._connect(host, port)
        except _Refused as exc:
            self._record(shown, exc.verdict)
            log.debug("refused %s: %s", shown, exc.verdict)
            _respond(conn, writer, 403, f"foxden egress policy: {exc.verdict}", blocked=True)
            return None

    async def _connect(self, host: str, port: int):
        """Resolve host, judge every address, connect to one that is allowed (by address, no second lookup)."""
        host = normalize_host(host)
        by_name = judge_name(host, self._policy)
        if by_name is not None and not by_name.allowed:
            raise _Refused(by_name)
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            infos = await asyncio.wait_for(
                asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT_S)
            addresses = list(dict.fromkeys(ipaddress.ip_address(i[4][0].split("%", 1)[0]) for i in infos))
        verdicts = [judge_address(host, a, self._policy) for a in addresses]
        allowed = [a for a, v in zip(addresses, verdicts) if v.allowed]
        if not allowed:
            raise _Refused(verdicts[0])
        error: Exception | None = None
        for address in allowed:
            try:
                return await asyncio.wait_for(asyncio.open_connection(str(address), port, limit=_CHUNK),
                                              CONNECT_TIMEOUT_S)
            except (OSError, asyncio.TimeoutError) as exc:
                error = exc
        raise error

    async def _tunnel(self, conn, request: h11.Request, reader, writer) -> None:
        """CONNECT host:port: a byte tunnel once the target is allowed (https, wss)."""
        authority = request.target.decode("ascii")
        host, port = _authority(authority)
        upstream = await self._open(conn, writer, host, port, f"https://{authority}/")
        if upstream is None:
            return
        up_reader, up_writer = upstream
        writer.write(conn.send(h11.Response(status_code=200, headers=[])))
        early = conn.trailing_data[0]
        if early:
            up_writer.write(early)
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    async def _forward(self, conn, request: h11.Request, reader, writer) -> None:
        """GET http://host/path and friends: one request to the target, its response back."""
        url = request.target.decode("ascii")
        parts = urlsplit(url)
        try:
            port = parts.port or 80
        except ValueError:
            raise _BadRequest(f"bad port in {url[:200]}") from None
        if parts.scheme != "http" or not parts.hostname:
            raise _BadRequest("only http://host/... targets and CONNECT are proxied")
        upstream = await self._open(conn, writer, parts.hostname, port, url)
        if upstream is None:
            return
        up_reader, up_writer = upstream
        try:
            up = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
            origin_form = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            headers = [(n, v) for n, v in request.headers if n not in _HOP]
            if not any(n == b"host" for n, _ in headers):
                headers.append((b"host", parts.netloc.rsplit("@", 1)[-1].encode("ascii")))
            up_writer.write(up.send(h11.Request(method=request.method, target=origin_form,
                                                headers=[*headers, (b"connection", b"close")])))
            await _relay_body(conn, reader, up, up_writer)
            await _relay_response(up, up_reader, conn, writer)
        finally:
            up_writer.close()


async def _next_event(conn: h11.Connection, reader: asyncio.StreamReader):
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        conn.receive_data(await reader.read(_CHUNK))


async def _relay_body(src: h11.Connection, reader, dst: h11.Connection, writer) -> None:
    """The client's request body, if any, to the target."""
    while True:
        event = await asyncio.wait_for(_next_event(src, reader), IDLE_TIMEOUT_S)
        if isinstance(event, h11.Data):
            writer.write(dst.send(h11.Data(data=event.data)))
            await writer.drain()
        elif isinstance(event, h11.EndOfMessage):
            writer.write(dst.send(h11.EndOfMessage()))
            await writer.drain()
            return
        else:
            raise OSError("the client closed before its request body ended")


async def _relay_response(up: h11.Connection, up_reader, conn: h11.Connection, writer) -> None:
    """The target's response to the client, framed anew by h11, with Connection: close."""
    while True:
        event = await asyncio.wait_for(_next_event(up, up_reader), IDLE_TIMEOUT_S)
        if isinstance(event, h11.InformationalResponse):
            continue  # 100 Continue and the like concern the hop we already completed
        if isinstance(event, h11.Response):
            headers = [(n, v) for n, v in event.headers if n not in _HOP]
            writer.write(conn.send(h11.Response(status_code=event.status_code, reason=event.reason,
                                                headers=[*headers, (b"connection", b"close")])))
        elif isinstance(event, h11.Data):
            writer.write(conn.send(h11.Data(data=event.data)))
        elif isinstance(event, h11.EndOfMessage):
            writer.write(conn.send(h11.EndOfMessage()))
            await writer.drain()
            return
        else:
            raise OSError("the target closed before its response ended")
        await writer.drain()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await asyncio.wait_for(reader.read(_CHUNK), IDLE_TIMEOUT_S):
            writer.write(data)
            await writer.drain()
    except (OSError, asyncio.TimeoutError):
        pass
    finally:
        writer.close()


def _authority(authority: str) -> tuple[str, int]:
    """(host, port) of a CONNECT target such as "example.com:443" or "[::1]:443"."""
    try:
        parts = urlsplit(f"//{authority}")
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    if not host or not port:
        raise _BadRequest(f"CONNECT needs host:port, got {authority[:200]!r}")
    return host, port


def _respond(conn: h11.Connection, writer, status: int, text: str, *, blocked: bool = False) -> None:
    """A short plain-text answer from the proxy itself, closing the connection."""
    body = (text + "\n").encode("utf-8", "replace")
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close"), (b"cache-control", b"no-store")]
    if blocked:
        headers.append((b"x-foxden-egress", b"blocked"))
    writer.write(conn.send(h11.Response(status_code=status, headers=headers)))
    writer.write(conn.send(h11.Data(data=body)))
    writer.write(conn.send(h11.EndOfMessage()))
