"""The asyncio client: the same msgpack protocol as foxden.client, many requests on one connection."""
from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterable, AsyncIterator, Iterable

from foxden.client import BrokenByDaemonError, ClientError, ClosedByCallerError, ServerError
from foxden.client import TimedOutError, UnreachableError, job_request, lease_info
from foxden.protocols import wire

CONNECT_TIMEOUT_S = 10.0


class AsyncClient:
    """An asyncio connection to a foxden daemon; `async with`; close() is idempotent.

    Any number of tasks may submit at once: each request has its own rid, and
    one reader task hands every reply to the future waiting on its rid. The
    connection is opened by `async with`, connect(), or the first request.
    When it breaks, every waiting request fails with BrokenByDaemonError;
    when this program closes it, with ClosedByCallerError."""

    def __init__(self, socket_path: str | os.PathLike | None = None, *, tcp: tuple[str, int] | None = None,
                 token: str | None = None, timeout: float | None = None):
        if socket_path is None and tcp is None:
            raise ValueError("give a socket path or a (host, port)")
        self._socket_path = None if socket_path is None else str(socket_path)
        self._tcp = tcp
        self._where = self._socket_path if socket_path is not None else f"{tcp[0]}:{tcp[1]}"
        self._token = token
        self._timeout = timeout
        self._rids = itertools.count(1)
        # rid -> the future of the request waiting for it; None keys the hello.
        self._waiting: dict[int | None, asyncio.Future] = {}
        self._connect_lock = asyncio.Lock()
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task | None = None
        self._broken: ClientError | None = None
        self._closed = False

    @classmethod
    def from_config(cls, config, *, timeout: float | None = None) -> "AsyncClient":
        """A client for the daemon that `config` (a Config or a path to one) describes; connects on first use."""
        if not hasattr(config, "daemon"):
            from foxden.config import load_config

            config = load_config(config)
        return cls(config.daemon.socket, token=config.daemon.token, timeout=timeout)

    async def __aenter__(self) -> "AsyncClient":
        await self.connect()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the connection (and say hello with the token) unless that is done; raises ClientError."""
        async with self._connect_lock:
            self._check_usable()
            if self._writer is not None:
                return
            try:
                if self._tcp is not None:
                    opening = asyncio.open_connection(*self._tcp)
                else:
                    opening = asyncio.open_unix_connection(self._socket_path)
                reader, self._writer = await asyncio.wait_for(opening, CONNECT_TIMEOUT_S)
            except (OSError, asyncio.TimeoutError) as exc:
                reason = getattr(exc, "strerror", None) or str(exc) or "timed out"
                raise UnreachableError(f"cannot reach the foxden daemon at {self._where}: {reason} "
                                       "(is `foxden run` running with this config?)") from None
            self._reader_task = asyncio.get_running_loop().create_task(self._read_loop(reader))
            if self._token:
                try:
                    reply = await self._exchange(None, wire.Hello(token=self._token, client="foxden-python-async"))
                    if isinstance(reply, wire.ErrorReply):
                        raise ServerError(reply.code, reply.message)
                except ClientError as exc:
                    # `async with` does not call __aexit__ when __aenter__
                    # fails, so nothing must stay open here.
                    self._fail_all(exc)
                    await self._disconnect()
                    raise

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._fail_all(ClosedByCallerError("the client was closed during the request"))
        await self._disconnect()

    async def _disconnect(self) -> None:
        task, writer, self._reader_task, self._writer = self._reader_task, self._writer, None, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass  # the daemon hung up first: nothing left to close cleanly

    # --- requests ------------------------------------------------------------

    async def submit(self, url: str, **job) -> wire.Answer:
        """Run one job and wait for its answer; `job` takes JobRequest's fields, page options included
        (headers={...}, block=[...], proxy="http://user:pass@host:port", html=True, ...: docs/protocol.md)."""
        return await self._submit(job_request(url, **job))

    async def submit_many(self, requests: Iterable[wire.JobRequest] | AsyncIterable[wire.JobRequest],
                          concurrency: int = 8) -> AsyncIterator[tuple[int, wire.JobRequest, wire.Answer]]:
        """Submit jobs keeping `concurrency` in flight; yield (index, request, answer) as answers arrive.

        Leaving the loop early abandons the jobs still in flight (they still
        run; their answers are dropped)."""
        source = aiter(_enumerate(requests))
        inflight: dict[asyncio.Task, tuple[int, wire.JobRequest]] = {}
        exhausted = False
        try:
            while True:
                while not exhausted and len(inflight) < max(1, concurrency):
                    item = await anext(source, None)
                    if item is None:
                        exhausted = True
                        break
                    inflight[asyncio.create_task(self._submit(item[1]))] = item
                if not inflight:
                    return
                done, _ = await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    index, req = inflight.pop(task)
                    yield index, req, task.result()
        finally:
            for task in inflight:
                task.cancel()
            await asyncio.gather(*inflight, return_exceptions=True)

    async def status(self) -> dict:
        """The daemon's status document (see `foxden status --json`)."""
        rid = next(self._rids)
        return (await self._request(rid, wire.StatusRequest(rid))).status

    async def ping(self) -> None:
        """Round trip to the gateway; raises if the daemon is unreachable or refuses us."""
        rid = next(self._rids)
        await self._request(rid, wire.Ping(rid))

    async def end_session(self, session: str) -> bool:
        """End a session after its submitted jobs, closing its browser context; False if the daemon held none."""
        rid = next(self._rids)
        return (await self._request(rid, wire.EndSession(rid, session))).existed

    async def lease(self, engine: str | None = None, ttl_s: float | None = None, idle_s: float | None = None
                    ) -> dict:
        """Lease a browser of your own (see Client.lease)."""
        rid = next(self._rids)
        return lease_info(await self._request(rid, wire.Lease(rid, engine, ttl_s, idle_s)))

    async def end_lease(self, lease_id: str) -> dict:
        """End a lease now (see Client.end_lease)."""
        rid = next(self._rids)
        reply = await self._request(rid, wire.EndLease(rid, lease_id))
        return {"lease": reply.lease, "existed": reply.existed}

    async def cancel(self, id: str) -> dict:
        """Cancel every unanswered job whose answer id is `id`; {"id": id, "found": bool} (see Client.cancel)."""
        rid = next(self._rids)
        reply = await self._request(rid, wire.Cancel(rid, id))
        return {"id": reply.id, "found": reply.found}

    async def export_session(self, session: str) -> dict | None:
        """The session's storage state, or None (see Client.export_session)."""
        rid = next(self._rids)
        return (await self._request(rid, wire.SessionExport(rid, session))).state

    async def import_session(self, session: str, state: dict) -> None:
        """Make the next job of `session` start from `state` (see Client.import_session)."""
        rid = next(self._rids)
        await self._request(rid, wire.SessionImport(rid, session, state))

    # --- plumbing ------------------------------------------------------------

    async def _submit(self, req: wire.JobRequest) -> wire.Answer:
        rid = next(self._rids)
        return (await self._request(rid, wire.Submit(rid, req))).answer

    async def _request(self, rid: int, msg):
        await self.connect()
        reply = await self._exchange(rid, msg)
        if isinstance(reply, wire.ErrorReply):
            raise ServerError(reply.code, reply.message)
        return reply

    async def _exchange(self, rid: int | None, msg):
        """Send `msg` and wait for the reply the reader routes to `rid`."""
        self._check_usable()
        future = asyncio.get_running_loop().create_future()
        self._waiting[rid] = future
        try:
            self._writer.write(wire.encode(msg))
            await self._writer.drain()
            return await asyncio.wait_for(future, self._timeout)
        except asyncio.TimeoutError:
            # First: since Python 3.11 asyncio's TimeoutError is the builtin,
            # an OSError, which the clause below would take for a broken connection.
            raise TimedOutError(f"no answer from {self._where} in {self._timeout:g}s") from None
        except (ConnectionError, OSError) as exc:
            self._fail_all(BrokenByDaemonError(f"connection to {self._where} broke: {exc}"))
            self._check_usable()
            raise  # pragma: no cover - _check_usable raises: the client is now broken
        finally:
            # Also on cancellation: a late reply for this rid is then dropped.
            self._waiting.pop(rid, None)

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        decoder = wire.FrameDecoder(wire.MAX_REPLY_FRAME)
        try:
            while True:
                data = await reader.read(1 << 20)
                if not data:
                    self._fail_all(BrokenByDaemonError(f"the daemon at {self._where} closed the connection"))
                    return
                for item in decoder.feed(data):
                    if isinstance(item, wire.ProtocolError):
                        self._fail_all(BrokenByDaemonError(f"bad frame from the daemon: {item}"))
                        return
                    self._route(item)
        except OSError as exc:
            self._fail_all(BrokenByDaemonError(f"connection to {self._where} broke: {exc}"))

    def _route(self, msg) -> None:
        rid = getattr(msg, "rid", None)
        if rid is None and None not in self._waiting and isinstance(msg, wire.ErrorReply):
            # An error about no request in particular (e.g. a frame the
            # daemon could not read): the connection is no longer trusted.
            self._fail_all(ServerError(msg.code, msg.message))
            return
        future = self._waiting.get(rid)
        if future is not None and not future.done():
            future.set_result(msg)

    def _fail_all(self, error: ClientError) -> None:
        if self._broken is None:
            self._broken = error
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(error)
        self._waiting.clear()

    def _check_usable(self) -> None:
        if self._closed:
            raise ClosedByCallerError("the client is closed")
        if self._broken is not None:
            # Whatever broke it (the daemon hung up, or refused the connection
            # as a whole), this connection is the daemon's doing and unusable.
            raise BrokenByDaemonError(f"the connection is broken: {self._broken}")


async def _enumerate(items: Iterable | AsyncIterable) -> AsyncIterator[tuple[int, object]]:
    if isinstance(items, AsyncIterable):
        index = 0
        async for item in items:
            yield index, item
            index += 1
    else:
        for item in enumerate(items):
            yield item
