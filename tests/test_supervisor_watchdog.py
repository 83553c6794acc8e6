"""The watchdog's verdict on one child at one tick: every branch, from plain data."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from foxden.protocols.exits import ExitReason
from foxden.protocols.messages import JobSpec
from foxden.supervisor.children import Child, ChildState
from foxden.supervisor.watchdog import (
    STOP_SLACK_S,
    Kill,
    Limits,
    SendPing,
    count_stopped,
    missed_exit,
    stop_deadline,
    verdict,
)

S = ChildState
LIMITS = Limits(heartbeat_timeout_s=3.0, kill_grace_s=0.5, launch_timeout_s=30.0, close_timeout_s=4.0,
                missed_pings_limit=4)


def child(state: ChildState, **kw) -> Child:
    c = Child(id="b1", addr=None, marker="i/b1/", tmpdir="/x/b1", created=100.0, started_at=0.0, state=state,
              browser_pids=(4242,), last_pong=100.0)
    for k, v in kw.items():
        setattr(c, k, v)
    return c


def busy(deadline: float) -> Child:
    return child(S.BUSY, job=JobSpec(key="k1", id="j1", url="http://127.0.0.1/"), job_started=100.0,
                 deadline=deadline)


def test_limits_from_config_need_at_least_two_missed_pings():
    cfg = SimpleNamespace(watchdog=SimpleNamespace(heartbeat_timeout_s=1.0, kill_grace_s=0.25, close_timeout_s=3.0,
                                                   interval_s=1.0),
                          pool=SimpleNamespace(launch_timeout_s=30.0))
    assert Limits.from_config(cfg).missed_pings_limit == 2
    cfg.watchdog.interval_s = 0.25
    assert Limits.from_config(cfg).missed_pings_limit == 4


@pytest.mark.parametrize("state", [S.IDLE, S.BUSY])
def test_a_serving_child_whose_browser_process_is_gone_is_a_crash(state):
    assert verdict(child(state), "gone", 101.0, LIMITS) == Kill(ExitReason.CRASH, "browser process 4242 is gone")


@pytest.mark.parametrize("state", [S.STARTING, S.STOPPING])
def test_a_gone_main_process_is_not_judged_before_ready_or_while_stopping(state):
    assert not isinstance(verdict(child(state, stop_by=1e9), "gone", 101.0, LIMITS), Kill)


def test_a_stopped_browser_is_unresponsive_on_the_second_tick_only():
    c = child(S.IDLE)
    c.stopped_ticks = count_stopped(c.stopped_ticks, "stopped")
    assert verdict(c, "stopped", 101.0, LIMITS) == SendPing(1)
    c.stopped_ticks = count_stopped(c.stopped_ticks, "stopped")
    assert verdict(c, "stopped", 101.5, LIMITS) == Kill(ExitReason.UNRESPONSIVE, "browser process 4242 is stopped")
    assert count_stopped(5, "sleeping") == 0


def test_a_busy_child_is_killed_only_past_its_deadline_plus_grace():
    assert verdict(busy(110.0), "running", 110.5, LIMITS) is None
    assert verdict(busy(110.0), "running", 110.51, LIMITS) == Kill(ExitReason.TIMEOUT,
                                                                    "job j1 exceeded its 10.0s budget")


def test_a_launch_past_launch_timeout_is_a_failed_launch():
    assert verdict(child(S.STARTING, browser_pids=()), None, 130.0, LIMITS) is None
    assert verdict(child(S.STARTING, browser_pids=()), None, 130.1, LIMITS) == Kill(ExitReason.LAUNCH_FAILED,
                                                                                     "not ready after 30s")


def test_an_idle_child_is_pinged_until_silent_long_enough_by_both_measures():
    assert verdict(child(S.IDLE, ping_sent=3, pong_seen=3), "sleeping", 200.0, LIMITS) == SendPing(4)
    # Many pings missed, but heard from recently (a starved supervisor's late ticks): ping again.
    assert verdict(child(S.IDLE, ping_sent=9, pong_seen=1), "sleeping", 102.9, LIMITS) == SendPing(10)
    # Silent long enough, but too few of our ticks: ping again.
    assert verdict(child(S.IDLE, ping_sent=4, pong_seen=1), "sleeping", 200.0, LIMITS) == SendPing(5)
    assert verdict(child(S.IDLE, ping_sent=5, pong_seen=1), "sleeping", 103.5, LIMITS) == Kill(
        ExitReason.UNRESPONSIVE, "no heartbeat for 3.5s")


def test_a_stopping_child_past_its_stop_deadline_is_killed_with_its_own_reason():
    c = child(S.STOPPING, stop_by=stop_deadline(100.0, LIMITS), exit_reason=ExitReason.RECYCLED_AGE)
    assert c.stop_by == 100.0 + 4.0 + STOP_SLACK_S
    assert verdict(c, "sleeping", 106.0, LIMITS) is None
    assert verdict(c, "sleeping", 106.1, LIMITS) == Kill(ExitReason.RECYCLED_AGE, "did not exit in time")
    c.kill_at = 106.1  # killed once already: the cleanup path's to finish
    assert verdict(c, "sleeping", 200.0, LIMITS) is None


def test_a_missed_exit_is_cleaned_up_once_seen_gone_past_the_grace():
    assert missed_exit(None, False, 10.0, 1.0) == (None, False)
    assert missed_exit(None, True, 10.0, 1.0) == (10.0, False)
    assert missed_exit(10.0, True, 11.0, 1.0) == (10.0, False)
    assert missed_exit(10.0, True, 11.01, 1.0) == (10.0, True)
    assert missed_exit(10.0, False, 11.01, 1.0) == (None, False)  # alive again (a reused pid is checked apart)
