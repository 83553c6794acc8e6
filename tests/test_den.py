"""End to end on a real actor system with real Chromium: jobs, hangs, crashes, sessions, limits."""
from __future__ import annotations

import os
import signal
import socket
import struct
import threading

import msgpack
import pytest

from foxden import procs
from foxden.client import job_request
from foxden.protocols import wire
from wiretap import Tap

pytestmark = pytest.mark.browser


def busy_child(daemon, timeout=20.0) -> dict:
    st = daemon.wait_until(lambda s: any(c["state"] == "busy" and c["browser_pids"] for c in s["children"]),
                           timeout=timeout, interval=0.05)
    return next(c for c in st["children"] if c["state"] == "busy")


def submit_async(daemon, url, **job):
    """Submit on a thread; returns (thread, box) where box["answer"] is set when it arrives."""
    box: dict = {}

    def run():
        with daemon.client() as c:
            box["answer"] = c.submit(url, **job)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, box


def test_job_round_trip(make_daemon, site, tmp_path):
    d = make_daemon()
    with d.client() as c:
        a = c.submit(site.url("/page/7"), eval="document.querySelectorAll('li').length",
                     wait_for="#title", screenshot=True, id="mine")
    assert a.status == "ok", a
    assert a.id == "mine" and a.attempts == 1 and a.browser.startswith("b")
    r = a.result
    assert (r.title, r.http_status, r.final_url, r.eval) == ("Page 7", 200, site.url("/page/7"), 20)
    assert r.content_length > 500 and r.screenshot[:8] == b"\x89PNG\r\n\x1a\n"
    with d.client() as c:
        awaited = c.submit(site.url("/"), eval="new Promise(r => setTimeout(() => r({a: [1, 'x']}), 50))")
        notfound = c.submit(site.url("/status/404"))
        refused = c.submit("http://127.0.0.1:9/")  # nothing listens on port 9
    assert awaited.result.eval == {"a": [1, "x"]}
    assert notfound.status == "ok" and notfound.result.http_status == 404
    assert refused.status == "failed" and refused.error.code == "navigation_failed"
    st = d.status()
    assert st["browsers"]["live"] == 2 and st["invariants"]["ok"], st["invariants"]
    assert st["totals"]["submitted"] == 4 and st["totals"]["ok"] == 3 and st["totals"]["failed"] == 1
    child = st["children"][0]
    assert set(child) >= {"id", "pid", "browser_pids", "engine", "state", "job", "jobs_done", "started_at",
                          "pss_bytes"}
    assert child["engine"] == "chromium" and child["pss_bytes"] > 10_000_000 and child["browser_pids"]


@pytest.mark.firefox
def test_job_round_trip_on_firefox(make_daemon, site):
    d = make_daemon({"pool": {"engine": "firefox", "size": 1}, "jobs": {"timeout_s": 20.0}})
    with d.client() as c:
        a = c.submit(site.url("/page/4"), eval="new Promise(r => r(document.title.length))", wait_for="#title")
        b = c.submit(site.url("/cookie/set?v=ff"), session="F")
        cookie = c.submit(site.url("/cookie/get"), session="F")
    assert a.status == "ok", a
    assert (a.result.title, a.result.http_status, a.result.eval) == ("Page 4", 200, 6)
    assert b.status == "ok" and cookie.result.title == "cookie foxden=ff"
    st = d.status()
    assert st["engine"] == "firefox" and st["children"][0]["engine"] == "firefox"
    assert st["children"][0]["version"].startswith("firefox") and st["invariants"]["ok"]


def test_token_is_required_when_configured(make_daemon, site):
    from foxden.client import Client, ServerError

    d = make_daemon({"daemon": {"token": "s3cret"}, "pool": {"size": 1}})
    sock = d.config.daemon.socket
    with pytest.raises(ServerError, match="unauthorized"):
        with Client(sock) as c:
            c.ping()
    with pytest.raises(ServerError, match="unauthorized"):
        Client(sock, token="wrong")
    with Client(sock, token="s3cret") as c:
        assert c.submit(site.url("/page/1")).status == "ok"


@pytest.mark.parametrize("bad", ["file:///etc/passwd", "chrome://settings", "view-source:http://127.0.0.1/",
                                 "javascript:alert(1)", "about:config", "data:text/html,hi", "http://"])
def test_bad_urls_are_rejected(make_daemon, bad):
    d = make_daemon({"pool": {"size": 1}})
    with d.client() as c:
        a = c.submit(bad)
    assert a.status == "rejected" and a.error.code in ("unsupported_scheme", "bad_url"), a
    assert a.attempts == 0


@pytest.mark.parametrize("expr", ["new Promise(() => {})", "while (true) {}"])
def test_hung_eval_times_out_and_browser_is_replaced(make_daemon, site, expr):
    d = make_daemon({"jobs": {"timeout_s": 3.0, "jitter_s": 0.5}})
    before = {c["id"]: c for c in d.status()["children"]}
    # Answered at all (the watchdog ends the hang): a generous deadline, not a duration
    # (how long a hang lives is measured: status's watchdog.hang_to_dead_ms, the chaos summary).
    with d.client(timeout=120) as c:
        a = c.submit(site.url("/"), eval=expr)
    assert a.status == "timeout" and a.error.code == "timeout", a
    victim = before[a.browser]
    st = d.wait_until(lambda s: s["browsers"]["by_state"]["idle"] == 2)
    assert a.browser not in {c["id"] for c in st["children"]}
    assert st["watchdog"]["kills_by_reason"] == {"timeout": 1} and st["restarts"] == 1
    gone = [victim["pid"], *victim["browser_pids"]]
    assert not [p for p in gone if procs.pid_alive(p)], "the hung browser's processes survived"
    assert st["invariants"]["ok"], st["invariants"]


def test_hanging_response_times_out_without_killing(make_daemon, site):
    # kill_grace_s leaves Playwright's own navigation timeout time to fire first.
    d = make_daemon({"pool": {"size": 1}, "jobs": {"timeout_s": 2.0, "jitter_s": 0.0},
                     "watchdog": {"kill_grace_s": 2.0}})
    with d.client() as c:
        a = c.submit(site.url("/hang"))
        b = c.submit(site.url("/page/1"))
    assert a.status == "timeout" and "navigate" in a.error.message
    assert b.status == "ok" and b.browser == a.browser  # Playwright's own timeout: the browser lives on
    assert d.status()["watchdog"]["kills"] == 0


@pytest.mark.parametrize("target", ["browser", "actor"])
def test_killed_mid_job_is_retried_on_another_browser(make_daemon, site, target):
    d = make_daemon({"jobs": {"retries": 1}})
    t, box = submit_async(d, site.url("/slow?ms=4000"))
    victim = busy_child(d)
    os.kill(victim["browser_pids"][0] if target == "browser" else victim["pid"], signal.SIGKILL)
    t.join(30)
    a = box["answer"]
    assert a.status == "ok" and a.attempts == 2 and a.browser != victim["id"], a
    st = d.wait_until(lambda s: s["browsers"]["live"] == 2 and s["browsers"]["by_state"]["idle"] == 2)
    assert st["totals"]["retried"] == 1 and st["restarts"] == 1
    assert not procs.pid_alive(victim["pid"]) and not any(procs.pid_alive(p) for p in victim["browser_pids"])
    assert st["invariants"]["ok"], st["invariants"]


def test_killed_mid_job_without_retries_fails_browser_crashed(make_daemon, site):
    d = make_daemon({"jobs": {"retries": 0}})
    t, box = submit_async(d, site.url("/slow?ms=4000"))
    victim = busy_child(d)
    os.kill(victim["browser_pids"][0], signal.SIGKILL)
    t.join(30)
    a = box["answer"]
    assert a.status == "failed" and a.error.code == "browser_crashed" and a.attempts == 1, a
    d.wait_until(lambda s: s["browsers"]["by_state"]["idle"] == 2)


def test_idle_browser_killed_is_noticed_and_replaced(make_daemon):
    d = make_daemon({"pool": {"size": 1}})
    child = d.status()["children"][0]
    os.kill(child["browser_pids"][0], signal.SIGKILL)
    st = d.wait_until(lambda s: s["children"] and s["children"][0]["id"] != child["id"]
                      and s["children"][0]["state"] == "idle", timeout=20)
    assert st["exits"].get("crash") == 1 and st["restarts"] == 1
    assert not procs.pid_alive(child["pid"])


def test_frozen_browser_actor_is_killed_by_heartbeat(make_daemon):
    d = make_daemon({"pool": {"size": 1}, "watchdog": {"heartbeat_timeout_s": 1.0}})
    child = d.status()["children"][0]
    os.kill(child["pid"], signal.SIGSTOP)
    st = d.wait_until(lambda s: s["children"] and s["children"][0]["id"] != child["id"], timeout=20)
    assert st["watchdog"]["kills_by_reason"].get("unresponsive") == 1
    assert not procs.pid_alive(child["pid"])


def test_frozen_idle_browser_is_killed_and_replaced(make_daemon):
    d = make_daemon({"pool": {"size": 1}})
    child = d.status()["children"][0]
    os.kill(child["browser_pids"][0], signal.SIGSTOP)
    st = d.wait_until(lambda s: s["children"] and s["children"][0]["id"] != child["id"], timeout=20)
    assert st["watchdog"]["kills_by_reason"].get("unresponsive") == 1
    assert not any(procs.pid_alive(p) for p in [child["pid"], *child["browser_pids"]])


def test_crash_looping_engine_gives_up_with_a_clear_error(make_daemon, tmp_path):
    fake = tmp_path / "fake-chromium"
    fake.write_text("#!/bin/sh\necho 'this browser is broken' >&2\nexit 1\n")
    fake.chmod(0o755)
    d = make_daemon({"pool": {"engine": "chromium", "executable_path": str(fake), "size": 2},
                     "restart": {"intensity": 3, "period_s": 60.0}})
    st = d.wait_until(lambda s: s["pool"]["state"] == "failed" and s["browsers"]["live"] == 0, timeout=60)
    assert "intensity" in st["pool"]["error"]
    # Intensity 3: three restarts, and the 4th failure in the window gives up.
    # Two launch at once (size 2), so a 5th launch may already be failing
    # when the supervisor gives up: its exit is counted, but not restarted.
    assert st["restarts"] == 3 and st["exits"]["launch_failed"] in (4, 5)
    assert "this browser is broken" in st["pool"]["error"]  # the browser's own words reach the client
    with d.client(timeout=120) as c:  # answered at once, not after a queue timeout: the status says which
        a = c.submit("http://127.0.0.1:9/")
    assert a.status == "failed" and a.error.code == "no_browsers", a
    assert "launch error" in a.error.message


def test_sessions_keep_cookies_and_run_in_order(make_daemon, site):
    d = make_daemon()
    reqs = [job_request(site.url("/cookie/set?v=s1"), session="A"),
            job_request(site.url("/cookie/set?v=s2"), session="B")]
    reqs += [job_request(site.url(f"/cookie/get?n={i}"), session="A") for i in range(4)]
    reqs += [job_request(site.url("/cookie/get?n=B"), session="B"), job_request(site.url("/cookie/get?n=none"))]
    with d.client() as c:
        answers = {i: a for i, _, a in c.submit_many(reqs, concurrency=len(reqs))}
    assert all(a.status == "ok" for a in answers.values()), answers
    for i in range(2, 6):
        assert answers[i].result.title == "cookie foxden=s1"
        assert answers[i].browser == answers[0].browser  # a session lives in one browser
    assert answers[6].result.title == "cookie foxden=s2"
    assert answers[7].result.title == "cookie"  # no session: a fresh context
    order = [p for p in site.requests if p.startswith("/cookie/get?n=") and p[-1].isdigit()]
    assert order[-4:] == [f"/cookie/get?n={i}" for i in range(4)]


def test_session_lost_with_its_browser(make_daemon, site):
    d = make_daemon({"pool": {"size": 1}, "sessions": {"persist": False}})  # persisted: see test_sessions.py
    with d.client() as c:
        first = c.submit(site.url("/cookie/set?v=x"), session="S")
    os.kill(next(ch for ch in d.status()["children"])["pid"], signal.SIGKILL)
    d.wait_until(lambda s: s["children"] and s["children"][0]["id"] != first.browser
                 and s["children"][0]["state"] == "idle")
    with d.client() as c:
        lost = c.submit(site.url("/cookie/get"), session="S")
        fresh = c.submit(site.url("/cookie/get"), session="S", new_session=True)
        again = c.submit(site.url("/cookie/get"), session="S")
    assert lost.status == "failed" and lost.error.code == "session_lost", lost
    assert fresh.status == "ok" and fresh.result.title == "cookie"
    assert again.status == "ok"


def test_queue_limit_rejects(make_daemon, site):
    d = make_daemon({"pool": {"size": 1}, "jobs": {"max_queue": 2}})
    reqs = [job_request(site.url("/slow?ms=1500"))] + [job_request(site.url(f"/page/{i}")) for i in range(5)]
    with d.client() as c:
        answers = [a for _, _, a in sorted(c.submit_many(reqs, concurrency=6), key=lambda x: x[0])]
    statuses = [a.status for a in answers]
    assert statuses.count("rejected") == 3 and statuses.count("ok") == 3, statuses
    assert {a.error.code for a in answers if a.status == "rejected"} == {"queue_full"}


def _raw(path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    return s


def _frame(obj) -> bytes:
    body = msgpack.packb(obj, use_bin_type=True)
    return struct.pack(">I", len(body)) + body


def _read_reply(s: socket.socket):
    dec = wire.FrameDecoder(wire.MAX_REPLY_FRAME)
    while True:
        data = s.recv(65536)
        if not data:
            return None
        items = dec.feed(data)
        if items:
            return items[0]


def test_malformed_frames_get_protocol_errors_and_the_daemon_stays_healthy(make_daemon, site):
    d = make_daemon({"pool": {"size": 1}})
    sock_path = str(d.config.daemon.socket)
    cases = [
        (struct.pack(">I", 5) + b"\xc1\xc1\xc1\xc1\xc1", "bad_frame"),
        (_frame([1, 2, 3]), "bad_frame"),
        (_frame({"v": 9, "type": "ping", "rid": 1}), "unsupported_version"),
        (_frame({"v": 1, "type": "launch_missiles", "rid": 2}), "unknown_type"),
        (_frame({"v": 1, "type": "submit", "rid": 3}), "missing_field"),
        (_frame({"v": 1, "type": "submit", "rid": 4, "job": {"url": 5}}), "bad_field"),
        (_frame({"v": 1, "type": "result", "rid": 5, "answer": {}}), None),
    ]
    with _raw(sock_path) as s:
        for data, code in cases:
            s.sendall(data)
            reply = _read_reply(s)
            assert isinstance(reply, wire.ErrorReply), (data, reply)
            if code:
                assert reply.code == code, (data, reply)
        # the same connection still works after all of that
        s.sendall(wire.encode(wire.Submit(9, wire.JobRequest(url=site.url("/page/1")))))
        ok = _read_reply(s)
        assert isinstance(ok, wire.Result) and ok.answer.status == "ok"
    with _raw(sock_path) as s:
        s.sendall(struct.pack(">I", 1 << 30))  # a 1 GiB frame: refused, connection closed
        reply = _read_reply(s)
        assert reply.code == "frame_too_large"
        assert _read_reply(s) is None
    with _raw(sock_path) as s:
        s.sendall(struct.pack(">I", 100) + b"\x81")  # truncated, then the client vanishes
    st = d.status()
    assert st["browsers"]["live"] == 1 and st["invariants"]["ok"]
    with d.client() as c:
        assert c.submit(site.url("/page/2")).status == "ok"


def test_stop_under_load_answers_every_job_exactly_once(make_daemon, site):
    """Every frame is read until the daemon closes the connection, so a second answer is seen."""
    d = make_daemon({"daemon": {"grace_s": 2.0}, "jobs": {"max_queue": 100}})
    reqs = [job_request(site.url(f"/slow?ms={300 + 50 * i}"), id=f"job-{i}") for i in range(30)]
    failures: list[BaseException] = []
    tap = Tap(str(d.config.daemon.socket))

    def client():
        try:
            for r in reqs:
                tap.submit(r)
            tap.drain(quiet_s=30.0, timeout=120.0)  # until the stopped daemon closes the connection
        except BaseException as exc:  # re-raised below, in the test's thread
            failures.append(exc)

    t = threading.Thread(target=client, daemon=True)
    with tap:
        t.start()
        busy_child(d)
        assert d.stop() == 0
        t.join(150)
    assert not t.is_alive() and not failures, failures
    assert tap.closed, "the daemon stopped but the connection stayed open"
    answers = list(tap.answers().values())  # one per job, each under its own id: none twice
    assert sorted(a.id for a in answers) == sorted(r.id for r in reqs)
    statuses = {a.status for a in answers}
    assert statuses <= {"ok", "rejected", "failed"}, statuses
    assert any(a.status == "rejected" and a.error.code == "shutting_down" for a in answers)
    assert d.leftovers() == []


def _thread_nices(pid: int) -> list[int]:
    out = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            out.append(os.getpriority(os.PRIO_PROCESS, int(tid)))
        except OSError:
            pass
    return out


def test_browsers_run_below_the_control_plane(make_daemon, site):
    """Every thread of every browser process has a lower CPU priority than any control-plane process."""
    d = make_daemon({"pool": {"size": 1, "browser_nice": 10}})
    with d.client() as c:
        assert c.submit(site.url("/page/1")).status == "ok"
        st = c.status()
    # The actors' own threads (the admin's PSS reader is nice'r on purpose).
    control = [d.proc.pid, *st["pids"].values(), st["children"][0]["pid"]]
    control_nice = max(os.getpriority(os.PRIO_PROCESS, pid) for pid in control)
    if os.geteuid() == 0:
        assert control_nice == -10  # [daemon] nice, which root may set
    browser = procs.ProcessTable().tree(st["children"][0]["browser_pids"][0])
    assert len(browser) >= 3
    nices = {pid: _thread_nices(pid) for pid in browser}
    if os.geteuid() == 0:
        # Root's Chromium sets some of its threads itself (-8 for its UI, GPU
        # and compositor threads): still below a control plane at -10.
        assert all(n > control_nice for ns in nices.values() for n in ns), (control_nice, nices)
    else:
        assert all(n >= control_nice + 10 for ns in nices.values() for n in ns), (control_nice, nices)


def test_status_says_where_its_time_went(make_daemon):
    d = make_daemon({"pool": {"size": 1}})
    with d.client() as c:
        st = c.status()
    s = st["sample_ms"]
    assert set(s) == {"total", "last_chain", "document", "rechecks"}
    assert 0 < s["last_chain"] <= s["total"] and s["document"] <= s["total"] and s["rechecks"] == 0
    assert st["children"][0]["pss_bytes"] > 10_000_000  # a browser never read before is read on the spot
