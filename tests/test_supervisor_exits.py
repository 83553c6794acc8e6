"""Exit reasons: one vocabulary, classified by its properties, carried in messages as plain values."""
from __future__ import annotations

import pickle

import pytest

from foxden.transport import unpickle as safepickle
from foxden.protocols.exits import ExitReason
from foxden.protocols.messages import BrowserGone, Dying

R = ExitReason
# The specification, written out independently of the enum's code.
ABNORMAL = {R.CRASH, R.TIMEOUT, R.UNRESPONSIVE, R.LAUNCH_FAILED, R.NODE_LOST}  # node_lost: docs/cluster.md
COUNTED = {R.CRASH, R.UNRESPONSIVE, R.LAUNCH_FAILED, R.NODE_LOST}  # a timeout is the job's fault: restarted, not counted
NOT_RETRYING = {R.TIMEOUT, R.SHUTDOWN, R.CANCELLED,  # the job had its time; nothing is left to run it
                R.LEASE_EXPIRED, R.LEASE_IDLE, R.LEASE_ENDED}  # a leased browser runs no job
RETIREMENTS = {R.RECYCLED_JOBS, R.RECYCLED_AGE, R.RECYCLED_MEMORY, R.DEGRADED, R.IDLE, R.REPAIRED, R.CANCELLED}


@pytest.mark.parametrize("reason", list(ExitReason))
def test_each_reason_answers_the_three_questions(reason):
    assert reason.is_normal is (reason not in ABNORMAL)
    assert reason.counts_toward_intensity is (reason in COUNTED)
    assert reason.retries_job is (reason not in NOT_RETRYING)
    assert reason.is_retirement is (reason in RETIREMENTS)  # replaced at once, the restart policy not consulted


def test_sibling_stops_name_the_strategy_that_caused_them():
    for strategy in ("one_for_all", "rest_for_one"):
        assert ExitReason.sibling_stop(strategy).strategy == strategy
    with pytest.raises(ValueError, match="one_for_one"):
        ExitReason.sibling_stop("one_for_one")
    assert {r for r in ExitReason if r.strategy} == {ExitReason.SIBLING_ONE_FOR_ALL, ExitReason.SIBLING_REST_FOR_ONE}


@pytest.mark.parametrize("cls, args", [(Dying, ("b1",)), (BrowserGone, ("b1", None))])
def test_messages_carry_the_plain_value_through_the_hardened_unpickler(cls, args):
    msg = cls(*args, ExitReason.SIBLING_REST_FOR_ONE)
    assert type(msg.reason) is str and msg.exit is ExitReason.SIBLING_REST_FOR_ONE
    back = safepickle.loads(pickle.dumps(msg))
    assert back == msg and back.exit is ExitReason.SIBLING_REST_FOR_ONE


@pytest.mark.parametrize("cls, args", [(Dying, ("b1",)), (BrowserGone, ("b1", None))])
def test_a_reason_outside_the_vocabulary_is_refused_naming_the_field(cls, args):
    with pytest.raises(ValueError, match=rf"{cls.__name__}\.reason: 'recycled' is not one of"):
        cls(*args, "recycled")
