"""The Python client: the msgpack protocol over the daemon's socket (the CLI's own transport)."""
from __future__ import annotations

import itertools
import os
import socket
from collections.abc import Iterable, Iterator
from dataclasses import fields

from foxden.protocols import wire


__all__ = ["BrokenByDaemonError", "Client", "ClientError", "ClosedByCallerError", "ServerError", "TimedOutError",
           "UnreachableError", "job_request", "lease_info"]


class ClientError(Exception):
    """Base of every client error; its subclasses say who ended the request."""


class ServerError(ClientError):
    """The daemon answered a request with an `error` frame (a code of foxden.protocols.errors)."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


class UnreachableError(ClientError):
    """No daemon answered at the socket or address: nothing was sent."""


class ClosedByCallerError(ClientError):
    """This program closed the client (close(), leaving `with`), before or during the request."""


class BrokenByDaemonError(ClientError):
    """The daemon closed or broke the connection, or sent a frame that cannot be read.

    A request in flight may or may not have run; its answer is lost."""


class TimedOutError(ClientError, TimeoutError):
    """No answer within the client's `timeout`; the connection is still open."""


_JOB_FIELDS = {f.name for f in fields(wire.JobRequest)}


def lease_info(reply: wire.Leased) -> dict:
    """A `leased` reply as the dict Client.lease returns (playwright_version only when there is one)."""
    info = {"lease": reply.lease, "engine": reply.engine, "endpoint": reply.endpoint, "expires_at": reply.expires_at}
    if reply.playwright_version is not None:
        info["playwright_version"] = reply.playwright_version
    return info


def job_request(url: str | None = None, **kw) -> wire.JobRequest:
    """A JobRequest from keyword arguments (unknown keys are an error, as on the wire)."""
    if url is not None:
        kw["url"] = url
    unknown = set(kw) - _JOB_FIELDS
    if unknown:
        raise TypeError(f"unknown job field(s): {', '.join(sorted(unknown))}")
    return wire.JobRequest(**kw)


class Client:
    """A blocking connection to a foxden daemon; a context manager; close() is idempotent.

    One connection carries many requests at once (each has its own rid), so
    submit_many() keeps `concurrency` jobs in flight without threads."""

    def __init__(self, socket_path: str | os.PathLike | None = None, *, tcp: tuple[str, int] | None = None,
                 token: str | None = None, timeout: float | None = None):
        if socket_path is None and tcp is None:
            raise ValueError("give a socket path or a (host, port)")
        self._where = str(socket_path) if socket_path is not None else f"{tcp[0]}:{tcp[1]}"
        try:
            if tcp is not None:
                self._sock = socket.create_connection(tcp, timeout=10)
            else:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self._sock.settimeout(10)
                self._sock.connect(str(socket_path))
        except OSError as exc:
            raise UnreachableError(f"cannot reach the foxden daemon at {self._where}: {exc.strerror or exc} "
                                   "(is `foxden run` running with this config?)") from None
        self._sock.settimeout(timeout)
        self._decoder = wire.FrameDecoder(wire.MAX_REPLY_FRAME)
        self._inbox: dict[int | None, list] = {}
        self._pending: list = []
        self._rids = itertools.count(1)
        self._closed = False
        if token:
            self._send(wire.Hello(token=token, client="foxden-python"))
            reply = self._next_frame()
            if isinstance(reply, wire.ErrorReply):
                raise ServerError(reply.code, reply.message)

    @classmethod
    def from_config(cls, config, *, timeout: float | None = None) -> "Client":
        """Connect to the daemon that `config` (a Config or a path to one) describes."""
        if not hasattr(config, "daemon"):
            from foxden.config import load_config

            config = load_config(config)
        return cls(config.daemon.socket, token=config.daemon.token, timeout=timeout)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection; a request waiting in another thread raises ClosedByCallerError."""
        if not self._closed:
            self._closed = True
            try:
                # shutdown wakes a recv() blocked in another thread; close() alone does not.
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # not connected any more
            self._sock.close()

    # --- requests ------------------------------------------------------------

    def submit(self, url: str, **job) -> wire.Answer:
        """Run one job and wait for its answer; `job` takes JobRequest's fields, page options included
        (headers={...}, block=[...], proxy="http://user:pass@host:port", html=True, ...: docs/protocol.md)."""
        for _, _, answer in self.submit_many([job_request(url, **job)], concurrency=1):
            return answer
        raise ClientError("no answer")  # pragma: no cover - submit_many always yields

    def submit_many(self, requests: Iterable[wire.JobRequest], concurrency: int = 8
                    ) -> Iterator[tuple[int, wire.JobRequest, wire.Answer]]:
        """Submit jobs keeping `concurrency` in flight; yield (index, request, answer) as answers arrive."""
        todo = iter(enumerate(requests))
        inflight: dict[int, tuple[int, wire.JobRequest]] = {}
        exhausted = False
        while True:
            while not exhausted and len(inflight) < max(1, concurrency):
                item = next(todo, None)
                if item is None:
                    exhausted = True
                    break
                rid = next(self._rids)
                inflight[rid] = item
                self._send(wire.Submit(rid, item[1]))
            if not inflight:
                return
            reply = self._next_reply(set(inflight))
            index, req = inflight.pop(reply.rid)
            if isinstance(reply, wire.ErrorReply):
                raise ServerError(reply.code, reply.message)
            yield index, req, reply.answer

    def status(self) -> dict:
        """The daemon's status document (see `foxden status --json`)."""
        return self._request(wire.StatusRequest(next(self._rids))).status

    def ping(self) -> None:
        """Round trip to the gateway; raises if the daemon is unreachable or refuses us."""
        self._request(wire.Ping(next(self._rids)))

    def end_session(self, session: str) -> bool:
        """End a session after its submitted jobs, closing its browser context; False if the daemon held none."""
        return self._request(wire.EndSession(next(self._rids), session)).existed

    def lease(self, engine: str | None = None, ttl_s: float | None = None, idle_s: float | None = None) -> dict:
        """Lease a browser of your own: {lease, engine, endpoint, playwright_version?, expires_at} (docs/leases.md).

        `endpoint` carries the lease's secret. Chromium: connect with Playwright's
        connect_over_cdp(endpoint) or Puppeteer; Firefox and Camoufox: with
        playwright.firefox.connect(endpoint), from Playwright `playwright_version`."""
        return lease_info(self._request(wire.Lease(next(self._rids), engine, ttl_s, idle_s)))

    def end_lease(self, lease_id: str) -> dict:
        """End a lease now (its browser is killed); {lease, existed}: existed is False if no such lease was live."""
        reply = self._request(wire.EndLease(next(self._rids), lease_id))
        return {"lease": reply.lease, "existed": reply.existed}

    def cancel(self, id: str) -> dict:
        """Cancel every unanswered job whose answer id is `id` (each is answered failed/cancelled).

        Returns {"id": id, "found": bool}; found is False when no job by that
        id was queued or running (unknown, or already answered)."""
        reply = self._request(wire.Cancel(next(self._rids), id))
        return {"id": reply.id, "found": reply.found}

    def export_session(self, session: str) -> dict | None:
        """The session's storage state (Playwright's storage-state JSON shape) after its last answered job;
        None when the daemon keeps none for it (unknown, or `[sessions] persist = false`)."""
        return self._request(wire.SessionExport(next(self._rids), session)).state

    def import_session(self, session: str, state: dict) -> None:
        """Make the next job of `session` start from `state` (Playwright's storage-state shape: a dict as
        `context.storage_state()` returns, or as its JSON file holds); ServerError bad_field names a bad field."""
        self._request(wire.SessionImport(next(self._rids), session, state))

    # --- plumbing ------------------------------------------------------------

    def _request(self, msg):
        self._send(msg)
        reply = self._next_reply({msg.rid})
        if isinstance(reply, wire.ErrorReply):
            raise ServerError(reply.code, reply.message)
        return reply

    def _send(self, msg) -> None:
        if self._closed:
            raise ClosedByCallerError("the client is closed")
        try:
            self._sock.sendall(wire.encode(msg))
        except OSError as exc:
            raise self._broken(exc) from None

    def _broken(self, exc: OSError) -> ClientError:
        """The error for a failed socket call: ours if we closed the socket (from another thread), else the daemon's
        (with its parting words, e.g. idle_timeout, when it said why it hung up)."""
        if self._closed:
            return ClosedByCallerError("the client was closed during the request")
        parting = self._parting_error()
        if parting is not None:
            return ServerError(parting.code, parting.message)
        return BrokenByDaemonError(f"connection to {self._where} broke: {exc}")

    def _parting_error(self) -> wire.ErrorReply | None:
        """The error about no request in particular the daemon sent before it hung up, if any."""
        self._sock.settimeout(0)
        try:
            while True:
                data = self._sock.recv(1 << 20)
                if not data:
                    break
                self._pending.extend(self._decoder.feed(data))
        except (OSError, wire.ProtocolError):
            pass
        return next((m for m in self._pending if isinstance(m, wire.ErrorReply) and m.rid is None), None)

    def _next_reply(self, rids: set[int]):
        """The next reply for one of `rids`; others are kept for later."""
        while True:
            for rid in rids:
                box = self._inbox.get(rid)
                if box:
                    return box.pop(0)
            if self._inbox.get(None):
                err = self._inbox[None].pop(0)
                raise ServerError(err.code, err.message)
            msg = self._next_frame()
            self._inbox.setdefault(getattr(msg, "rid", None), []).append(msg)

    def _next_frame(self):
        while True:
            if self._pending:
                return self._pending.pop(0)
            if self._closed:
                raise ClosedByCallerError("the client is closed")
            try:
                data = self._sock.recv(1 << 20)
            except socket.timeout:
                raise TimedOutError(f"no answer from {self._where} in {self._sock.gettimeout():g}s") from None
            except OSError as exc:
                raise self._broken(exc) from None
            if not data:
                if self._closed:
                    raise ClosedByCallerError("the client was closed during the request")
                raise BrokenByDaemonError(f"the daemon at {self._where} closed the connection")
            for item in self._decoder.feed(data):
                if isinstance(item, wire.ProtocolError):
                    raise BrokenByDaemonError(f"bad frame from the daemon: {item}")
                self._pending.append(item)
