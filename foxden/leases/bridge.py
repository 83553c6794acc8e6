"""A leased browser's endpoint: a WebSocket server on its own thread, guarded by the lease's secret.

One client at a time. Its messages go to a backend and back: Chromium's CDP
pipe (messages framed by NUL bytes) or the Playwright server of a Firefox
(another WebSocket, on loopback, with a secret path of its own). A request
whose path is not the secret is refused before the upgrade."""
from __future__ import annotations

import asyncio
import hmac
import logging
import os
import threading
import time
from http import HTTPStatus

__all__ = ["Bridge", "PipeBackend", "WsBackend"]

# The bridge's thread must not log through the actor's handlers: Thespian's
# forwards each record to its logger actor with a transport that is neither
# thread-safe nor able to pickle what websockets puts in its records. What
# happens here is kept in counters (and `last_error`) for the actor to read.
_QUIET = logging.getLogger("foxden.leases.bridge")
_QUIET.propagate = False
_QUIET.addHandler(logging.NullHandler())

# Headers of a Playwright client that its server reads (version, launch options).
_FORWARDED = ("user-agent",)


class PipeBackend:
    """Chromium's CDP pipe: client messages go in with a NUL after each, the browser's come out split on NUL."""

    def __init__(self, read_fd: int, write_fd: int, leftover: bytes = b""):
        self.read_fd, self.write_fd, self.buffer = read_fd, write_fd, bytearray(leftover)
        self.client: asyncio.Queue | None = None  # where the browser's messages go while a client is connected
        self.writer = None

    async def open(self, on_eof) -> None:
        """Start reading the browser's side (for the bridge's whole life, client or not)."""
        loop = asyncio.get_running_loop()
        backend = self

        class Reader(asyncio.Protocol):
            def data_received(self, data: bytes) -> None:
                backend._received(data)

            def eof_received(self):
                backend._eof(on_eof)
                return False

            def connection_lost(self, exc) -> None:
                backend._eof(on_eof)

        rfile = os.fdopen(self.read_fd, "rb", buffering=0, closefd=False)
        wfile = os.fdopen(self.write_fd, "wb", buffering=0, closefd=False)
        await loop.connect_read_pipe(Reader, rfile)
        self.writer, _ = await loop.connect_write_pipe(asyncio.Protocol, wfile)

    def _eof(self, on_eof) -> None:
        on_eof()
        if self.client is not None:
            self.client.put_nowait(None)  # ends the client's session: the browser is gone

    def _received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\0")) >= 0:
            message = bytes(self.buffer[:end])
            del self.buffer[:end + 1]
            if self.client is not None:  # with no client, the browser's events are dropped
                self.client.put_nowait(message.decode("utf-8", "replace"))

    async def serve(self, ws) -> None:
        """Relay one client's session until it or the browser hangs up."""
        self.client = queue = asyncio.Queue()

        async def to_client() -> None:
            while (message := await queue.get()) is not None:
                await ws.send(message)
            await ws.close(1011, "the browser is gone")

        sender = asyncio.create_task(to_client())
        try:
            async for message in ws:
                data = message.encode() if isinstance(message, str) else bytes(message)
                self.writer.write(data + b"\0")
        finally:
            self.client = None
            sender.cancel()


class WsBackend:
    """A Playwright server on loopback: each client gets its own connection to it, relayed both ways."""

    def __init__(self, url: str):
        self.url = url

    async def open(self, on_eof) -> None:
        pass

    async def serve(self, ws) -> None:
        from websockets.asyncio.client import connect

        headers = {k: v for k, v in ws.request.headers.raw_items()
                   if k.lower().startswith("x-playwright") or k.lower() in _FORWARDED}
        async with connect(self.url, additional_headers=headers, max_size=None, ping_interval=None,
                           compression=None, user_agent_header=None, open_timeout=30, logger=_QUIET) as upstream:
            async def pump(src, dst) -> None:
                async for message in src:
                    await dst.send(message)
            tasks = [asyncio.create_task(pump(ws, upstream)), asyncio.create_task(pump(upstream, ws))]
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in tasks:
                    task.cancel()


class Bridge:
    """The endpoint of one lease: serves on (host, port 0) in a thread; `clients` and `idle_for` for the watchdog."""

    def __init__(self, host: str, secret: str, backend):
        self.host, self.backend = host, backend
        self._path = ("/" + secret).encode()
        self.port = 0
        self.clients = 0
        self.refused = 0
        self.browser_gone = False
        self.sessions = 0  # client sessions served
        self.last_error = ""  # the last failure of a client session or of the loop (type only: no secrets)
        self._idle_since = time.monotonic()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Future | None = None
        self._thread = threading.Thread(target=self._run, name="lease-bridge", daemon=True)

    @property
    def idle_for(self) -> float:
        """Seconds since the last client left (or since the endpoint opened); 0 while one is connected."""
        return 0.0 if self.clients else time.monotonic() - self._idle_since

    def start(self, timeout_s: float = 10.0) -> int:
        """Listen; returns the port (raises what the listener raised)."""
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise RuntimeError("the lease endpoint did not start listening in time")
        if self._error is not None:
            raise self._error
        return self.port

    def stop(self) -> None:
        """Close the endpoint (and its client's connection); idempotent."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(lambda: stop.done() or stop.set_result(None))
            except RuntimeError:
                pass  # the loop already ended
            self._thread.join(5.0)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to start(), or kept once the endpoint was up
            if not self._ready.is_set():
                self._error = exc
                self._ready.set()
            else:
                self.last_error = type(exc).__name__

    async def _main(self) -> None:
        from websockets.asyncio.server import serve

        self._loop = asyncio.get_running_loop()
        self._loop.set_exception_handler(self._loop_error)
        self._stop = self._loop.create_future()
        await self.backend.open(self._browser_eof)
        async with serve(self._serve, self.host, 0, process_request=self._check, max_size=None,
                         ping_interval=None, compression=None, server_header=None, logger=_QUIET) as server:
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stop

    def _loop_error(self, loop, context: dict) -> None:
        exc = context.get("exception")
        self.last_error = type(exc).__name__ if exc is not None else str(context.get("message", ""))[:200]

    def _browser_eof(self) -> None:
        self.browser_gone = True

    def _check(self, connection, request):
        """Before the upgrade: the secret path (compared in constant time), and one client at a time."""
        if not hmac.compare_digest(request.path.encode(), self._path):
            self.refused += 1
            return connection.respond(HTTPStatus.FORBIDDEN, "no such endpoint\n")
        if self.clients:
            self.refused += 1
            return connection.respond(HTTPStatus.CONFLICT, "this lease already has a client\n")
        return None

    async def _serve(self, ws) -> None:
        if self.clients:  # two upgrades passed the check at once
            await ws.close(1013, "this lease already has a client")
            return
        self.clients += 1
        self.sessions += 1
        try:
            await self.backend.serve(ws)
        except Exception as exc:  # a client or upstream failure ends this client's session only
            self.last_error = type(exc).__name__
        finally:
            self.clients -= 1
            self._idle_since = time.monotonic()
