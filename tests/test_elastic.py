"""Elastic, memory-aware pool and recycling: grow on demand, shrink when idle, retire and replace."""
from __future__ import annotations

import time

import pytest

from foxden.client import job_request

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
