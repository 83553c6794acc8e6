"""Pure parts of cancel and persistent sessions: matching, kept context options, the storage-state shape, the wire."""
from __future__ import annotations

import pytest

from foxden.actors.sessionbook import cancel_matches, with_context_options
from foxden.config import ConfigError, default_config, parse_config
from foxden.drivers.storage import from_cdp_cookie, playwright_state, to_cdp_cookie
from foxden.protocols import wire
from foxden.protocols.options import JobOptions, Proxy, Viewport
from foxden.protocols.storage_state import EMPTY, BadState, check_state, state_size, too_large


# --- cancel --------------------------------------------------------------------------------

def test_a_cancel_matches_every_unanswered_job_by_its_answer_id_and_never_an_end_session_job():
    jobs = [("j1", "a", False), ("j2", None, False), ("j3", "a", False), ("j4", None, True), ("j5", "b", False)]
    assert cancel_matches(jobs, "a") == ["j1", "j3"]  # a client id shared by two jobs: both
    assert cancel_matches(jobs, "j2") == ["j2"]  # no client id: the daemon's key, as answered
    assert cancel_matches(jobs, "j1") == []  # a job with a client id is not matched by its key
    assert cancel_matches(jobs, "j4") == []  # the daemon's own end-session job
    assert cancel_matches(jobs, "zzz") == []


# --- a session keeps its context options ------------------------------------------------------

def test_a_later_job_of_a_session_gets_the_context_options_the_session_started_with():
    first = JobOptions(proxy=Proxy("http://p:1", "u", "pw"), user_agent="UA/1", locale="de-DE", timezone="Europe/Berlin")
    later = JobOptions(user_agent="UA/2", locale="fr-FR", viewport=Viewport(800, 600), html=True)
    kept = with_context_options(later, first.context_options)
    assert kept.context_options == first.context_options
    assert (kept.viewport, kept.html) == (Viewport(800, 600), True)  # per-page options stay the job's own
    same = JobOptions(user_agent="UA/1", locale="de-DE")
    assert with_context_options(same, same.context_options) is same


# --- the storage-state shape -------------------------------------------------------------------

PLAYWRIGHT_STATE = {
    "cookies": [{"name": "sid", "value": "1", "domain": ".example.com", "path": "/", "expires": 1893456000.5,
                 "httpOnly": True, "secure": True, "sameSite": "None"},
                {"name": "s", "value": "", "domain": "127.0.0.1", "path": "/", "expires": -1, "httpOnly": False,
                 "secure": False, "sameSite": "Lax"}],
    "origins": [{"origin": "http://127.0.0.1:8080", "localStorage": [{"name": "k", "value": "v"}]}],
}


def test_a_playwright_state_is_kept_as_it_is_and_defaults_fill_what_it_may_leave_out():
    assert check_state(PLAYWRIGHT_STATE) == PLAYWRIGHT_STATE
    assert check_state({}) == EMPTY
    short = check_state({"cookies": [{"name": "a", "value": "b", "domain": "x"}], "extra": 1})
    assert short["cookies"] == [{"name": "a", "value": "b", "domain": "x", "path": "/", "expires": -1,
                                 "httpOnly": False, "secure": False, "sameSite": "Lax"}]


@pytest.mark.parametrize("state, field", [
    ([], "state: expected a map"),
    ({"cookies": {}}, "state.cookies: expected a list"),
    ({"cookies": [{"value": "v", "domain": "x"}]}, "state.cookies[0].name: expected a string"),
    ({"cookies": [{"name": "", "value": "v", "domain": "x"}]}, "state.cookies[0].name: expected a non-empty"),
    ({"cookies": [{"name": "a", "value": "v"}]}, "state.cookies[0].domain: expected a string"),
    ({"cookies": [{"name": "a", "value": "v", "domain": "x", "expires": "soon"}]}, "state.cookies[0].expires"),
    ({"cookies": [{"name": "a", "value": "v", "domain": "x", "expires": float("nan")}]}, "state.cookies[0].expires"),
    ({"cookies": [{"name": "a", "value": "v", "domain": "x", "secure": 1}]}, "state.cookies[0].secure"),
    ({"cookies": [{"name": "a", "value": "v", "domain": "x", "sameSite": "lax"}]}, "state.cookies[0].sameSite"),
    ({"origins": [{"origin": "http://x/path", "localStorage": []}]}, "state.origins[0].origin"),
    ({"origins": [{"origin": "file://", "localStorage": []}]}, "state.origins[0].origin"),
    ({"origins": [{"origin": "http://x", "localStorage": [{"name": "k"}]}]}, "state.origins[0].localStorage[0].value"),
])
def test_a_bad_state_is_refused_naming_the_field(state, field):
    with pytest.raises(BadState, match=field.replace("[", r"\[").replace("]", r"\]")):
        check_state(state)


def test_a_snapshot_above_the_bound_is_not_kept():
    small = {"cookies": [], "origins": [{"origin": "http://x", "localStorage": [{"name": "k", "value": "v"}]}]}
    assert too_large(small, limit=state_size(small)) is None
    assert "above the" in too_large(small, limit=state_size(small) - 1)


def test_cdp_cookies_become_playwright_cookies_and_back():
    cdp = {"name": "a", "value": "b", "domain": "127.0.0.1", "path": "/", "expires": -1, "size": 2, "httpOnly": False,
           "secure": False, "session": True, "priority": "Medium", "sourceScheme": "NonSecure"}
    pw = from_cdp_cookie(cdp)
    assert pw == {"name": "a", "value": "b", "domain": "127.0.0.1", "path": "/", "expires": -1, "httpOnly": False,
                  "secure": False, "sameSite": "Lax"}
    assert "expires" not in to_cdp_cookie(pw)  # a session cookie stays one
    lasting = dict(PLAYWRIGHT_STATE["cookies"][0])
    assert from_cdp_cookie(to_cdp_cookie(lasting)) == lasting
    assert playwright_state([dict(lasting, partitionKey="x")], {"http://a": [], "http://b": [{"name": "k", "value": "v"}]}) \
        == {"cookies": [lasting], "origins": [{"origin": "http://b", "localStorage": [{"name": "k", "value": "v"}]}]}


# --- the wire ------------------------------------------------------------------------------------

@pytest.mark.parametrize("msg", [
    wire.Cancel(1, "job-7"), wire.Cancelled(1, "job-7", True), wire.SessionExport(2, "S"),
    wire.SessionState(2, "S", None), wire.SessionState(2, "S", PLAYWRIGHT_STATE),
    wire.SessionImport(3, "S", PLAYWRIGHT_STATE), wire.SessionImported(3, "S"),
])
def test_the_new_messages_round_trip(msg):
    assert wire.decode_body(wire.encode(msg)[4:]) == msg


def test_an_import_with_a_bad_state_is_a_bad_field_naming_it():
    frame = wire.encode(wire.SessionImport(9, "S", {"cookies": [{"name": "a", "value": 1, "domain": "x"}]}))
    with pytest.raises(wire.ProtocolError) as err:
        wire.decode_body(frame[4:])
    assert (err.value.code, err.value.rid) == ("bad_field", 9)
    assert "state.cookies[0].value: expected a string" in err.value.message
    with pytest.raises(wire.ProtocolError, match="id: expected a string of 1..256"):
        wire.decode_body(wire.encode(wire.Cancel(1, ""))[4:])


# --- config ---------------------------------------------------------------------------------------

def test_sessions_persist_is_on_by_default_and_must_be_a_boolean(tmp_path):
    assert default_config(tmp_path).sessions.persist is True
    assert parse_config({"sessions": {"persist": False}}, base_dir=tmp_path).sessions.persist is False
    with pytest.raises(ConfigError, match=r"\[sessions\] persist"):
        parse_config({"sessions": {"persist": "yes"}}, base_dir=tmp_path)


# --- the dispatcher's decisions, its handlers called directly (as tests/test_result_route.py does) ----

from foxden.protocols.messages import (  # noqa: E402
    AssignRefused,
    BrowserGone,
    CancelAnswer,
    CancelAttempt,
    CancelRequest,
    JobFinished,
    JobResult,
    Outcome,
    SessionStateAnswer,
    SessionStateRequest,
    SubmitJob,
    WorkRequest,
)
from tests.test_result_route import OK, Dispatcher  # noqa: E402

STATE = {"cookies": [{"name": "c", "value": "1", "domain": "x.test", "path": "/", "expires": -1, "httpOnly": False,
                      "secure": False, "sameSite": "Lax"}], "origins": []}


def _session_job(d: Dispatcher, tag: int, **job) -> None:
    d.receiveMsg_SubmitJob(SubmitJob(wire.JobRequest(url="http://x.test/", session="S", **job), tag=tag), "gw")


def _ran(d: Dispatcher, browser: str, state: dict | None) -> None:
    spec = d.assigned()[-1].job
    d.receiveMsg_JobResult(JobResult(browser, spec.key, OK, state), browser)
    d.receiveMsg_JobFinished(JobFinished(browser, spec.key, None), "supervisor")


def test_a_persisted_session_whose_browser_crashes_is_retried_on_another_browser_from_its_snapshot():
    d = Dispatcher()
    d.receiveMsg_WorkRequest(WorkRequest("b1", "chromium"), "supervisor")
    _session_job(d, 1)
    first = d.assigned()[-1].job
    assert (first.keep_state, first.restore) == (True, None)
    _ran(d, "b1", STATE)
    _session_job(d, 2)
    second = d.assigned()[-1].job
    assert second.restore is None and not second.new_session  # its context lives in b1
    d.receiveMsg_BrowserGone(BrowserGone("b1", second.key, "crash", "killed"), "supervisor")
    assert [a.status for a in d.answers()] == ["ok"]  # not browser_crashed: it is retried
    d.receiveMsg_WorkRequest(WorkRequest("b2", "chromium"), "supervisor")
    retry = d.assigned()[-1]
    assert (retry.browser, retry.job.key, retry.job.restore, retry.job.new_session) == ("b2", second.key, STATE, True)


def test_an_import_during_a_session_job_wins_over_the_state_that_job_brings():
    d = Dispatcher()
    d.receiveMsg_WorkRequest(WorkRequest("b1", "chromium"), "supervisor")
    _session_job(d, 1)
    imported = dict(STATE, cookies=[dict(STATE["cookies"][0], value="imported")])
    d.receiveMsg_SessionStateRequest(SessionStateRequest("S", "t", imported), "gw")
    _ran(d, "b1", STATE)
    _session_job(d, 2)
    assert d.assigned()[-1].job.restore == imported
    d.receiveMsg_SessionStateRequest(SessionStateRequest("S", "t2"), "gw")
    assert d.sent[-1][1] == SessionStateAnswer("t2", "S", imported)  # the export, before job 2's state is in


def test_a_refused_assignment_keeps_the_restore_for_the_next_one():
    d = Dispatcher()
    d.receiveMsg_SessionStateRequest(SessionStateRequest("S", "t", STATE), "gw")
    d.receiveMsg_WorkRequest(WorkRequest("b1", "chromium"), "supervisor")
    _session_job(d, 1)
    spec = d.assigned()[-1].job
    assert spec.restore == STATE
    d.receiveMsg_AssignRefused(AssignRefused("b1", spec.key), "supervisor")
    d.receiveMsg_WorkRequest(WorkRequest("b1", "chromium"), "supervisor")
    assert d.assigned()[-1].job.restore == STATE


def test_a_cancelled_running_job_is_answered_at_once_its_browser_ended_and_its_late_result_dropped():
    d = Dispatcher()
    d.receiveMsg_WorkRequest(WorkRequest("b1", "chromium"), "supervisor")
    d.receiveMsg_SubmitJob(SubmitJob(wire.JobRequest(url="http://x.test/", id="c"), tag=1), "gw")
    d.receiveMsg_SubmitJob(SubmitJob(wire.JobRequest(url="http://x.test/", id="c"), tag=2), "gw")
    key = d.assigned()[-1].job.key
    d.receiveMsg_CancelRequest(CancelRequest("c", "t"), "gw")
    assert [(a.status, a.error.code) for a in d.answers()] == [("failed", "cancelled")] * 2
    assert ("supervisor", CancelAttempt("b1", key)) in d.sent and d.sent[-1][1] == CancelAnswer("t", "c", 2)
    assert d.running == {"b1": key} and not d.queue  # its browser takes no other job until the attempt ends
    d.receiveMsg_JobResult(JobResult("b1", key, Outcome("ok", result=OK.result)), "b1")
    d.receiveMsg_BrowserGone(BrowserGone("b1", key, "cancelled"), "supervisor")
    assert len(d.answers()) == 2 and not d.jobs and not d.running
