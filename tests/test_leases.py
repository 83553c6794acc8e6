"""Leased browsers through a real daemon: a caller's own Playwright on a leased Chromium and Firefox, the
secret, the ends (ttl, idle, `foxden lease end`) with every process gone, and no sharing with jobs."""
from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from importlib.metadata import version

import pytest
from playwright.sync_api import sync_playwright

from rich.console import Console

from foxden import procs
from foxden.aclient import AsyncClient
from foxden.client import ServerError, job_request
from foxden.statusview import status_view

from conftest import module_daemon

pytestmark = pytest.mark.browser

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def den():
    """One daemon for the module: a pool of one Chromium, at most one lease at a time."""
    with module_daemon({"pool": {"size": 1}, "leases": {"max": 1}}) as daemon:
        yield daemon


def _lease_row(den, lease_id: str) -> dict | None:
    return next((row for row in den.status()["leases"] if row["id"] == lease_id), None)


def _processes_of(den, browser: str) -> dict[int, float]:
    """pid -> create time of every process of one browser (its actor, its browser, a node server), by marker."""
    prefix = f"{den.state_prefix}{den.status()['instance']}/{browser}/"
    return {p.pid: procs.create_time(p.pid) for p in procs.find_marked(prefix)}


def _alive(found: dict[int, float]) -> list[int]:
    return [pid for pid, created in found.items() if procs.pid_alive(pid, created)]


def _wait_gone(den, lease_id: str, timeout: float) -> dict:
    return den.wait_until(lambda st: all(row["id"] != lease_id for row in st["leases"]), timeout=timeout)


def test_a_leased_chromium_serves_playwright_over_cdp_and_never_runs_a_job(den, site, ended):
    before = den.status()
    live, ends = before["browsers"]["live"], before["exits"].get("lease_ended", 0)
    with den.client(timeout=60) as c:
        info = c.lease()
        ended.append(info["lease"])
        assert info["engine"] == "chromium" and "playwright_version" not in info
        assert info["endpoint"].startswith("ws://127.0.0.1:") and info["expires_at"] > time.time() + 60
        row = _lease_row(den, info["lease"])
        assert row["connected"] is False and info["endpoint"].rsplit("/", 1)[1] not in str(den.status())
        found = _processes_of(den, row["browser"])
        assert len(found) >= 3  # its actor, Chromium and Chromium's helpers
        with pytest.raises(ServerError) as refused:  # [leases] max = 1
            c.lease()
        assert refused.value.code == "too_many_leases" and "[leases] max is 1" in refused.value.message
        with sync_playwright() as p:
            browser = p.chromium.connect_over_cdp(info["endpoint"])
            page = browser.new_page()
            page.goto(site.url("/page/7"))
            assert page.title() == "Page 7"
            st = den.status()
            assert _lease_row(den, info["lease"])["connected"] is True
            table = io.StringIO()
            Console(file=table, width=160).print(status_view(st))
            assert f"{info['lease']}  browser {row['browser']}  chromium  connected  expires in" in table.getvalue()
            assert st["browsers"]["live"] == live and all(ch["id"] != row["browser"] for ch in st["children"])
            answers = [a for _, _, a in c.submit_many([job_request(site.url(f"/page/{i}")) for i in range(6)])]
            assert [a.status for a in answers] == ["ok"] * 6
            assert row["browser"] not in {a.browser for a in answers}
            assert page.title() == "Page 7"  # the jobs did not touch it
            browser.close()
    done = _cli(den, "lease", "end", info["lease"])
    assert done.returncode == 0 and "ended, its browser killed" in done.stdout, done.stderr
    assert _alive(found) == [], "`foxden lease end` returned with processes of the lease alive"
    st = den.status()
    assert st["leases"] == [] and st["exits"].get("lease_ended") == ends + 1 and st["browsers"]["live"] == live
    with den.client(timeout=30) as c:
        assert c.end_lease(info["lease"]) == {"lease": info["lease"], "existed": False}


def _status_of(url: str, headers=None) -> int:
    """The HTTP status of a WebSocket upgrade at url (101 when it was accepted)."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    async def go() -> int:
        try:
            async with connect(url, open_timeout=10):
                return 101
        except InvalidStatus as exc:
            return exc.response.status_code
    out: list[int] = []
    # Its own thread: the caller may be inside Playwright's sync API, which runs a loop of its own.
    thread = threading.Thread(target=lambda: out.append(asyncio.run(go())))
    thread.start()
    thread.join(20)
    return out[0]


def _cli(den, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "foxden", *args, "-c", den.config_path], capture_output=True,
                          text=True, timeout=90, cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT})


@pytest.fixture
def ended(den):
    """Lease ids a test took: ended after it whatever happened (one test's lease must not refuse the next's)."""
    ids: list[str] = []
    yield ids
    with den.client(timeout=60) as c:
        for lease_id in ids:
            c.end_lease(lease_id)


def test_the_endpoint_refuses_a_path_without_the_secret_and_a_second_client(den, ended):
    done = _cli(den, "lease", "--ttl", "60", "--idle", "30", "--json")
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    ended.append(info["lease"])
    base, secret = info["endpoint"].rsplit("/", 1)
    for path in ("", "json/version", secret[:-1], secret + "x", secret.upper()):
        assert _status_of(f"{base}/{path}") == 403, path
    assert _status_of(info["endpoint"]) == 101
    with sync_playwright() as p:
        browser = p.chromium.connect_over_cdp(info["endpoint"])
        assert _status_of(info["endpoint"]) == 409  # one client at a time
        browser.close()
    assert den.wait_until(lambda st: not st["leases"][0]["connected"], timeout=10)
    assert secret not in den.log_tail(10_000)


def test_a_lease_beyond_the_bounds_or_of_a_missing_engine_is_refused_naming_why(den):
    with den.client(timeout=60) as c:
        with pytest.raises(ServerError) as refused:
            c.lease(ttl_s=den.config.leases.max_ttl_s + 1)
        assert refused.value.code == "bad_field" and refused.value.message.startswith("ttl_s:")
        if shutil.which("camoufox") is None and not os.path.exists(os.path.expanduser("~/.cache/camoufox")):
            with pytest.raises(ServerError) as refused:
                c.lease(engine="camoufox")
            assert refused.value.code == "lease_failed" and refused.value.message.startswith("engine: camoufox")
    assert den.status()["leases"] == []


def _hold(endpoint: str, seconds: float, connected: threading.Event, closed: list) -> threading.Thread:
    """A client connected to the lease's endpoint for up to `seconds` (a bare WebSocket: quick to connect
    under load, and a connection is all that idle counts); `closed` gets True if the daemon closed it."""
    from websockets.asyncio.client import connect

    async def go() -> None:
        async with connect(endpoint, open_timeout=20, max_size=None) as ws:
            connected.set()
            try:
                await asyncio.wait_for(ws.wait_closed(), seconds)
                closed.append(True)
            except asyncio.TimeoutError:
                closed.append(False)
    thread = threading.Thread(target=lambda: asyncio.run(go()), daemon=True)
    thread.start()
    return thread


def test_a_lease_ends_at_its_ttl_with_a_client_connected_and_every_process_gone(den, ended):
    before = den.status()
    restarts, expired = before["restarts"], before["exits"].get("lease_expired", 0)
    with den.client(timeout=60) as c:
        info = c.lease(ttl_s=6, idle_s=30)
    ended.append(info["lease"])
    found = _processes_of(den, _lease_row(den, info["lease"])["browser"])
    connected, closed = threading.Event(), []
    holder = _hold(info["endpoint"], 30, connected, closed)
    assert connected.wait(20)
    st = _wait_gone(den, info["lease"], timeout=30)
    assert st["exits"].get("lease_expired") == expired + 1 and st["restarts"] == restarts
    assert time.time() >= info["expires_at"]
    holder.join(20)
    assert closed == [True], "the client was not disconnected when its lease expired"
    assert den.wait_until(lambda _: not _alive(found), timeout=5)


def test_a_lease_ends_after_idle_seconds_without_a_client_not_while_one_is_connected(den, ended):
    idled = den.status()["exits"].get("lease_idle", 0)

    async def lease() -> dict:
        async with AsyncClient.from_config(den.config, timeout=60) as c:
            return await c.lease(ttl_s=60, idle_s=3)
    info = asyncio.run(lease())
    ended.append(info["lease"])
    found = _processes_of(den, _lease_row(den, info["lease"])["browser"])
    connected, closed = threading.Event(), []
    holder = _hold(info["endpoint"], 6, connected, closed)  # twice its idle, connected
    assert connected.wait(20)
    holder.join(20)
    left = time.monotonic()
    assert closed == [False] and _lease_row(den, info["lease"]) is not None, "ended while a client was connected"
    st = _wait_gone(den, info["lease"], timeout=20)
    assert st["exits"].get("lease_idle") == idled + 1 and time.monotonic() - left > 2.5
    assert den.wait_until(lambda _: not _alive(found), timeout=5)

    async def end() -> dict:
        async with AsyncClient.from_config(den.config, timeout=60) as c:
            return await c.end_lease(info["lease"])
    assert asyncio.run(end()) == {"lease": info["lease"], "existed": False}


@pytest.mark.firefox
def test_a_leased_firefox_serves_playwright_connect(den, site, ended):
    with den.client(timeout=90) as c:
        info = c.lease(engine="firefox", ttl_s=60, idle_s=30)
        ended.append(info["lease"])
        assert info["engine"] == "firefox" and info["playwright_version"] == version("playwright")
        found = _processes_of(den, _lease_row(den, info["lease"])["browser"])
        assert any("node" in " ".join(psutil_cmd(pid)) for pid in found)  # its Playwright server
        with sync_playwright() as p:
            browser = p.firefox.connect(info["endpoint"])
            page = browser.new_page()
            page.goto(site.url("/page/3"))
            assert page.title() == "Page 3"
            assert _lease_row(den, info["lease"])["connected"] is True
            browser.close()
        assert c.end_lease(info["lease"]) == {"lease": info["lease"], "existed": True}
    assert _alive(found) == []


def psutil_cmd(pid: int) -> list[str]:
    import psutil

    try:
        return psutil.Process(pid).cmdline()
    except psutil.Error:
        return []
