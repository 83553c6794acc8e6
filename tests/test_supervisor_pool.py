"""The pool's size decisions: target, memory admission, recycling, PSS sampling, from plain data."""
from __future__ import annotations

from types import SimpleNamespace

from foxden.protocols.exits import ExitReason
from foxden.supervisor.children import Child, ChildState
from foxden.supervisor.pool import DEFAULT_BROWSER_PSS, active, memory_hold, pss_pick, recycle_reason, target

S = ChildState
MB = 1 << 20


def child(cid: str, state: ChildState, **kw) -> Child:
    c = Child(id=cid, addr=None, marker=f"i/{cid}/", tmpdir=f"/x/{cid}", created=0.0, started_at=0.0, state=state,
              pid=1000 + int(cid[1:]))
    for k, v in kw.items():
        setattr(c, k, v)
    return c


def elastic(**kw):
    base = dict(min=1, max=6, prewarm=1, idle_shrink_s=30.0)
    return SimpleNamespace(**{**base, **kw})


def test_a_fixed_pool_targets_its_size_capped_by_its_slots():
    fixed = elastic(min=4, max=4)
    assert target(fixed, 4, [], 9, 0.0).size == 4
    assert target(fixed, 3, [], 9, 0.0).size == 3  # a temporary child was not replaced


def test_an_elastic_pool_wants_busy_plus_queued_plus_prewarm_within_bounds():
    kids = [child("b1", S.BUSY), child("b2", S.BUSY)]
    assert target(elastic(), 6, kids, 2, 0.0).size == 5
    assert target(elastic(), 6, kids, 20, 0.0).size == 6
    assert target(elastic(min=3, prewarm=0), 6, [], 0, 0.0).size == 3


def test_idle_browsers_are_kept_until_idle_past_idle_shrink_s_then_retired_oldest_first():
    kids = [child("b1", S.IDLE, idle_since=0.0), child("b2", S.IDLE, idle_since=5.0),
            child("b3", S.IDLE, idle_since=50.0)]
    assert target(elastic(prewarm=0), 6, kids, 0, 20.0) == target(elastic(prewarm=0), 6, kids, 0, 20.0)
    assert target(elastic(prewarm=0), 6, kids, 0, 20.0).retire == ()
    decided = target(elastic(prewarm=0), 6, kids, 0, 60.0)
    assert decided.size == 1 and decided.retire == ("b1", "b2")


def test_a_child_stopped_on_purpose_frees_its_place_but_a_failed_one_keeps_it_until_its_exit():
    retiring = child("b1", S.STOPPING, exit_reason=ExitReason.RECYCLED_JOBS)
    sibling = child("b2", S.STOPPING, exit_reason=ExitReason.SIBLING_ONE_FOR_ALL)
    crashed = child("b3", S.STOPPING, exit_reason=ExitReason.CRASH)
    timed_out = child("b4", S.STOPPING, exit_reason=ExitReason.TIMEOUT)
    assert active([retiring, sibling, crashed, timed_out, child("b5", S.STARTING)]) == 3


def test_memory_admission_counts_launches_in_flight_and_the_headroom():
    assert memory_hold([], 0, 10_000 * MB, 512) is None
    assert memory_hold([300 * MB, 500 * MB], 0, 1300 * MB, 512) is None  # median 400: 1300-512 >= 400
    held = memory_hold([300 * MB, 500 * MB], 1, 1300 * MB, 512)  # one launching takes its 400 first
    assert held == "held back: 900 MiB available, 512 MiB headroom, a browser needs ~400 MiB"
    assert memory_hold([], 0, 512 * MB + DEFAULT_BROWSER_PSS - 1, 512) is not None


def recycle(**kw):
    base = dict(max_jobs=0, max_age_s=0.0, max_pss_mb=0, degrade_factor=0.0, degrade_min_jobs=3)
    return SimpleNamespace(**{**base, **kw})


def test_recycling_reasons_in_order_of_precedence():
    c = child("b1", S.IDLE, jobs_done=10, pss=900 * MB)
    assert recycle_reason(c, [c], recycle(), 100.0) is None
    assert recycle_reason(c, [c], recycle(max_jobs=10, max_age_s=50, max_pss_mb=800), 100.0) is ExitReason.RECYCLED_JOBS
    assert recycle_reason(c, [c], recycle(max_jobs=11, max_age_s=100, max_pss_mb=800), 100.0) is ExitReason.RECYCLED_AGE
    assert recycle_reason(c, [c], recycle(max_age_s=101, max_pss_mb=800), 100.0) is ExitReason.RECYCLED_MEMORY
    assert recycle_reason(c, [c], recycle(max_pss_mb=900), 100.0) is None


def test_a_browser_much_slower_than_the_rest_of_the_pool_is_degraded():
    slow = child("b1", S.IDLE)
    slow.durations.extend([5.0, 5.0, 5.0])
    fast = child("b2", S.IDLE)
    fast.durations.extend([1.0, 1.0])
    assert recycle_reason(slow, [slow, fast], recycle(degrade_factor=2.0), 0.0) is None  # too few to compare
    fast.durations.append(1.0)
    assert recycle_reason(slow, [slow, fast], recycle(degrade_factor=2.0), 0.0) is ExitReason.DEGRADED
    assert recycle_reason(slow, [slow, fast], recycle(degrade_factor=5.0), 0.0) is None


def test_pss_is_sampled_round_robin_over_serving_children_with_a_pid():
    kids = [child("b1", S.IDLE), child("b2", S.STARTING), child("b3", S.BUSY), child("b4", S.IDLE, pid=None)]
    assert [pss_pick(kids, i).id for i in range(4)] == ["b1", "b3", "b1", "b3"]
    assert pss_pick([], 0) is None
