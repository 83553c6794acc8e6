"""The restart policy's plan for every strategy x restart type x exit reason, after OTP's supervisor_SUITE (no actors)."""
from __future__ import annotations

import itertools

import pytest

from foxden.supervisor.policy import (
    ExitReason,
    Group,
    RestartHistory,
    RestartPolicy,
    group_restart,
    on_exit,
)

ORDER = ("b1", "b2", "b3", "b4")
FAILED = "b2"
STRATEGIES = ("one_for_one", "one_for_all", "rest_for_one")
RESTART_TYPES = ("permanent", "transient", "temporary")
FAILURES = (ExitReason.CRASH, ExitReason.UNRESPONSIVE, ExitReason.LAUNCH_FAILED, ExitReason.TIMEOUT,
            ExitReason.NODE_LOST)  # node_lost: a cluster node's browsers, written off with it (docs/cluster.md)
RETIREMENTS = tuple(r for r in ExitReason if r.is_retirement)
SIBLING_STOPS = (ExitReason.SIBLING_ONE_FOR_ALL, ExitReason.SIBLING_REST_FOR_ONE)
SIBLINGS = {"one_for_one": (), "one_for_all": ("b1", "b3", "b4"), "rest_for_one": ("b3", "b4")}


def test_every_reason_is_in_exactly_one_family():
    families = [set(FAILURES), set(RETIREMENTS), set(SIBLING_STOPS), {ExitReason.SHUTDOWN}]
    assert sum(len(f) for f in families) == len(ExitReason) == len(set().union(*families))


@pytest.mark.parametrize("strategy, restart, reason",
                         list(itertools.product(STRATEGIES, RESTART_TYPES, ExitReason)))
def test_plan_for_one_exit(strategy, restart, reason):
    policy = RestartPolicy(restart=restart, strategy=strategy, intensity=5)
    plan = on_exit(policy, RestartHistory(), reason, 10.0, ORDER, FAILED)
    if reason in FAILURES and restart != "temporary":
        siblings = SIBLINGS[strategy]
        assert plan.action == "restart"
        assert plan.stop == siblings
        # OTP's start_children: the failed child and its stopped siblings, in start order.
        assert plan.relaunch == tuple(c for c in ORDER if c == FAILED or c in siblings)
        assert plan.drop == 0
        # Counted once for the whole group; a timeout not at all (foxden's deviation).
        assert plan.history.times == (() if reason is ExitReason.TIMEOUT else (10.0,))
    elif reason in FAILURES:
        # A temporary child is never restarted, and so stops no sibling.
        assert (plan.action, plan.stop, plan.relaunch, plan.drop) == ("ignore", (), (), 1)
        assert plan.history.times == ()
    elif reason in RETIREMENTS:
        assert (plan.action, plan.stop, plan.relaunch, plan.drop) == ("replace", (), (FAILED,), 0)
        assert plan.history.times == ()
    elif reason in SIBLING_STOPS:
        # Its group restart was counted and relaunches it: nothing more.
        assert (plan.action, plan.stop, plan.relaunch, plan.drop) == ("absorbed", (), (), 0)
        assert plan.history.times == ()
    else:
        assert reason is ExitReason.SHUTDOWN
        assert (plan.action, plan.stop, plan.relaunch, plan.drop) == ("ignore", (), (), 0)
    assert plan.delay_s == 0.0


def simulate(strategy: str, restart: str, crashes: list[tuple[str, float]], intensity: int = 10):
    """A supervisor's bookkeeping, driven only by on_exit plans: every exit, the crashes' and the
    siblings' they stop, goes through the same call, as in the actor's one cleanup path."""
    policy = RestartPolicy(restart=restart, strategy=strategy, intensity=intensity)
    order, history, generation = list(ORDER), RestartHistory(), len(ORDER)
    restarts, launched, actions = 0, [], []
    for failed, now in crashes:
        pending = [(failed, ExitReason.CRASH)]
        while pending:
            assert len(actions) < 100 and len(order) < 100, f"exits never settle: {actions[:12]}..."
            cid, reason = pending.pop(0)
            plan = on_exit(policy, history, reason, now, order, cid)
            history = plan.history
            actions.append(plan.action)
            order.remove(cid)
            if plan.action == "give_up":
                return restarts, launched, actions
            restarts += plan.action == "restart"
            stopping = {p for p, _ in pending}
            pending += [(s, ExitReason.sibling_stop(strategy)) for s in plan.stop if s not in stopping]
            for _ in plan.relaunch:
                generation += 1
                order.append(f"b{generation}")
                launched.append(f"b{generation}")
    return restarts, launched, actions


@pytest.mark.parametrize("strategy, restart", list(itertools.product(STRATEGIES, ("permanent", "transient"))))
def test_one_crash_is_one_restart_and_each_stopped_child_comes_back_once(strategy, restart):
    restarts, launched, actions = simulate(strategy, restart, [(FAILED, 1.0)])
    assert restarts == 1
    assert len(launched) == 1 + len(SIBLINGS[strategy])
    assert actions == ["restart"] + ["absorbed"] * len(SIBLINGS[strategy])


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_group_restart_is_charged_once_to_the_intensity(strategy):
    # OTP's one_for_all_escalation: intensity 1 allows one group restart, the second gives up.
    restarts, _, actions = simulate(strategy, "permanent", [(FAILED, 1.0), ("b1" if strategy == "one_for_one"
                                                                               else "b5", 2.0)], intensity=1)
    assert restarts == 1 and actions[-1] == "give_up"
    assert actions.count("restart") == 1


def test_temporary_children_crash_without_restart_or_sibling_stops():
    for strategy in STRATEGIES:
        restarts, launched, actions = simulate(strategy, "temporary", [(FAILED, 1.0)])
        assert (restarts, launched, actions) == (0, [], ["ignore"])


def test_group_restart_stops_temporary_siblings_without_starting_them_again():
    order = [("a", "permanent"), ("b", "temporary"), ("c", "transient"), ("d", "temporary")]
    assert group_restart("one_for_all", order, "a") == Group(("b", "c", "d"), ("c",))
    assert group_restart("rest_for_one", order, "b") == Group(("c", "d"), ("c",))
    assert group_restart("rest_for_one", order, "d") == Group((), ())
    assert group_restart("one_for_one", order, "c") == Group((), ())


def test_rest_for_one_of_the_last_child_stops_nobody():
    plan = on_exit(RestartPolicy(strategy="rest_for_one"), RestartHistory(), ExitReason.CRASH, 0.0, ORDER, "b4")
    assert (plan.action, plan.stop, plan.relaunch) == ("restart", (), ("b4",))


def test_give_up_stops_no_siblings_itself():
    plan = on_exit(RestartPolicy(strategy="one_for_all", intensity=0), RestartHistory(), ExitReason.CRASH, 0.0,
                   ORDER, FAILED)
    assert (plan.action, plan.stop, plan.relaunch) == ("give_up", (), ())


def test_group_restart_backs_off_like_a_single_one():
    policy = RestartPolicy(strategy="one_for_all", backoff_base_s=1.0, backoff_max_s=10.0)
    first = on_exit(policy, RestartHistory(), ExitReason.CRASH, 0.0, ORDER, FAILED)
    second = on_exit(policy, first.history, ExitReason.CRASH, 1.0, ("b5", "b6", "b7", "b8"), "b6")
    assert (first.delay_s, second.delay_s) == (0.0, 1.0)
    assert second.history.times == (0.0, 1.0)
