"""Elastic, memory-aware pool and recycling: grow on demand, shrink when idle, retire and replace."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest

from foxden import procs
from foxden.client import job_request
from wiretap import Tap

pytestmark = pytest.mark.browser


def test_pool_grows_while_jobs_wait_and_shrinks_when_idle(make_daemon, site):
    d = make_daemon({"pool": {"min": 1, "max": 3, "size": 1, "prewarm": 0, "idle_shrink_s": 1.5}})
    assert d.status()["browsers"]["live"] == 1
    reqs = [job_request(site.url("/slow?ms=2500")) for _ in range(3)]
    with d.client() as c:
        answers = [a for _, _, a in c.submit_many(reqs, concurrency=3)]
    assert all(a.status == "ok" for a in answers)
    assert len({a.browser for a in answers}) >= 2  # (which ones ran them depends on launch times)
    st = d.wait_until(lambda s: s["browsers"]["live"] == 1, timeout=30)
    assert st["retirements"] == {"idle": 2} and st["restarts"] == 0
    assert st["pool"]["min"] == 1 and st["pool"]["max"] == 3 and st["invariants"]["ok"]


def test_prewarm_keeps_a_spare_ready(make_daemon, site):
    d = make_daemon({"pool": {"min": 1, "max": 3, "size": 1, "prewarm": 1, "idle_shrink_s": 30}})
    with d.client() as c:
        assert c.submit(site.url("/slow?ms=1500")).status == "ok"
    st = d.wait_until(lambda s: s["browsers"]["by_state"]["idle"] >= 2, timeout=20)
    assert st["browsers"]["live"] == 2  # the one that worked, and the spare started while it was busy


def test_browsers_are_recycled_after_max_jobs(make_daemon, site):
    d = make_daemon({"pool": {"size": 1}, "recycle": {"max_jobs": 2}})
    with d.client() as c:
        answers = [c.submit(site.url(f"/page/{i}")) for i in range(5)]
    assert all(a.status == "ok" for a in answers), answers
    assert [a.browser for a in answers] == ["b1", "b1", "b2", "b2", "b3"]
    st = d.wait_until(lambda s: s["browsers"]["by_state"]["idle"] == 1)
    assert st["retirements"]["recycled_jobs"] == 2 and st["restarts"] == 0 and st["totals"]["retried"] == 0


def test_browsers_over_max_pss_are_recycled(make_daemon, site):
    d = make_daemon({"pool": {"size": 1}, "recycle": {"max_pss_mb": 1}})  # every browser is bigger
    st = d.wait_until(lambda s: s["retirements"].get("recycled_memory", 0) >= 1, timeout=30)
    assert st["restarts"] == 0
    with d.client() as c:
        assert c.submit(site.url("/page/1")).status == "ok"


def test_a_browser_much_slower_than_the_pool_is_retired(make_daemon, site):
    d = make_daemon({"recycle": {"degrade_factor": 2.0, "degrade_min_jobs": 4}})
    slow = [job_request(site.url("/slow?ms=3000"), session="slow") for _ in range(5)]
    fast = [job_request(site.url(f"/page/{i}")) for i in range(8)]
    with d.client() as c:
        answers = [a for _, _, a in c.submit_many(slow + fast, concurrency=2)]
    assert all(a.status in ("ok", "failed") for a in answers)
    st = d.wait_until(lambda s: s["retirements"].get("degraded", 0) >= 1, timeout=40)
    assert st["restarts"] == 0


def test_memory_admission_holds_starts_back(make_daemon, site):
    d = make_daemon({"pool": {"size": 1, "memory_headroom_mb": 10_000_000},
                     "jobs": {"queue_timeout_s": 1.0}}, start=False)
    d.start(wait_pool=False)
    st = d.wait_until(lambda s: s["pool"]["held_back"] is not None)
    assert st["browsers"]["live"] == 0 and "MiB available" in st["pool"]["held_back"]
    with d.client() as c:
        a = c.submit(site.url("/page/1"))
    assert a.status == "timeout" and a.error.code == "queue_timeout"


def test_launches_are_throttled_to_launch_concurrency(make_daemon, site):
    """Fifty launches at once on two cores starved heartbeats and failed the pool; now at most N start at once."""
    d = make_daemon({"pool": {"size": 4, "launch_concurrency": 1}}, start=False)
    d.start(wait_pool=False)
    starting = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        st = d.status()
        starting.append(st["browsers"]["by_state"]["starting"])
        if st["browsers"]["by_state"]["idle"] >= 4:
            break
        time.sleep(0.05)
    assert st["browsers"]["by_state"]["idle"] == 4, st["browsers"]
    assert max(starting) == 1, starting  # 1 while launching, never more
    assert st["restarts"] == 0
    with d.client() as c:
        assert c.submit(site.url("/page/1")).status == "ok"


# --- memory: admission by the measured PSS, recycling by PSS and by age ---------------------------

MiB = 1 << 20
DEFAULT_ESTIMATE = 400 * MiB  # what admission assumes of a browser before it has measured one
HOG_ROOM = 4 << 30  # what the balloon may take: other processes may use this much more meanwhile


def _child(st: dict, bid: str) -> dict | None:
    return next((c for c in st["children"] if c["id"] == bid), None)


class _Balloon:
    """tests/memhog.py: holds procs.available_memory() at a target (a real process, touching real pages)."""

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "memhog.py")],
                                     stdin=subprocess.PIPE, text=True)

    def hold(self, target: int, timeout: float = 120.0) -> None:
        self.proc.stdin.write(f"{target}\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        while abs(procs.available_memory() - target) > 4 * MiB * 8:
            assert self.proc.poll() is None, "the balloon died"
            assert time.monotonic() < deadline, (
                f"available memory did not settle at {target >> 20} MiB: {procs.available_memory() >> 20} MiB")
            time.sleep(0.05)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()  # all it holds is freed at once
            self.proc.wait()


def test_memory_admission_judges_by_the_measured_pss_holds_back_and_resumes(make_daemon, site):
    """Admission judges by the browser's measured PSS (not the 400 MiB default), holds a
    start back while less than that is available above the headroom, and resumes once it is.

    The headroom is what is available now minus 4 GiB; a balloon process then holds
    available memory at headroom + PSS/2 (held back) and at headroom + 3/2 PSS (admitted),
    adjusting every 10 ms, so the margins are half a browser's PSS on each side whatever
    else the machine does, as long as the rest of it takes less than 4 GiB more meanwhile.
    The estimate it judged by is compared with the supervisor's own reading in the same
    status sample: equal, whatever the PSS (a busy Chromium measured 200-400 MiB here)."""
    if procs.available_memory() < HOG_ROOM + (2 << 30):
        pytest.skip("needs 6 GiB of available memory")
    headroom = procs.available_memory() - HOG_ROOM
    d = make_daemon({"pool": {"min": 1, "max": 2, "size": 1, "prewarm": 0, "idle_shrink_s": 600,
                              "memory_headroom_mb": headroom >> 20},
                     "jobs": {"timeout_s": 300.0, "queue_timeout_s": 300.0}})
    balloon = _Balloon()
    with Tap(str(d.config.daemon.socket)) as tap:
        try:
            tap.submit(job_request(site.url("/slow?ms=600000"), id="first"))  # b1 busy: a renderer too
            # Its PSS as the supervisor reads it while it works (what admission will use): the
            # largest of the readings over a few seconds, once the page's renderer is up.
            d.wait_until(lambda s: (c := _child(s, "b1")) and c["state"] == "busy" and c["pss_sampled"]
                         and len(c["browser_pids"]) >= 4, timeout=60)
            readings = []
            for _ in range(12):
                readings.append(_child(d.status(), "b1")["pss_sampled"])
                time.sleep(0.25)
            pss = max(readings)
            assert pss > 10 * MiB, f"a browser of {pss >> 20} MiB: not a real reading"

            balloon.hold(headroom + pss // 2)  # less than a browser's measured PSS is left
            tap.submit(job_request(site.url("/page/1"), id="second"))
            st = d.wait_until(lambda s: s["pool"]["held_back"] is not None, timeout=60)
            assert st["browsers"]["live"] == 1 and "MiB available" in st["pool"]["held_back"], st["pool"]
            # What it judged by is the measured PSS, not the default (the one noise-free check of it:
            # the behaviour below depends on available memory, which the rest of the machine moves).
            need = int(re.search(r"needs ~(\d+) MiB", st["pool"]["held_back"]).group(1)) * MiB
            now = _child(st, "b1")["pss_sampled"]  # the reading this sample's admission used
            assert abs(need - now) <= 2 * MiB, (now >> 20, DEFAULT_ESTIMATE >> 20, st["pool"]["held_back"])
            tap.drain(quiet_s=0.5, timeout=5)
            assert not tap.replies, "the second job was answered while no browser could start"

            balloon.hold(headroom + pss * 3 // 2)  # enough for the measured PSS
            st = d.wait_until(lambda s: s["pool"]["held_back"] is None and s["browsers"]["live"] == 2, timeout=120)
            while not [rid for rid, r in tap.replies.items() if tap.requests[rid].id == "second"]:
                assert tap.read(60), "the second job was not answered once memory was available"
        finally:
            balloon.close()
        answer = next(r[0].answer for rid, r in tap.replies.items() if tap.requests[rid].id == "second")
    assert answer.status == "ok" and answer.browser == "b2", answer


def _measured_pss(make_daemon, site) -> int:
    """The largest PSS the supervisor read of a browser serving light pages (an elastic pool: it reads
    PSS for admission, and has no max_pss_mb that could recycle the browser being measured)."""
    d = make_daemon({"pool": {"min": 1, "max": 2, "size": 1, "prewarm": 0, "idle_shrink_s": 600}})
    seen = []
    with d.client() as c:
        for i in range(3):
            assert c.submit(site.url(f"/page/{i}")).status == "ok"
            st = d.wait_until(lambda s: _child(s, "b1")["pss_sampled"] > 0, timeout=30)
            seen.append(_child(st, "b1")["pss_sampled"])
    assert d.stop() == 0
    return max(seen)


def test_max_pss_keeps_a_browser_under_the_limit_and_recycles_one_over_it(make_daemon, site):
    """Limits on both sides of a measured PSS: 1.5x keeps the browser for every job, 0.5x recycles it
    (a units mistake, bytes or KiB or GiB for MiB, fails one side or the other)."""
    pss = _measured_pss(make_daemon, site)
    above, below = (pss * 3 // 2) // MiB + 1, max(1, (pss // 2) // MiB)
    kept = make_daemon({"pool": {"size": 1}, "recycle": {"max_pss_mb": above}})
    with kept.client() as c:
        answers = [c.submit(site.url(f"/page/{i}")) for i in range(6)]
    assert [(a.status, a.browser) for a in answers] == [("ok", "b1")] * 6, answers
    # Judged: idle with a reading (a reading is judged in the tick that takes it, or at its job's end).
    st = kept.wait_until(lambda s: (c := _child(s, "b1")) is not None and c["state"] == "idle"
                         and c["pss_sampled"] > 0 and c["jobs_done"] == 6, timeout=30)
    assert _child(st, "b1")["pss_sampled"] < above * MiB, (f"b1 grew past {above} MiB: "
                                                          f"{_child(st, 'b1')['pss_sampled'] >> 20} MiB")
    assert "recycled_memory" not in st["retirements"] and st["browsers"]["live"] == 1, st["retirements"]
    assert kept.stop() == 0

    recycled = make_daemon({"pool": {"size": 1}, "recycle": {"max_pss_mb": below}})
    st = recycled.wait_until(lambda s: s["retirements"].get("recycled_memory", 0) >= 1, timeout=60)
    assert st["restarts"] == 0
    with recycled.client() as c:
        a = c.submit(site.url("/page/1"))
    assert a.status == "ok" and a.browser != "b1", a


def test_max_age_retires_an_old_idle_browser_and_keeps_a_young_one(make_daemon, site):
    max_age = 20.0
    d = make_daemon({"pool": {"size": 1}, "recycle": {"max_age_s": max_age}})
    with d.client() as c:
        young = c.submit(site.url("/page/1"))
    st = d.status()
    b1 = _child(st, "b1")
    assert young.status == "ok" and young.browser == "b1", young
    assert b1 is not None and b1["age_s"] < max_age and b1["state"] in ("idle", "busy"), st["children"]
    assert "recycled_age" not in st["retirements"]
    # Past max_age_s, b1 (idle) is retired and replaced.
    st = d.wait_until(lambda s: s["retirements"].get("recycled_age", 0) >= 1
                      and [c["id"] for c in s["children"] if c["state"] == "idle"] not in ([], ["b1"]),
                      timeout=max_age + 90)
    assert _child(st, "b1") is None and st["restarts"] == 0, st["children"]
    with d.client() as c:
        later = c.submit(site.url("/page/2"))
    assert later.status == "ok" and later.browser not in ("b1", None), later
    st = d.status()
    assert st["retirements"].get("recycled_age", 0) >= 1 and st["invariants"]["ok"], st
