"""Tests for foxden.supervisor.policy: OTP-style restart decisions as pure functions."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from foxden.supervisor.policy import (
    Decision,
    ExitReason,
    RestartHistory,
    RestartPolicy,
    backoff_delay,
    children_to_restart,
    decide,
    prune,
    should_restart,
)

EXITS = list(ExitReason)
CRASH, TIMEOUT = ExitReason.CRASH, ExitReason.TIMEOUT
FAILURES = {ExitReason.CRASH, ExitReason.TIMEOUT, ExitReason.LAUNCH_FAILED, ExitReason.UNRESPONSIVE,
            ExitReason.NODE_LOST}  # a cluster node's browsers, written off with it (docs/cluster.md)

# restart type -> exits that get restarted; the rest of EXITS must not be.
RESTARTED = {
    "permanent": set(EXITS),
    "transient": FAILURES,
    "temporary": set(),
}


@pytest.mark.parametrize("restart", sorted(RESTARTED))
@pytest.mark.parametrize("exit_reason", EXITS)
def test_should_restart_table(restart, exit_reason):
    assert should_restart(restart, exit_reason) is (exit_reason in RESTARTED[restart])


def test_only_failures_are_abnormal_and_only_timeout_of_them_goes_uncounted():
    assert {r for r in ExitReason if not r.is_normal} == FAILURES
    assert {r for r in ExitReason if r.counts_toward_intensity} == FAILURES - {TIMEOUT}


def run(policy, events, history=RestartHistory()):
    """Feed (exit_reason, now) events through decide, threading the history."""
    out = []
    for reason, now in events:
        d = decide(policy, history, reason, now)
        history = d.history
        out.append(d)
    return out


def test_spaced_failures_fall_out_of_window_and_never_give_up():
    policy = RestartPolicy(intensity=2, period_s=10.0)
    # Every 6 s: the window holds at most this failure and the previous one.
    ds = run(policy, [(CRASH, 6.0 * i) for i in range(20)])
    assert [d.action for d in ds] == ["restart"] * 20
    assert all(len(d.history.times) <= 2 for d in ds)


def test_burst_gives_up_exactly_at_intensity_plus_one():
    policy = RestartPolicy(intensity=3, period_s=5.0)
    ds = run(policy, [(CRASH, 0.0), (CRASH, 0.5), (CRASH, 1.0), (CRASH, 1.25)])
    assert [d.action for d in ds] == ["restart", "restart", "restart", "give_up"]
    assert ds[-1].delay_s == 0.0
    assert ds[-1].history.times == (0.0, 0.5, 1.0, 1.25)
    assert ds[-1].reason.startswith("4 restarts in 1.25s exceeds intensity 3 in 5s")


def test_intensity_zero_gives_up_on_first_failure():
    d = decide(RestartPolicy(intensity=0), RestartHistory(), CRASH, 100.0)
    assert d.action == "give_up"
    assert d.reason.startswith("1 restart in 0s exceeds intensity 0 in 60s")


def test_intensity_zero_still_ignores_normal_exit_of_transient():
    d = decide(RestartPolicy(restart="transient", intensity=0), RestartHistory(), ExitReason.RECYCLED_JOBS, 1.0)
    assert d.action == "ignore"
    assert d.reason.startswith("transient child exited normally")


def test_window_is_inclusive_like_otp():
    policy = RestartPolicy(intensity=1, period_s=10.0)
    assert run(policy, [(CRASH, 0.0), (CRASH, 10.0)])[-1].action == "give_up"
    assert run(policy, [(CRASH, 0.0), (CRASH, 10.25)])[-1].action == "restart"


def test_prune():
    h = RestartHistory((1.0, 5.0, 9.0))
    assert prune(h, 15.0, 10.0).times == (5.0, 9.0)
    assert prune(h, 9.0, 10.0) == h
    assert prune(h, 100.0, 10.0).times == ()


def test_backoff_sequence_doubles_then_caps():
    policy = RestartPolicy(intensity=100, period_s=60.0, backoff_base_s=0.25, backoff_max_s=3.0)
    ds = run(policy, [(CRASH, 0.01 * i) for i in range(8)])
    assert [d.delay_s for d in ds] == [0.0, 0.25, 0.5, 1.0, 2.0, 3.0, 3.0, 3.0]


def test_backoff_counts_only_the_window():
    policy = RestartPolicy(period_s=10.0, backoff_base_s=1.0, backoff_max_s=100.0)
    h = RestartHistory((0.0, 1.0, 2.0))
    assert backoff_delay(h, 5.0, policy) == 4.0
    assert backoff_delay(h, 11.5, policy) == 1.0  # only t=2.0 is left
    assert backoff_delay(h, 50.0, policy) == 0.0


def test_backoff_huge_history_does_not_overflow():
    policy = RestartPolicy(intensity=10_000, backoff_base_s=10.0, backoff_max_s=5.0)
    h = RestartHistory(tuple(float(i) * 1e-3 for i in range(5000)))
    assert backoff_delay(h, 5.0, policy) == 5.0


@pytest.mark.parametrize("restart", ["permanent", "transient"])
def test_timeout_never_gives_up_and_never_counts(restart):
    policy = RestartPolicy(restart=restart, intensity=0, backoff_base_s=1.0)
    h = RestartHistory()
    for i in range(50):
        d = decide(policy, h, TIMEOUT, float(i) * 0.01)
        assert d.action == "restart"
        assert d.delay_s == 0.0
        assert d.history.times == ()
        h = d.history


def test_timeout_keeps_existing_history_pruned_and_uncharged():
    policy = RestartPolicy(intensity=5, period_s=10.0, backoff_base_s=1.0)
    d = decide(policy, RestartHistory((1.0, 8.0, 12.0)), TIMEOUT, 15.0)
    assert (d.action, d.delay_s, d.history.times) == ("restart", 0.0, (8.0, 12.0))


def test_timeout_of_temporary_child_is_ignored():
    assert decide(RestartPolicy(restart="temporary"), RestartHistory(), TIMEOUT, 0.0).action == "ignore"


@pytest.mark.parametrize("restart", sorted(RESTARTED))
@pytest.mark.parametrize("exit_reason", EXITS)
def test_shutting_down_ignores_everything(restart, exit_reason):
    policy = RestartPolicy(restart=restart, intensity=0)
    d = decide(policy, RestartHistory((1.0,)), exit_reason, 2.0, shutting_down=True)
    assert d == Decision("ignore", 0.0, RestartHistory((1.0,)), d.reason)
    assert "shutting down" in d.reason


ORDER = ["a", "b", "c", "d"]


@pytest.mark.parametrize(
    "strategy, failed, expected",
    [
        ("one_for_one", "b", ["b"]),
        ("one_for_all", "b", ["a", "b", "c", "d"]),
        ("rest_for_one", "a", ["a", "b", "c", "d"]),
        ("rest_for_one", "b", ["b", "c", "d"]),
        ("rest_for_one", "d", ["d"]),
        ("one_for_one", "zz", ["zz"]),
        ("one_for_all", "zz", ["zz"]),
        ("rest_for_one", "zz", ["zz"]),
    ],
)
def test_children_to_restart(strategy, failed, expected):
    assert children_to_restart(strategy, ORDER, failed) == expected


def test_children_to_restart_accepts_tuple_and_returns_fresh_list():
    out = children_to_restart("one_for_all", tuple(ORDER), "a")
    assert out == ORDER and out is not ORDER


def test_from_config_maps_policy_to_restart():
    cfg = SimpleNamespace(
        policy="transient", strategy="rest_for_one", intensity=3,
        period_s=5.0, backoff_base_s=0.2, backoff_max_s=2.0,
    )
    assert RestartPolicy.from_config(cfg) == RestartPolicy("transient", "rest_for_one", 3, 5.0, 0.2, 2.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"restart": "sometimes"},
        {"strategy": "one_for_some"},
        {"intensity": -1},
        {"intensity": 1.5},
        {"intensity": True},
        {"period_s": 0.0},
        {"period_s": float("nan")},
        {"backoff_base_s": -0.1},
        {"backoff_max_s": -1.0},
    ],
)
def test_policy_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        RestartPolicy(**kwargs)


# Times are multiples of 0.25 so every sum and difference is exact in binary
# floating point: the window boundary is then tested exactly, not fuzzily.
quarter = st.integers(min_value=0, max_value=40).map(lambda n: n * 0.25)


@settings(max_examples=150, deadline=None)
@given(
    restart=st.sampled_from(sorted(RESTARTED)),
    intensity=st.integers(min_value=0, max_value=5),
    period_s=st.integers(min_value=1, max_value=40).map(lambda n: n * 0.25),
    base=st.floats(min_value=0.0, max_value=2.0),
    cap=st.floats(min_value=0.0, max_value=10.0),
    events=st.lists(st.tuples(st.sampled_from(EXITS), quarter), max_size=40),
)
def test_property_give_up_iff_window_exceeds_intensity(restart, intensity, period_s, base, cap, events):
    policy = RestartPolicy(restart, "one_for_one", intensity, period_s, base, cap)
    history = RestartHistory()
    counted: list[float] = []  # independent model: every counted restart ever
    now = 0.0
    for reason, dt in events:
        now += dt
        d = decide(policy, history, reason, now)
        assert 0.0 <= d.delay_s <= cap
        if d.action != "restart":
            assert d.delay_s == 0.0

        if not should_restart(restart, reason):
            assert d.action == "ignore"
        elif not reason.counts_toward_intensity:
            assert (d.action, d.delay_s) == ("restart", 0.0)
        else:
            before = [t for t in counted if now - t <= period_s]
            counted.append(now)
            if len(before) + 1 > intensity:
                assert d.action == "give_up"
            else:
                assert d.action == "restart"
                k = len(before)
                assert d.delay_s == (0.0 if k == 0 else min(base * 2 ** (k - 1), cap))

        # The kept history is exactly the model's window.
        assert list(d.history.times) == [t for t in counted if now - t <= period_s]
        history = d.history
