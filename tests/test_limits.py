"""Everything a client can grow is bounded: connection deadlines and caps, job timeouts, sessions."""
from __future__ import annotations

import asyncio
import resource
import socket
import subprocess
import sys
import time

import pytest

from foxden.aclient import AsyncClient
from foxden.client import Client, ServerError
from foxden.protocols import wire

pytestmark = pytest.mark.browser

TOKEN = "limits-test-token"


def _raw(d) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(d.config.daemon.socket))
    return sock


def _hello(sock: socket.socket) -> None:
    sock.sendall(wire.encode(wire.Hello(token=TOKEN)))
    assert isinstance(wire.read_frame(sock), wire.Welcome)


def _replies_until_closed(sock: socket.socket, timeout: float = 60.0) -> list:
    """Every frame the daemon sends on sock until it closes it (raises if it stays open past timeout)."""
    sock.settimeout(timeout)
    out = []
    while True:
        try:
            out.append(wire.read_frame(sock))
        except ConnectionError:
            return out


def _client(d, **kw) -> Client:
    return Client(d.config.daemon.socket, token=TOKEN, timeout=60, **kw)


def test_a_thousand_idle_and_half_frame_connections_are_dropped_within_the_deadline_while_a_client_is_served(
        make_daemon, site):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    d = make_daemon({"daemon": {"token": TOKEN, "header_timeout_s": 3.0}, "pool": {"size": 1}})
    half = wire.encode(wire.Ping(1))[:-2]  # a length prefix and part of the body: never completed
    greeted = _raw(d)  # authenticated, then it leaves a frame half-sent: the same deadline
    _hello(greeted)
    greeted.sendall(half)
    strangers = [greeted]
    served = 0
    with _client(d) as client:
        try:
            for i in range(1, 1000):
                sock = _raw(d)
                if i % 2:  # half of them say nothing at all, half leave a frame half-sent
                    sock.sendall(half)
                strangers.append(sock)
                if i % 100 == 0:
                    client.ping()
                    served += 1
            opened = time.monotonic()
            assert client.submit(site.url("/page/1")).status == "ok"
            closed = []
            for sock in strangers:
                replies = _replies_until_closed(sock)
                closed.append(time.monotonic() - opened)
                assert [r.code for r in replies] == ["header_timeout"], replies
                client.ping()
                served += 1
            assert client.submit(site.url("/page/2")).status == "ok"
            assert client.status()["pool"]["state"] != "failed"
        finally:
            for sock in strangers:
                sock.close()
    print(f"1000 silent or half-frame connections closed {max(closed):.1f}s after the last was opened "
          f"(header_timeout_s = 3); the client was served {served} times meanwhile")


def test_the_connection_cap_sheds_unauthenticated_connections_first_and_never_an_authenticated_one(make_daemon):
    d = make_daemon({"daemon": {"token": TOKEN, "max_connections": 4, "header_timeout_s": 60.0},
                     "pool": {"size": 1}})
    authed = [_raw(d), _raw(d)]
    for sock in authed:
        _hello(sock)
    strangers = [_raw(d), _raw(d)]  # 4 connections: the cap
    time.sleep(0.2)  # accepted in order, so the first stranger is the oldest
    newcomer = _raw(d)
    try:
        replies = _replies_until_closed(strangers[0])
        assert [r.code for r in replies] == ["connection_shed"], replies
        assert "max_connections" in replies[0].message
        _hello(newcomer)  # admitted, and now authenticated
        for sock in authed:
            sock.sendall(wire.encode(wire.Ping(7)))
            assert wire.read_frame(sock) == wire.Pong(7), "an authenticated connection was shed"
        # Now: 3 authenticated and 1 stranger. The next newcomer sheds the stranger; the one after
        # finds only authenticated connections and is refused, with a clear error.
        second = _raw(d)
        assert [r.code for r in _replies_until_closed(strangers[1])] == ["connection_shed"]
        _hello(second)
        refused = _raw(d)
        replies = _replies_until_closed(refused)
        assert [r.code for r in replies] == ["too_many_connections"], replies
        for sock in [*authed, newcomer, second]:
            sock.sendall(wire.encode(wire.Ping(8)))
            assert wire.read_frame(sock) == wire.Pong(8)
        second.close()
        refused.close()
    finally:
        for sock in [*authed, *strangers, newcomer]:
            sock.close()


def test_requests_beyond_the_in_flight_cap_are_refused_and_the_connection_kept(make_daemon):
    d = make_daemon({"daemon": {"token": TOKEN, "max_inflight_per_connection": 50}, "pool": {"size": 1}})
    sock = _raw(d)
    try:
        _hello(sock)
        sock.sendall(b"".join(wire.encode(wire.StatusRequest(rid)) for rid in range(300)))
        sock.settimeout(60)
        replies = [wire.read_frame(sock) for _ in range(300)]
        answered = [r for r in replies if isinstance(r, wire.StatusReply)]
        refused = [r for r in replies if isinstance(r, wire.ErrorReply)]
        assert len(answered) == 50 and len(refused) == 250, [type(r).__name__ for r in replies]
        assert {r.code for r in refused} == {"too_many_requests"}
        assert "max_inflight_per_connection" in refused[0].message
        # The 50 that were taken shared one status query: one snapshot, not 50 of them.
        assert all(r.status == answered[0].status for r in answered)
        sock.sendall(wire.encode(wire.Ping(999)))
        assert wire.read_frame(sock) == wire.Pong(999), "the connection was not kept"
    finally:
        sock.close()


def test_idle_and_stranger_connections_are_closed_with_a_clear_error(make_daemon):
    d = make_daemon({"daemon": {"token": TOKEN, "idle_timeout_s": 1.0, "header_timeout_s": 30.0},
                     "pool": {"size": 1}})
    idle = _raw(d)
    hog = _raw(d)
    try:
        _hello(idle)
        replies = _replies_until_closed(idle)
        assert [r.code for r in replies] == ["idle_timeout"] and "idle_timeout_s" in replies[0].message
        # Before its hello a stranger may not make the daemon hold more than a little.
        hog.sendall((1 << 20).to_bytes(4, "big") + b"x" * (64 << 10))
        replies = _replies_until_closed(hog)
        assert [r.code for r in replies] == ["frame_too_large"] and "hello" in replies[0].message
        with _client(d) as client:
            time.sleep(2.0)  # idle past the deadline: the next request says why it was closed
            with pytest.raises(ServerError, match="idle_timeout"):
                client.ping()
    finally:
        idle.close()
        hog.close()


def test_a_job_asking_for_more_than_max_timeout_s_is_rejected_as_bad_input(make_daemon, site):
    d = make_daemon({"jobs": {"max_timeout_s": 60.0}, "pool": {"size": 1}})
    with d.client(timeout=60) as client:
        answer = client.submit(site.url("/page/1"), timeout_s=1e6)
        assert answer.status == "rejected" and answer.error.code == "bad_input"
        assert "job.timeout_s" in answer.error.message and "max_timeout_s" in answer.error.message
        assert client.submit(site.url("/page/1"), timeout_s=60.0).status == "ok"


def _held(d) -> set[str]:
    return {s for c in d.status()["children"] for s in c["sessions"]}


def test_sessions_are_capped_ended_on_request_and_expired_when_idle(make_daemon, site):
    d = make_daemon({"sessions": {"max": 2, "idle_s": 3.0}, "pool": {"size": 1}})
    with d.client(timeout=60) as client:
        assert client.submit(site.url("/page/1"), session="a").status == "ok"
        assert client.submit(site.url("/page/1"), session="b").status == "ok"
        third = client.submit(site.url("/page/1"), session="c")
        assert third.status == "rejected" and third.error.code == "too_many_sessions"
        assert "[sessions] max" in third.error.message
        assert _held(d) == {"a", "b"}
        assert client.end_session("a") is True
        assert _held(d) == {"b"}, "ending a session did not close its browser context"
        assert client.end_session("a") is False
        assert client.end_session("never-opened") is False
        assert client.submit(site.url("/page/1"), session="c").status == "ok"
        r = subprocess.run([sys.executable, "-m", "foxden", "session", "end", "c", "-c", d.config_path],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and "ended" in r.stdout, r.stdout + r.stderr

        async def async_end() -> tuple[bool, bool]:
            async with AsyncClient.from_config(d.config, timeout=60) as ac:
                await ac.submit(site.url("/page/1"), session="d")
                return await ac.end_session("d"), await ac.end_session("d")

        assert asyncio.run(async_end()) == (True, False)
        # b has been unused for a while now: it expires, and its context is closed.
        d.wait_until(lambda s: not {x for c in s["children"] for x in c["sessions"]}, timeout=60)
        assert client.submit(site.url("/page/1"), session="b").status == "ok", "an expired session starts afresh"


def test_end_session_runs_after_the_session_s_queued_jobs(make_daemon, site):
    d = make_daemon({"pool": {"size": 1}})
    with d.client(timeout=60) as client:
        jobs = [client_job for client_job in (
            wire.JobRequest(url=site.url("/page/1"), session="s", eval="new Promise(r => setTimeout(r, 300))"),
            wire.JobRequest(url=site.url("/page/2"), session="s"),
        )]
        rids = []
        for job in jobs:
            rid = next(client._rids)
            rids.append(rid)
            client._send(wire.Submit(rid, job))
        end_rid = next(client._rids)
        client._send(wire.EndSession(end_rid, "s"))
        order = [client._next_reply({*rids, end_rid}) for _ in range(3)]
        assert [type(r).__name__ for r in order] == ["Result", "Result", "SessionEnded"], order
        assert all(r.answer.status == "ok" for r in order[:2]) and order[2].existed
        assert _held(d) == set()
