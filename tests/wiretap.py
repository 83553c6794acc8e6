"""A raw client for tests that keeps every frame the daemon sends, so a second answer to a job is seen.

foxden.client.Client returns the first reply for a request id and never reads
the rest, which is right for a client and blind for a test of "exactly one
answer". A Tap reads the socket itself (frames decoded by
foxden.protocols.wire) and counts what arrives per request id until the
connection is closed or has been quiet for a while."""
from __future__ import annotations

import itertools
import socket
import time
from collections import defaultdict
from collections.abc import Iterable

from foxden.protocols import wire

__all__ = ["Tap"]


class Tap:
    """One connection to a daemon: submit jobs, read every frame, judge "one answer per job"."""

    def __init__(self, sock_path: str):
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(10)
        self._sock.connect(sock_path)
        self._decoder = wire.FrameDecoder(wire.MAX_REPLY_FRAME)
        self._rids = itertools.count(1)
        self._ready: list = []
        self.requests: dict[int, wire.JobRequest] = {}
        self.replies: dict[int, list] = defaultdict(list)  # rid -> every frame for it, in order
        self.strays: list = []  # frames with no rid of ours (a protocol error, say)
        self.closed = False

    def __enter__(self) -> "Tap":
        return self

    def __exit__(self, *exc) -> None:
        self._sock.close()

    def submit(self, request: wire.JobRequest) -> int:
        rid = next(self._rids)
        self.requests[rid] = request
        self._sock.sendall(wire.encode(wire.Submit(rid, request)))
        return rid

    def unanswered(self) -> list[int]:
        return [rid for rid in self.requests if not self.replies.get(rid)]

    def read(self, wait_s: float) -> bool:
        """Read one frame (waiting at most wait_s); False if none came or the connection is closed."""
        while not self._ready:
            if self.closed:
                return False
            self._sock.settimeout(max(wait_s, 0.001))
            try:
                data = self._sock.recv(1 << 20)
            except (socket.timeout, BlockingIOError):
                return False
            except OSError:
                data = b""
            if not data:
                self.closed = True
                return False
            for item in self._decoder.feed(data):
                if isinstance(item, wire.ProtocolError):
                    raise AssertionError(f"bad frame from the daemon: {item}")
                self._ready.append(item)
        frame = self._ready.pop(0)
        rid = getattr(frame, "rid", None)
        (self.replies[rid] if rid in self.requests else self.strays).append(frame)
        return True

    def run(self, requests: Iterable[wire.JobRequest], concurrency: int, timeout: float) -> None:
        """Keep `concurrency` jobs in flight until `requests` is exhausted and every job has a reply."""
        todo = iter(requests)
        exhausted = False
        deadline = time.monotonic() + timeout
        while True:
            while not exhausted and len(self.unanswered()) < concurrency:
                request = next(todo, None)
                if request is None:
                    exhausted = True
                else:
                    self.submit(request)
            if exhausted and not self.unanswered():
                return
            if self.closed:
                raise AssertionError(f"the daemon closed the connection; unanswered: {self.unanswered()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no answer in {timeout}s for rids {self.unanswered()}")
            self.read(1.0)

    def drain(self, quiet_s: float = 2.0, timeout: float = 120.0) -> None:
        """Read until the connection is closed or no frame has come for quiet_s."""
        deadline = time.monotonic() + timeout
        while self.read(quiet_s):
            if time.monotonic() > deadline:
                raise AssertionError(f"the daemon kept sending for {timeout}s")

    def answers(self) -> dict[int, wire.Answer]:
        """Each job's one answer; raises if a job has none, more than one, or another job's."""
        problems = []
        for rid, request in self.requests.items():
            got = self.replies.get(rid, [])
            if len(got) != 1:
                problems.append(f"rid {rid} (job {request.id}): {len(got)} replies {got!r:.300}")
            elif not isinstance(got[0], wire.Result):
                problems.append(f"rid {rid} (job {request.id}): not an answer: {got[0]!r:.300}")
            elif request.id is not None and got[0].answer.id != request.id:
                problems.append(f"rid {rid}: job {request.id} answered as {got[0].answer.id}")
        if self.strays:
            problems.append(f"frames for no job of ours: {self.strays!r:.500}")
        assert not problems, "not one answer per job:\n" + "\n".join(problems[:20])
        return {rid: got[0].answer for rid, got in self.replies.items()}
