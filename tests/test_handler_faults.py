"""A handler that raises in a real daemon loses nothing: one answer per job, no browser half-forgotten."""
from __future__ import annotations

import os
import signal
from concurrent.futures import ThreadPoolExecutor

import pytest

from foxden import procs
from foxden.actors.base import FAULTS_ENV, FoxdenActor, InjectedFault, OnFailure, fault_point
from foxden.supervisor.children import STRICT_ENV
from test_supervisor_strategies import status_json  # `foxden status --json`, the admin's checks included


def answered(st: dict) -> int:
    return sum(st["totals"][k] for k in ("ok", "failed", "timeout", "rejected"))


def assert_settled(d, *, live: int) -> dict:
    """Every submitted job answered once, `live` browsers idle, and the status invariants hold."""
    st = d.wait_until(lambda s: s["browsers"]["by_state"]["idle"] == live and s["queue"]["in_flight"] == 0,
                      timeout=60)
    assert answered(st) == st["totals"]["submitted"], st["totals"]
    assert st["invariants"]["ok"], st["invariants"]
    assert "a second answer" not in d.log_tail(400)
    return st


def test_a_fault_point_raises_only_for_the_point_and_key_it_was_given(monkeypatch):
    import foxden.actors.base as base

    monkeypatch.setattr(base, "_FAULTS", base.parse_faults("x.y=job-1,z.w=2"))
    with pytest.raises(InjectedFault, match="x.y for job-1"):
        fault_point("x.y", "job-1")
    fault_point("x.y", "job-2")
    fault_point("z.w", "job-1")
    monkeypatch.setattr(base, "_FAULTS", base.parse_faults(""))
    fault_point("x.y", "job-1")  # without the variable: nothing


def test_the_failure_policies_are_declared_where_a_failure_would_lose_something():
    from foxden.actors.browser import BrowserActor
    from foxden.actors.dispatcher import DispatcherActor

    assert DispatcherActor.on_failure is OnFailure.REPAIR
    assert BrowserActor.on_failure is OnFailure.CRASH
    assert FoxdenActor.on_failure is OnFailure.DROP
    assert issubclass(InjectedFault, Exception)


@pytest.mark.browser
def test_a_dispatcher_handler_that_raises_halfway_still_answers_the_job_once(make_daemon, site, monkeypatch):
    # Raised in the handler that answers the job (JobResult, or JobFinished
    # when the result came first), after its bookkeeping and before the
    # answer: the repair answers internal_error and the browser goes back to work.
    monkeypatch.setenv(FAULTS_ENV, "dispatcher.answer_outcome=fault-me")
    d = make_daemon({"pool": {"size": 1}})
    with d.client(timeout=60) as c:
        hit = c.submit(site.url("/"), id="fault-me", eval="1 + 1")
        after = c.submit(site.url("/page/2"), id="after")
        c.ping()
        assert not any(c._inbox.values()), c._inbox  # no second reply came for either request
    assert hit.status == "failed" and hit.error.code == "internal_error", hit
    assert "the dispatcher failed while handling Job" in hit.error.message
    assert hit.browser == "b1" and hit.attempts == 1
    assert after.status == "ok" and after.browser == "b1", after
    st = assert_settled(d, live=1)
    assert st["errors"] == {"internal_error": 1} and st["restarts"] == 0, st
    assert "InjectedFault: fault injected at dispatcher.answer_outcome" in d.log_tail(400)


@pytest.mark.browser
def test_a_browser_handler_that_raises_ends_its_browser_and_the_supervisor_answers_for_the_job(
        make_daemon, site, monkeypatch):
    # Raised in the browser actor after its job ran, before JobDone: each
    # attempt's browser crashes (policy CRASH), the supervisor cleans it up
    # and replaces it, the dispatcher retries once and then answers.
    monkeypatch.setenv(FAULTS_ENV, "browser.job_done=fault-me")
    d = make_daemon({"pool": {"size": 2}, "jobs": {"retries": 1}})
    with d.client(timeout=60) as c:
        hit = c.submit(site.url("/"), id="fault-me")
        after = c.submit(site.url("/page/3"), id="after")
    assert hit.status == "failed" and hit.error.code == "browser_crashed" and hit.attempts == 2, hit
    # (The browser's own log lines and its Dying may not outlive its exit,
    # so the detail is not asserted: two crash exits without a fault would be.)
    assert after.status == "ok", after
    st = assert_settled(d, live=2)
    assert st["exits"].get("crash") == 2 and st["restarts"] == 2, (st["exits"], st["restarts"])
    assert st["totals"]["retried"] == 1 and st["errors"] == {"browser_crashed": 1}, st


def test_the_supervisor_repairs_after_a_failed_handler():
    from foxden.supervisor.actor import SupervisorActor

    assert SupervisorActor.on_failure is OnFailure.REPAIR


def _slow_job_on_a_killed_browser(d, site) -> tuple[object, dict, list]:
    """Run a 4 s job, SIGKILL its browser's main process mid-job; the answer, the victim's row and processes."""
    def submit():
        with d.client(timeout=180) as c:
            return c.submit(site.url("/slow?ms=4000"), id="victim-job")

    with ThreadPoolExecutor(1) as runner:
        answer = runner.submit(submit)
        st = d.wait_until(lambda s: any(c["state"] == "busy" for c in s["children"]), timeout=60, interval=0.05)
        victim = next(c for c in st["children"] if c["state"] == "busy")
        procs_before = procs.processes([victim["pid"]]) + procs.descendants(victim["pid"])
        os.kill(victim["browser_pids"][0], signal.SIGKILL)
        return answer.result(timeout=240), victim | {"instance": st["instance"]}, procs_before


def _nothing_left_of(d, victim: dict, procs_before: list) -> None:
    survivors = [p for p in procs_before if procs.alive(p)]
    tmpdir = os.path.join(procs.browsers_dir(d.config.daemon.state_dir), victim["id"]) + "/"
    marked = procs.find_marked(f"{victim['instance']}/{victim['id']}/")
    assert not survivors and not marked, (survivors, marked)
    assert not os.path.exists(tmpdir)


@pytest.mark.browser
@pytest.mark.parametrize("point", ["supervisor.child_exited", "supervisor.exit_notice"])
def test_a_supervisor_cleanup_that_raises_still_answers_the_job_once_and_restores_the_pool(
        make_daemon, site, monkeypatch, point):
    # child_exited: raised in the one cleanup path after the child left the
    # supervisor's record, before its processes were swept: BrowserGone
    # still goes out (finally), the repair sweeps, applies the restart
    # policy and refills. exit_notice: raised on Thespian's exit notice
    # before the cleanup path: the child is still in the record, and the
    # watchdog's missed-exit check cleans it up a tick later.
    monkeypatch.setenv(FAULTS_ENV, f"{point}=b1,{point}=b2")
    monkeypatch.setenv(STRICT_ENV, "1")
    d = make_daemon({"pool": {"size": 2, "launch_timeout_s": 90.0}, "jobs": {"retries": 1, "timeout_s": 60.0}})
    d.wait_until(lambda s: s["browsers"]["by_state"]["idle"] == 2, timeout=120)
    answer, victim, procs_before = _slow_job_on_a_killed_browser(d, site)
    assert answer.status == "ok" and answer.attempts == 2 and answer.browser != victim["id"], answer
    st = assert_settled(d, live=2)
    assert st["restarts"] == 1 and st["exits"] == {"crash": 1}, (st["restarts"], st["exits"])
    assert st["totals"]["retried"] == 1 and st["totals"]["submitted"] == 1, st["totals"]
    assert status_json(d)["invariants"]["ok"]
    assert f"InjectedFault: fault injected at {point} for {victim['id']}" in d.log_tail(100_000)
    if point == "supervisor.exit_notice":
        assert f"browser {victim['id']}: no exit notice from Thespian; cleaning up" in d.log_tail(100_000)
    _nothing_left_of(d, victim, procs_before)


@pytest.mark.browser
def test_a_supervisor_job_done_handler_that_raises_retires_the_browser_and_leaves_none_busy(
        make_daemon, site, monkeypatch):
    # Raised in the supervisor's JobDone handler before its JobFinished: the
    # job's result went straight to the dispatcher; the repair sends the
    # JobFinished (not available) and retires the browser, so the next job
    # runs on its replacement instead of waiting for a browser busy forever.
    monkeypatch.setenv(FAULTS_ENV, "supervisor.job_done=b1")
    monkeypatch.setenv(STRICT_ENV, "1")
    d = make_daemon({"pool": {"size": 1, "launch_timeout_s": 90.0}})
    with d.client(timeout=120) as c:
        hit = c.submit(site.url("/"), id="fault-me")
        after = c.submit(site.url("/page/2"), id="after")
    assert hit.status == "ok" and hit.browser == "b1" and hit.attempts == 1, hit
    assert after.status == "ok" and after.browser == "b2" and after.attempts == 1, after
    st = assert_settled(d, live=1)
    assert st["exits"] == {"repaired": 1} and st["restarts"] == 0, (st["exits"], st["restarts"])
    assert [c["id"] for c in st["children"]] == ["b2"]
    assert status_json(d)["invariants"]["ok"]
    assert "InjectedFault: fault injected at supervisor.job_done for b1" in d.log_tail(100_000)
