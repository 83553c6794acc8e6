"""Cancel, and sessions that outlive their browser (issue #14): real daemons, real browsers, 127.0.0.1 pages."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from foxden.aclient import AsyncClient
from foxden.client import job_request
from tests.conftest import module_daemon
from tests.wiretap import Tap

pytestmark = pytest.mark.browser

# Sets a localStorage value in the page's origin and reads it back with the cookie the server saw.
SET_LOCAL = "localStorage.setItem('fox', 'den-' + document.title.split(' ').pop()); localStorage.getItem('fox')"
GET_LOCAL = "localStorage.getItem('fox')"


def _cli(d, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (os.getcwd(), os.environ.get("PYTHONPATH")) if p))
    return subprocess.run([sys.executable, "-m", "foxden", *args, "-c", d.config_path], capture_output=True,
                          text=True, timeout=60, env=env)


def _busy_with(d, job_id: str) -> dict:
    return d.wait_until(lambda s: any(c.get("job") == job_id for c in s["children"]), timeout=20)


def _settled(tap: Tap, wait_s: float = 1.0) -> None:
    """Read until every job has an answer, then a while longer: a second answer would show."""
    deadline = time.monotonic() + 30
    while tap.unanswered() and time.monotonic() < deadline:
        tap.read(0.5)
    quiet_until = time.monotonic() + wait_s
    while time.monotonic() < quiet_until:
        tap.read(0.2)


# --- sessions that outlive their browser ------------------------------------------------

def _kill_browser_main(d) -> str:
    """SIGKILL the one browser's main process; wait for its replacement to be idle. Returns the old id."""
    child = d.status()["children"][0]
    os.kill(child["browser_pids"][0], signal.SIGKILL)
    d.wait_until(lambda s: s["children"] and s["children"][0]["id"] != child["id"]
                 and s["children"][0]["state"] == "idle", timeout=150)
    return child["id"]


def _session_round(d, site):
    with d.client(timeout=60) as c:
        first = c.submit(site.url("/cookie/set?v=kept"), session="S", eval=SET_LOCAL)
        seen = c.submit(site.url("/cookie/get"), session="S", eval=GET_LOCAL)
    assert first.status == "ok" and first.result.eval == "den-kept", first
    assert seen.result.title == "cookie foxden=kept" and seen.result.eval == "den-kept", seen
    gone = _kill_browser_main(d)
    assert gone == seen.browser
    with d.client(timeout=60) as c:
        after = c.submit(site.url("/cookie/get"), session="S", eval=GET_LOCAL)
    return seen, after


def _survives(d, site) -> None:
    seen, after = _session_round(d, site)
    assert after.status == "ok", after
    assert after.browser != seen.browser
    # The cookie the server set (Set-Cookie) reached the server again, from the new browser.
    assert after.result.title == "cookie foxden=kept"
    assert after.result.eval == "den-kept"
    with d.client() as c:
        assert c.end_session("S") is True
        fresh = c.submit(site.url("/cookie/get"), session="S", eval=GET_LOCAL)
    assert fresh.result.title == "cookie" and fresh.result.eval is None  # ended: a later job starts afresh
    assert d.status()["invariants"]["ok"]


# Tests with a daemon of their own come first: make_daemon's teardown ends every foxden process
# of this pytest it finds, and the module's daemon (started by the first test that uses it) too.

@pytest.mark.firefox
def test_a_session_survives_a_sigkill_of_its_firefox_with_its_cookie_and_local_storage(make_daemon, site):
    # Firefox launches slowly on a busy box: its replacement gets the time it needs.
    _survives(make_daemon({"pool": {"size": 1, "engine": "firefox", "launch_timeout_s": 90.0},
                           "jobs": {"timeout_s": 30.0}}), site)


def test_without_persist_a_session_is_lost_with_its_browser(make_daemon, site):
    d = make_daemon({"pool": {"size": 1}, "sessions": {"persist": False}})
    _, after = _session_round(d, site)
    assert (after.status, after.error.code) == ("failed", "session_lost"), after
    with d.client() as c:
        assert c.export_session("S") is None


@pytest.fixture(scope="module")
def chromium():
    """One Chromium daemon (one browser) for this module's Chromium tests: each leaves it serving."""
    with module_daemon({"pool": {"size": 1}, "jobs": {"timeout_s": 30.0}}) as daemon:
        yield daemon


# --- cancel ---------------------------------------------------------------------------

def test_cancel_a_queued_and_a_running_job_each_answered_once_and_the_browser_replaced(chromium, site):
    d = chromium
    start = d.status()
    before = start["children"][0]["id"]
    with Tap(str(d.config.daemon.socket)) as tap, d.client(timeout=30) as c:
        hang = tap.submit(job_request(site.url("/hang"), id="hang"))
        queued = tap.submit(job_request(site.url("/page/1"), id="q"))
        _busy_with(d, "hang")
        t0 = time.monotonic()
        assert c.cancel("q") == {"id": "q", "found": True}
        assert c.cancel("hang") == {"id": "hang", "found": True}
        _settled(tap)
        took = time.monotonic() - t0
        assert c.cancel("hang") == {"id": "hang", "found": False}  # already answered
        assert c.cancel("never-submitted") == {"id": "never-submitted", "found": False}
    for rid in (hang, queued):
        frames = tap.replies[rid]
        assert len(frames) == 1, frames
        answer = frames[0].answer
        assert (answer.status, answer.error.code) == ("failed", "cancelled"), answer
    assert tap.replies[hang][0].answer.browser == before and tap.replies[queued][0].answer.attempts == 0
    assert took < 10, f"cancel answered after {took:.1f}s (the job's timeout is 30s)"
    st = d.wait_until(lambda s: s["children"] and s["children"][0]["id"] != before
                      and s["children"][0]["state"] == "idle")
    assert st["exits"].get("cancelled", 0) - start["exits"].get("cancelled", 0) == 1, st["exits"]
    assert st["restarts"] == start["restarts"]  # replaced like a retirement: no restart, no intensity spent
    assert st["errors"].get("cancelled", 0) - start["errors"].get("cancelled", 0) == 2
    assert st["invariants"]["ok"], st["invariants"]
    with d.client() as c:
        after = c.submit(site.url("/page/2"))
    assert after.status == "ok" and after.browser != before and after.attempts == 1
    assert "failed" not in "".join(line for line in d.log_tail(500).splitlines() if "handler for" in line)


def test_cancel_from_the_command_line_and_the_async_client(chromium, site):
    d = chromium
    with Tap(str(d.config.daemon.socket)) as tap:
        rid = tap.submit(job_request(site.url("/hang"), id="cli-hang"))
        _busy_with(d, "cli-hang")
        done = _cli(d, "cancel", "cli-hang", "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"id": "cli-hang", "found": True}
        _settled(tap, 0.5)
    assert [f.answer.error.code for f in tap.replies[rid]] == ["cancelled"]
    missing = _cli(d, "cancel", "cli-hang")
    assert missing.returncode == 1 and "not in flight" in missing.stdout

    async def twice_then_cancel():
        async with AsyncClient.from_config(d.config) as c:
            jobs = [asyncio.ensure_future(c.submit(site.url("/hang"), id="twin")) for _ in range(2)]
            await asyncio.to_thread(_busy_with, d, "twin")
            found = await c.cancel("twin")
            return found, await asyncio.wait_for(asyncio.gather(*jobs), 20)

    found, answers = asyncio.run(twice_then_cancel())
    assert found == {"id": "twin", "found": True}
    assert [(a.status, a.error.code) for a in answers] == [("failed", "cancelled")] * 2  # both: queued and running


def test_a_session_survives_a_sigkill_of_its_chromium_with_its_cookie_and_local_storage(chromium, site):
    _survives(chromium, site)


# --- export / import, with Playwright on the other side ------------------------------------

def test_export_and_import_interoperate_with_playwright(chromium, site, tmp_path, monkeypatch):
    from playwright.sync_api import sync_playwright

    from foxden.client import ServerError
    from foxden.engines import launch, resolve_engine

    d = chromium
    written, exported = tmp_path / "from-playwright.json", tmp_path / "from-foxden.json"
    # Playwright's own browser keeps its profile in a short private dir: not in /tmp itself, where
    # a test's leak check removes browser dirs that were not there before it.
    own_tmp = tempfile.mkdtemp(prefix="fxpw", dir="/tmp")
    monkeypatch.setenv("TMPDIR", own_tmp)
    with sync_playwright() as p:
        browser = launch(p, resolve_engine("chromium", None))
        try:
            ctx = browser.new_context()
            page = ctx.new_page()
            page.goto(site.url("/cookie/set?v=pw"))
            page.evaluate("localStorage.setItem('fox', 'from-pw')")
            ctx.storage_state(path=str(written))
            ctx.close()

            imported = _cli(d, "session", "import", "P", str(written))
            assert imported.returncode == 0, imported.stderr
            with d.client() as c:
                seen = c.submit(site.url("/cookie/get"), session="P", eval=GET_LOCAL)
                changed = c.submit(site.url("/cookie/set?v=back"), session="P", eval=SET_LOCAL)
            assert (seen.result.title, seen.result.eval) == ("cookie foxden=pw", "from-pw"), seen
            assert changed.result.eval == "den-back", changed

            done = _cli(d, "session", "export", "P", str(exported))
            assert done.returncode == 0, done.stderr
            ctx = browser.new_context(storage_state=str(exported))
            page = ctx.new_page()
            page.goto(site.url("/cookie/get"))
            assert page.title() == "cookie foxden=back"
            assert page.evaluate("localStorage.getItem('fox')") == "den-back"
            ctx.close()
        finally:
            browser.close()
    shutil.rmtree(own_tmp, ignore_errors=True)

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"cookies": [{"name": 1, "value": "v", "domain": "x"}]}))
    refused = _cli(d, "session", "import", "P", str(bad))
    assert refused.returncode == 2 and "state.cookies[0].name: expected a string" in refused.stderr, refused.stderr
    bad.write_text("{not json")
    refused = _cli(d, "session", "import", "P", str(bad))
    assert refused.returncode == 2 and "not a storage-state JSON file" in refused.stderr, refused.stderr
    with d.client() as c:
        with pytest.raises(ServerError, match=r"bad_field: state.origins\[0\].origin"):
            c.import_session("P", {"origins": [{"origin": "ftp://x", "localStorage": []}]})
        # A refused import changed nothing: the session still has its state.
        assert c.submit(site.url("/cookie/get"), session="P").result.title == "cookie foxden=back"
        # An import into a live session replaces the context its browser holds.
        c.import_session("P", {"cookies": [{"name": "foxden", "value": "second", "domain": "127.0.0.1"}]})
        again = c.submit(site.url("/cookie/get"), session="P", eval=GET_LOCAL)
        assert (again.result.title, again.result.eval) == ("cookie foxden=second", None), again
    missing = _cli(d, "session", "export", "nobody", str(tmp_path / "none.json"))
    assert missing.returncode == 1 and "keeps no state" in missing.stderr


def test_a_session_whose_state_is_too_large_to_keep_is_lost_with_its_browser(chromium, site):
    """Beyond 1 MiB a snapshot is dropped (with a log line) and the session has session_lost semantics again."""
    d = chromium
    with d.client(timeout=60) as c:
        big = c.submit(site.url("/page/big"), session="Big",
                       eval="localStorage.setItem('big', 'x'.repeat(1100000)); localStorage.getItem('big').length")
    assert big.status == "ok" and big.result.eval == 1100000, big
    d.wait_log("session Big: its snapshot is dropped")
    _kill_browser_main(d)
    with d.client(timeout=60) as c:
        lost = c.submit(site.url("/cookie/get"), session="Big")
        fresh = c.submit(site.url("/cookie/get"), session="Big", new_session=True, eval=GET_LOCAL)
        assert c.export_session("Big") == {"cookies": [], "origins": []}  # kept again, from its new start
    assert (lost.status, lost.error.code) == ("failed", "session_lost"), lost
    assert fresh.status == "ok" and fresh.result.eval is None
