"""A result goes from the browser actor straight to the dispatcher, joined with the supervisor's notice in any order.

Thespian does not order messages from different senders, and no test can
make it reorder them on demand: here the dispatcher's handlers are called
directly in every order the two messages (and a BrowserGone) can arrive in,
with its sends recorded. The end-to-end path is covered by every daemon test."""
from __future__ import annotations

import pytest

from foxden.actors.dispatcher import DispatcherActor
from foxden.config import default_config
from foxden.protocols import wire
from foxden.protocols.messages import (
    Assign,
    BrowserGone,
    Drain,
    InitDispatcher,
    JobAnswer,
    JobFinished,
    JobResult,
    Outcome,
    StopPool,
    SubmitJob,
    WorkRequest,
)

OK = Outcome("ok", result=wire.PageResult("http://x.test/", 200, "t", 1, eval=42))


class Dispatcher(DispatcherActor):
    """The real dispatcher, with its sends recorded instead of transmitted."""

    myAddress = "dispatcher"

    def __init__(self):
        super().__init__()
        self.sent: list = []
        self.receiveMsg_InitDispatcher(InitDispatcher(default_config(), "supervisor"), "daemon")
        self.sent.clear()

    def send(self, to, msg) -> None:
        self.sent.append((to, msg))

    def wakeupAfter(self, *args, **kwargs) -> None:
        pass

    def answers(self) -> list[wire.Answer]:
        return [m.answer for _, m in self.sent if isinstance(m, JobAnswer)]

    def assigned(self) -> list[Assign]:
        return [m for _, m in self.sent if isinstance(m, Assign)]


def started(*browsers: str, jobs: int = 1) -> tuple[Dispatcher, list[str]]:
    """A dispatcher with `jobs` jobs assigned to the idle `browsers`; returns it and the job keys."""
    d = Dispatcher()
    for b in browsers:
        d.receiveMsg_WorkRequest(WorkRequest(b, "chromium"), "supervisor")
    for i in range(jobs):
        d.receiveMsg_SubmitJob(SubmitJob(wire.JobRequest(url="http://x.test/", id=f"j{i}"), tag=i), "gateway")
    keys = [a.job.key for a in d.assigned()]
    assert all(a.job.answer_to == "dispatcher" for a in d.assigned())
    return d, keys


def test_a_result_before_the_supervisors_notice_is_answered_at_once_and_the_browser_reused_after_it():
    d, (key,) = started("b1")
    d.receiveMsg_JobResult(JobResult("b1", key, OK), "b1-actor")
    assert [(a.status, a.result.eval, a.browser) for a in d.answers()] == [("ok", 42, "b1")]
    assert d.running == {"b1": key} and not d.idle  # busy until the supervisor says the attempt ended
    d.receiveMsg_JobFinished(JobFinished("b1", key, None), "supervisor")
    assert len(d.answers()) == 1 and "b1" in d.idle and not d.jobs and not d.awaiting


def test_a_result_after_the_supervisors_notice_waits_then_is_answered_once():
    d, (key,) = started("b1")
    d.receiveMsg_JobFinished(JobFinished("b1", key, None), "supervisor")
    assert not d.answers() and d.awaiting == {("b1", key)} and "b1" in d.idle and key in d.jobs
    d.receiveMsg_JobResult(JobResult("b1", key, OK), "b1-actor")
    d.receiveMsg_JobResult(JobResult("b1", key, OK), "b1-actor")  # a duplicate is dropped
    assert [a.status for a in d.answers()] == ["ok"] and not d.awaiting and not d.jobs


def test_a_browser_that_dies_after_sending_its_result_still_has_its_job_answered_with_it():
    d, (key,) = started("b1")
    d.receiveMsg_JobResult(JobResult("b1", key, OK), "b1-actor")
    d.receiveMsg_BrowserGone(BrowserGone("b1", key, "crash", "killed"), "supervisor")
    assert [(a.status, a.attempts) for a in d.answers()] == [("ok", 1)]
    assert not d.queue and not d.jobs and d.totals["retried"] == 0


def test_a_browser_gone_before_its_result_settles_the_attempt_and_the_late_result_is_dropped():
    d, (key,) = started("b1", "b2")
    # The supervisor's notice, then the browser is retired and gone, and only then its result.
    d.receiveMsg_JobFinished(JobFinished("b1", key, None, available=False), "supervisor")
    d.receiveMsg_BrowserGone(BrowserGone("b1", None, "crash", "exited"), "supervisor")
    assert not d.awaiting and d.totals["retried"] == 1
    retry = d.assigned()[-1]
    assert retry.browser == "b2" and retry.job.key == key
    d.receiveMsg_JobResult(JobResult("b1", key, OK), "b1-actor")  # too late: the retry runs
    assert not d.answers() and d.running == {"b2": key}
    d.receiveMsg_JobResult(JobResult("b2", key, OK), "b2-actor")
    assert [(a.status, a.browser, a.attempts) for a in d.answers()] == [("ok", "b2", 2)]


def test_a_result_of_an_attempt_that_died_with_its_browser_is_dropped():
    d, (key,) = started("b1", "b2")
    d.receiveMsg_BrowserGone(BrowserGone("b1", key, "crash", "killed"), "supervisor")
    d.receiveMsg_JobResult(JobResult("b1", key, OK), "b1-actor")
    assert not d.answers() and d.running == {"b2": key}


@pytest.mark.parametrize("result_first", [True, False])
def test_a_drain_stops_the_pool_only_once_every_result_is_in(result_first):
    d, (key,) = started("b1")
    d.receiveMsg_Drain(Drain(5.0), "daemon")
    if result_first:
        d.receiveMsg_JobResult(JobResult("b1", key, OK), "b1-actor")
        assert not any(isinstance(m, StopPool) for _, m in d.sent)
        d.receiveMsg_JobFinished(JobFinished("b1", key, None, available=False), "supervisor")
    else:
        d.receiveMsg_JobFinished(JobFinished("b1", key, None, available=False), "supervisor")
        assert not any(isinstance(m, StopPool) for _, m in d.sent)  # its result is still on its way
        d.receiveMsg_JobResult(JobResult("b1", key, OK), "b1-actor")
    assert [a.status for a in d.answers()] == ["ok"]
    assert sum(isinstance(m, StopPool) for _, m in d.sent) == 1


def test_an_outcome_carried_by_the_supervisors_notice_is_still_answered():
    d, (key,) = started("b1")
    d.receiveMsg_JobFinished(JobFinished("b1", key, OK), "supervisor")
    assert [a.status for a in d.answers()] == ["ok"] and not d.awaiting


@pytest.mark.parametrize("result_first", [True, False])
def test_a_handler_that_raises_while_answering_still_answers_once_and_frees_the_browser(result_first, monkeypatch):
    import foxden.actors.base as base

    monkeypatch.setattr(base, "_FAULTS", base.parse_faults("dispatcher.answer_outcome=j0"))
    d, (key,) = started("b1")
    notice = JobFinished("b1", key, None)
    result = JobResult("b1", key, OK)
    for msg in ((result, notice) if result_first else (notice, result)):
        d.receiveMessage(msg, "sender")  # through the failure policy, as Thespian calls it
    assert [(a.status, a.error.code) for a in d.answers()] == [("failed", "internal_error")]
    assert not d.jobs and not d.awaiting and not d.running and "b1" in d.idle


def test_work_goes_on_while_an_answered_attempt_still_holds_its_browser():
    # Found by the chaos run: an answered job still in `running` (its
    # JobFinished not yet in) broke the next assignment.
    d, (key,) = started("b1")
    d.receiveMsg_JobResult(JobResult("b1", key, OK), "b1-actor")
    d.receiveMsg_SubmitJob(SubmitJob(wire.JobRequest(url="http://x.test/", id="next", session="s"), tag=9), "gw")
    d.receiveMsg_WorkRequest(WorkRequest("b2", "chromium"), "supervisor")
    assert [a.browser for a in d.assigned()] == ["b1", "b2"] and d.running["b1"] == key
