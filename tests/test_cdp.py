"""The CDP pipe connection's framing and bookkeeping, against a scripted peer on real pipes."""
from __future__ import annotations

import json
import os
import threading
import time

import pytest

from foxden.drivers.cdp import CdpError, CdpPipe, CdpTimeout, PipeClosed


class Peer:
    """The browser's side of the two pipes: reads our commands, writes whatever a test tells it."""

    def __init__(self):
        to_peer_r, to_peer_w = os.pipe()
        from_peer_r, from_peer_w = os.pipe()
        self.events: list = []
        self.pipe = CdpPipe(from_peer_r, to_peer_w, lambda m, p, s: self.events.append((m, p, s)))
        self._r, self._w = to_peer_r, from_peer_w
        self._buf = b""

    def commands(self, n: int = 1) -> list[dict]:
        out = []
        while len(out) < n:
            while b"\0" not in self._buf:
                self._buf += os.read(self._r, 65536)
            raw, self._buf = self._buf.split(b"\0", 1)
            out.append(json.loads(raw))
        return out

    def write(self, *messages: dict, split_at: int | None = None) -> None:
        data = b"".join(json.dumps(m).encode() + b"\0" for m in messages)
        if split_at is None:
            os.write(self._w, data)
        else:  # one frame across two writes (and so across two reads)
            os.write(self._w, data[:split_at])
            time.sleep(0.05)
            os.write(self._w, data[split_at:])

    def hang_up(self) -> None:
        os.close(self._w)
        self._w = -1

    def close(self) -> None:
        self.pipe.close()
        for fd in (self._r, self._w):
            if fd >= 0:
                os.close(fd)


@pytest.fixture
def peer():
    p = Peer()
    yield p
    p.close()


def test_a_command_gets_its_own_reply_even_split_across_reads(peer):
    cid = peer.pipe.send("Browser.getVersion")
    (cmd,) = peer.commands()
    assert cmd == {"id": cid, "method": "Browser.getVersion", "params": {}}
    threading.Thread(target=peer.write, args=({"id": cid, "result": {"product": "X/1"}},),
                     kwargs={"split_at": 7}).start()
    assert peer.pipe.result(cid, time.monotonic() + 5) == {"product": "X/1"}


def test_pipelined_replies_in_any_order_and_events_between_them(peer):
    a = peer.pipe.send("A", {"x": 1}, session="s1")
    b = peer.pipe.send("B")
    cmds = peer.commands(2)
    assert cmds[0]["sessionId"] == "s1" and "sessionId" not in cmds[1]
    peer.write({"id": b, "result": {"b": 1}}, {"method": "Page.lifecycleEvent", "params": {"name": "load"},
                                               "sessionId": "s1"}, {"id": a, "result": {"a": 1}})
    assert peer.pipe.result(a, time.monotonic() + 5) == {"a": 1}
    assert peer.pipe.result(b, time.monotonic() + 5) == {"b": 1}
    assert peer.events == [("Page.lifecycleEvent", {"name": "load"}, "s1")]


def test_an_error_reply_is_cdp_error_naming_the_method(peer):
    cid = peer.pipe.send("Target.createTarget")
    peer.write({"id": cid, "error": {"code": -32000, "message": "Failed to open a new tab"}})
    with pytest.raises(CdpError, match="Target.createTarget: Failed to open a new tab") as e:
        peer.pipe.result(cid, time.monotonic() + 5)
    assert e.value.code == -32000


def test_a_discarded_reply_is_dropped_and_never_answers_a_later_command(peer):
    old = peer.pipe.send("Page.navigate")
    peer.pipe.discard(old)
    new = peer.pipe.send("Runtime.evaluate")
    peer.write({"id": old, "result": {"stale": True}}, {"id": new, "result": {"fresh": True}})
    assert peer.pipe.result(new, time.monotonic() + 5) == {"fresh": True}
    assert old not in peer.pipe._replies and not peer.pipe._discarded


def test_no_reply_by_the_deadline_is_a_timeout_and_the_connection_goes_on(peer):
    cid = peer.pipe.send("Slow")
    t = time.monotonic()
    with pytest.raises(CdpTimeout):
        peer.pipe.result(cid, time.monotonic() + 0.2)
    assert 0.15 < time.monotonic() - t < 2
    peer.write({"id": cid, "result": {}})
    assert peer.pipe.result(cid, time.monotonic() + 5) == {}


def test_cancel_ends_a_wait_whose_reply_will_never_come(peer):
    cid = peer.pipe.send("Runtime.evaluate")
    threading.Timer(0.1, peer.write, ({"method": "Inspector.targetCrashed", "params": {}, "sessionId": "s"},)).start()
    crashed = lambda: "the page crashed" if peer.events else None  # noqa: E731
    with pytest.raises(CdpError, match="the page crashed"):
        peer.pipe.result(cid, None, crashed)
    peer.write({"id": cid, "result": {"late": 1}})
    peer.pipe.poll()
    assert not peer.pipe._replies  # the late reply was dropped


def test_end_of_file_is_pipe_closed_for_waits_sends_and_polls(peer):
    cid = peer.pipe.send("Browser.close")
    peer.hang_up()
    with pytest.raises(PipeClosed):
        peer.pipe.result(cid, time.monotonic() + 5)
    assert peer.pipe.closed
    with pytest.raises(PipeClosed):
        peer.pipe.send("Anything")
    with pytest.raises(PipeClosed):
        peer.pipe.poll()


def test_undecodable_frames_are_skipped(peer):
    cid = peer.pipe.send("X")
    os.write(peer._w, b"{not json\0")
    peer.write({"id": cid, "result": {"ok": 1}})
    assert peer.pipe.result(cid, time.monotonic() + 5) == {"ok": 1}
