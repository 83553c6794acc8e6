"""A synchronous Chrome DevTools Protocol connection over Chromium's --remote-debugging-pipe."""
from __future__ import annotations

import json
import logging
import os
import select
import time
from collections.abc import Callable

__all__ = ["CdpPipe", "CdpError", "CdpTimeout", "PipeClosed", "EventHandler", "CHILD_READ_FD", "CHILD_WRITE_FD"]

log = logging.getLogger("foxden.cdp")

# Chromium reads commands from fd 3 and writes replies and events to fd 4,
# one JSON object per message, each followed by a NUL byte.
CHILD_READ_FD = 3
CHILD_WRITE_FD = 4
_READ_CHUNK = 1 << 16

EventHandler = Callable[[str, dict, "str | None"], None]


class CdpError(Exception):
    """A command's error reply: Chromium refused or failed it (the connection is fine)."""

    def __init__(self, method: str, code: int, message: str):
        super().__init__(f"{method}: {message}")
        self.method, self.code, self.message = method, code, message


class PipeClosed(Exception):
    """The browser closed its end of the pipe: it exited, crashed or was killed."""


class CdpTimeout(Exception):
    """No reply (or no awaited event) before the deadline; the connection is still usable."""


class CdpPipe:
    """One browser's CDP connection: commands with ids, replies matched to them, events to a handler.

    Synchronous on purpose: a browser actor runs one job at a time, and a
    blocking wait with a deadline (select on the pipe) is all it needs.
    Commands can be pipelined: send() several, then result() each; Chromium
    executes a session's commands in order. Replies nobody waits for
    (discard()) are dropped when they arrive, so a command abandoned at a
    deadline cannot be mistaken for a later one."""

    def __init__(self, read_fd: int, write_fd: int, on_event: EventHandler | None = None):
        self._rfd, self._wfd = read_fd, write_fd
        self.on_event = on_event
        self._next_id = 0
        self._methods: dict[int, str] = {}  # id -> method, for commands still owed a reply
        self._replies: dict[int, dict] = {}
        self._discarded: set[int] = set()
        self._buffer = bytearray()
        self._closed = False
        self._poller = None

    @property
    def closed(self) -> bool:
        return self._closed

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> int:
        """Write one command without waiting; returns its id (for result() or discard())."""
        if self._closed:
            raise PipeClosed(f"{method}: the browser's pipe is closed")
        self._next_id += 1
        message: dict = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        data = json.dumps(message, separators=(",", ":")).encode() + b"\0"
        try:
            while data:
                data = data[os.write(self._wfd, data):]
        except (BrokenPipeError, OSError) as exc:
            self._closed = True
            raise PipeClosed(f"{method}: the browser's pipe is closed ({exc})") from None
        self._methods[self._next_id] = method
        return self._next_id

    def result(self, command_id: int, deadline: float | None = None,
               cancel: Callable[[], str | None] | None = None) -> dict:
        """Wait for the reply to command_id until deadline (monotonic; None = forever).

        `cancel` is asked after every message: a reason it returns ends the
        wait with a CdpError (the page the command runs in crashed, say, and
        its reply may never come); the reply is then discarded."""
        while command_id not in self._replies:
            reason = cancel() if cancel is not None else None
            if reason:
                method = self._methods.get(command_id, "?")
                self.discard(command_id)
                raise CdpError(method, 0, reason)
            self._read(deadline, what=self._methods.get(command_id, "reply"))
        reply = self._replies.pop(command_id)
        method = self._methods.pop(command_id, "?")
        if "error" in reply:
            err = reply["error"]
            raise CdpError(method, err.get("code", 0), err.get("message", "unknown error"))
        return reply.get("result", {})

    def call(self, method: str, params: dict | None = None, session: str | None = None,
             deadline: float | None = None, cancel: Callable[[], str | None] | None = None) -> dict:
        """send() and result(): one command, its reply."""
        return self.result(self.send(method, params, session), deadline, cancel)

    def discard(self, command_id: int) -> None:
        """Nobody will wait for this command's reply: drop it when (if) it comes."""
        if command_id in self._replies:
            self._replies.pop(command_id)
            self._methods.pop(command_id, None)
        elif command_id in self._methods:
            self._discarded.add(command_id)

    def wait_until(self, done: Callable[[], bool], deadline: float | None, what: str = "event") -> None:
        """Dispatch incoming messages until done() is true; CdpTimeout at the deadline."""
        while not done():
            self._read(deadline, what=what)

    def poll(self) -> None:
        """Dispatch whatever has already arrived, without waiting (and notice EOF)."""
        self._read(time.monotonic(), what="poll", quiet=True)

    def close(self) -> None:
        """Close both ends we hold. Idempotent."""
        self._closed = True
        for fd in (self._rfd, self._wfd):
            try:
                os.close(fd)
            except OSError:
                pass
        self._rfd = self._wfd = -1

    # --- reading -----------------------------------------------------------------

    def _read(self, deadline: float | None, what: str, quiet: bool = False) -> None:
        """Read once (waiting until the deadline at most) and dispatch every complete message."""
        if self._closed:
            raise PipeClosed(f"{what}: the browser's pipe is closed")
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        # poll, not select: select cannot watch a descriptor numbered 1024 or more.
        if self._poller is None:
            self._poller = select.poll()
            self._poller.register(self._rfd, select.POLLIN | select.POLLHUP | select.POLLERR)
        ready = self._poller.poll(None if timeout is None else timeout * 1000.0)
        if not ready:
            if quiet:
                return
            raise CdpTimeout(f"{what}: no answer from the browser in time")
        try:
            chunk = os.read(self._rfd, _READ_CHUNK)
        except OSError as exc:
            chunk, reason = b"", str(exc)
        else:
            reason = "end of file"
        if not chunk:
            self._closed = True
            raise PipeClosed(f"{what}: the browser closed its pipe ({reason})")
        self._buffer += chunk
        while True:
            end = self._buffer.find(b"\0")
            if end < 0:
                break
            raw = bytes(self._buffer[:end])
            del self._buffer[:end + 1]
            self._dispatch(raw)

    def _dispatch(self, raw: bytes) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            log.warning("cdp: undecodable message from the browser (%d bytes)", len(raw))
            return
        command_id = message.get("id")
        if command_id is not None:
            if command_id in self._discarded:
                self._discarded.discard(command_id)
                method = self._methods.pop(command_id, "?")
                if "error" in message:
                    log.debug("cdp: %s (reply not awaited) failed: %s", method, message["error"])
                return
            self._replies[command_id] = message
            return
        if self.on_event is not None:
            self.on_event(message.get("method", ""), message.get("params", {}), message.get("sessionId"))
