"""Browser drivers, driven directly: foxden's CDP driver for Chromium, and parity with the Playwright driver."""
from __future__ import annotations

import os
import signal
import struct
import time
import uuid

import psutil
import pytest

from foxden import engines, procs
from foxden.config import default_config
from foxden.drivers import BrowserDied, driver_name, open_driver
from foxden.drivers.chromium import ChromiumDriver, from_deep
from foxden.protocols.messages import JobSpec

pytestmark = pytest.mark.browser


def _job(url: str, **kw) -> JobSpec:
    return JobSpec(key=uuid.uuid4().hex[:8], id="t", url=url, **kw)


def _pool(driver: str):
    cfg = default_config()
    return cfg.replace(pool={"driver": driver, "launch_timeout_s": 30.0}).pool


@pytest.fixture
def owned(tmp_path, monkeypatch):
    """Every process started in the test carries a marker; afterwards none may be alive."""
    marker = f"test-{uuid.uuid4().hex}/"
    monkeypatch.setenv(procs.MARKER_ENV, marker)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    yield marker
    deadline = time.monotonic() + 10
    while (left := procs.find_marked(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    procs.kill_and_wait(left)
    assert not left, [(p.pid, p.name()) for p in left]


def _launch(tmp_path, driver: str = "cdp"):
    choice = engines.resolve_engine("chromium", None)
    d = open_driver(choice, _pool(driver), str(tmp_path))
    d.launch()
    return d


def _ends(call, *args, within: float = 60.0):
    """call(*args), which must return (or raise) within a generous deadline: a test only asks that a
    bounded call ends at all (job latencies are measured by `python -m bench.run`, bench/drivers.py)."""
    import concurrent.futures
    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        return pool.submit(call, *args).result(timeout=within)
    except concurrent.futures.TimeoutError:
        raise AssertionError(f"{getattr(call, '__name__', call)}{args!r:.200} did not end in {within}s") from None
    finally:
        pool.shutdown(wait=False)


@pytest.fixture
def chromium(owned, tmp_path):
    d = _launch(tmp_path)
    yield d
    d.close(5.0)


def test_auto_picks_cdp_for_chromium_and_playwright_for_the_firefoxes():
    assert driver_name("chromium", "auto") == "cdp"
    assert driver_name("firefox", "auto") == "playwright"
    assert driver_name("camoufox", "auto") == "playwright"
    assert driver_name("chromium", "playwright") == "playwright"


def test_the_browser_is_the_actors_own_child_with_no_driver_process(chromium):
    pids = chromium.pids()
    main = psutil.Process(pids[0])
    assert main.ppid() == os.getpid()  # no node in between
    assert "chromium" in main.name() or "chrome" in main.name()
    assert not [p for p in procs.descendants(os.getpid()) if p.name() == "node"]
    assert chromium.version.split(".")[0].isdigit()


def test_a_page_job_reports_status_title_url_and_length(chromium, site):
    o = chromium.run(_job(site.url("/page/7")), 10)
    assert o.status == "ok", o.error
    assert o.result.title == "Page 7" and o.result.http_status == 200
    assert o.result.final_url == site.url("/page/7") and o.result.content_length > 500
    o = chromium.run(_job(site.url("/status/404")), 10)
    assert (o.status, o.result.http_status, o.result.title) == ("ok", 404, "status 404")
    o = chromium.run(_job(site.url("/redirect?to=/page/2")), 10)
    assert (o.result.final_url, o.result.http_status) == (site.url("/page/2"), 200)
    o = chromium.run(_job("about:blank"), 10)
    assert o.status == "ok" and o.result.http_status is None and o.result.final_url == "about:blank"


@pytest.mark.parametrize("expr, value", [
    ("document.title", "Page 1"),
    ("() => document.title", "Page 1"),
    ("async () => { await new Promise(r => setTimeout(r, 20)); return [1, 'x', null]; }", [1, "x", None]),
    ("function () { return 6 * 7 }", 42),
    ("var q = 5; q * 2", 10),
    ("({d: new Date(0), n: NaN, inf: -Infinity, s: new Set([1, 2]), m: new Map([['k', 2]]), u: undefined, b: 10n})",
     {"d": "1970-01-01T00:00:00.000Z", "n": None, "inf": None, "s": [1, 2], "m": {"k": 2}, "u": None, "b": 10}),
    ("(() => { const o = {a: 1}; o.self = o; return o; })()", {"a": 1, "self": None}),
    ("Promise.resolve(document.querySelectorAll('li').length)", 20),
])
def test_eval_values(chromium, site, expr, value):
    o = chromium.run(_job(site.url("/page/1"), eval=expr), 10)
    assert o.status == "ok", o.error
    assert o.result.eval == value


@pytest.mark.parametrize("expr, message", [
    ("throw new Error('boom')", "Error: boom"),
    ("Promise.reject(new TypeError('nope'))", "TypeError: nope"),
    ("foo.bar", "ReferenceError: foo is not defined"),
    ("this is not javascript", "SyntaxError"),
])
def test_eval_errors_are_eval_error_and_the_browser_goes_on(chromium, site, expr, message):
    o = chromium.run(_job(site.url("/"), eval=expr), 10)
    assert o.status == "failed" and o.error.code == "eval_error" and message in o.error.message, o.error
    assert chromium.run(_job(site.url("/")), 10).status == "ok"


def test_eval_runs_on_a_page_whose_csp_forbids_scripts(chromium, site):
    o = chromium.run(_job(site.url("/csp"), eval="document.title + '!'"), 10)
    assert (o.status, o.result.eval) == ("ok", "csp!")


def test_dialogs_are_dismissed_instead_of_blocking_the_page(chromium, site):
    o = chromium.run(_job(site.url("/dialogs"), eval="[window.answer, alert('x'), confirm('y')]"), 10)
    assert (o.status, o.result.eval) == ("ok", [False, None, False]), o.error


def test_wait_for_a_late_element_a_bad_selector_and_one_that_never_comes(chromium, site):
    o = chromium.run(_job(site.url("/delayed-element?ms=300"), wait_for="#late",
                          eval="document.querySelector('#late').textContent"), 10)
    assert (o.status, o.result.eval) == ("ok", "here"), o.error
    o = chromium.run(_job(site.url("/"), wait_for="[["), 10)
    assert o.status == "failed" and o.error.code == "bad_selector", o.error
    # Its budget ends the wait (8 s: a loaded machine may take seconds to navigate, and only
    # the wait_for phase is to time out here).
    o = _ends(chromium.run, _job(site.url("/"), wait_for="#never"), 8.0)
    assert o.status == "timeout" and o.error.message.startswith("wait_for:"), o.error
    # An element that exists but has no box is not there yet for wait_for.
    o = chromium.run(_job(site.url("/delayed-element?ms=100000"), wait_for="body > script"), 1.0)
    assert o.status == "timeout"  # a <script> has no box: never visible


def test_a_response_that_never_finishes_times_out_and_the_browser_goes_on(chromium, site):
    o = _ends(chromium.run, _job(site.url("/hang")), 1.0)  # its budget ends the wait
    assert o.status == "timeout" and o.error.message.startswith("navigate:"), o.error
    o = chromium.run(_job(site.url("/page/3")), 10)
    assert o.status == "ok" and o.result.title == "Page 3"


def test_unreachable_and_refused_urls_fail_as_navigation_errors(chromium, site):
    o = chromium.run(_job("http://127.0.0.1:9/"), 10)
    assert o.status == "failed" and o.error.code == "navigation_failed" and "net::ERR_" in o.error.message, o.error


def test_screenshot_is_a_png_of_the_default_viewport(chromium, site):
    o = chromium.run(_job(site.url("/"), screenshot=True), 10)
    png = o.result.screenshot
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (1280, 720)


def test_sessions_keep_cookies_until_a_new_session(chromium, site):
    assert chromium.run(_job(site.url("/cookie/set?v=42"), session="s"), 10).status == "ok"
    o = chromium.run(_job(site.url("/cookie/get"), session="s"), 10)
    assert o.result.title == "cookie foxden=42"
    assert chromium.sessions() == ("s",)
    o = chromium.run(_job(site.url("/cookie/get")), 10)  # a job outside the session sees nothing
    assert o.result.title == "cookie"
    o = chromium.run(_job(site.url("/cookie/get"), session="s", new_session=True), 10)
    assert o.result.title == "cookie"


def _kill_renderers(driver) -> None:
    for proc in procs.processes(driver.pids()):
        try:
            if "--type=renderer" in proc.cmdline():
                proc.kill()
        except psutil.Error:
            pass


def test_a_page_whose_renderer_dies_fails_its_job_at_once_and_the_browser_goes_on(chromium, site):
    # An eval that never settles has no deadline of its own (the watchdog
    # ends it): a dead renderer must end the wait, not leave it hanging.
    import threading
    done = threading.Event()

    def killer():  # again and again: a kill before the page is up only makes Chromium start another
        while not done.wait(1.0):
            _kill_renderers(chromium)

    threading.Thread(target=killer, daemon=True).start()
    try:
        o = _ends(chromium.run, _job(site.url("/"), eval="new Promise(() => {})"), 30)
    finally:
        done.set()
    assert o.status == "failed" and "crashed" in o.error.message, o.error  # not a timeout: the crash ended it
    assert chromium.alive()
    assert chromium.run(_job(site.url("/page/4")), 10).result.title == "Page 4"


def test_sigkill_of_the_browser_mid_job_is_browser_died(chromium, site):
    main = chromium.pids()[0]
    import threading
    threading.Timer(0.5, os.kill, (main, signal.SIGKILL)).start()
    with pytest.raises(BrowserDied):
        chromium.run(_job(site.url("/"), eval="new Promise(() => {})"), 30)
    assert not chromium.alive()


def test_close_is_polite_idempotent_and_leaves_nothing(owned, tmp_path, site):
    d = _launch(tmp_path)
    assert d.run(_job(site.url("/")), 10).status == "ok"
    pids = d.pids()
    d.close(5.0)
    d.close(5.0)
    assert not d.alive() and not any(procs.pid_alive(p) for p in pids[:1])


def test_close_of_a_frozen_browser_kills_it_within_the_timeout(owned, tmp_path):
    d = _launch(tmp_path)
    main = d.pids()[0]
    os.kill(main, signal.SIGSTOP)
    _ends(d.close, 1.0)  # a polite close cannot finish: close must kill it, not wait for it
    assert not procs.pid_alive(main)


def test_a_missing_binary_is_engine_unavailable(owned, tmp_path):
    choice = engines.EngineChoice("chromium", str(tmp_path / "no-such-chromium"), "test")
    with pytest.raises(engines.EngineUnavailable, match="apt-get install -y chromium"):
        open_driver(choice, _pool("cdp"), str(tmp_path)).launch()


def test_a_binary_that_exits_at_once_is_a_launch_error_with_its_output(owned, tmp_path):
    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\necho 'cannot open display' >&2\nexit 1\n")
    fake.chmod(0o755)
    d = open_driver(engines.EngineChoice("chromium", str(fake), "test"), _pool("cdp"), str(tmp_path))
    with pytest.raises(RuntimeError, match="cannot open display"):
        d.launch()


def test_deep_values_without_a_browser():
    assert from_deep({"type": "number", "value": "-0"}) == 0
    assert from_deep({"type": "regexp", "value": {"pattern": "a+", "flags": "g"}}) == "/a+/g"
    assert from_deep({"type": "function"}) is None
    assert from_deep({"type": "node", "value": {"nodeType": 1}}) is None
    assert from_deep({"type": "object", "value": [[{"type": "number", "value": 1}, {"type": "string", "value": "x"}]]}) \
        == {"1": "x"}


PARITY_JOBS = [
    ("/page/5", {}),
    ("/status/500", {}),
    ("/redirect?to=/page/6", {}),
    ("/page/1", {"eval": "() => ({n: document.querySelectorAll('a').length, t: document.title})"}),
    ("/page/1", {"eval": "[1, 'two', {three: 3}]"}),
    ("/delayed-element?ms=200", {"wait_for": "#late", "eval": "document.getElementById('late').textContent"}),
    ("/page/1", {"eval": "throw new Error('same')"}),
    ("/page/1", {"wait_for": "[["}),
]


@pytest.mark.parametrize("driver", ["playwright"])
def test_both_chromium_drivers_answer_alike(owned, tmp_path, site, driver):
    """The CDP driver must answer what the Playwright driver answers, field by field."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    cdp, other = _launch(tmp_path / "a"), _launch(tmp_path / "b", driver)
    try:
        for path, kw in PARITY_JOBS:
            a, b = cdp.run(_job(site.url(path), **kw), 10), other.run(_job(site.url(path), **kw), 10)
            assert a.status == b.status, (path, kw, a, b)
            if a.status == "ok":
                for key in ("final_url", "http_status", "title", "content_length", "eval"):
                    assert getattr(a.result, key) == getattr(b.result, key), (path, kw, key, a.result, b.result)
            else:
                assert a.error.code == b.error.code, (path, kw, a.error, b.error)
    finally:
        cdp.close(5.0)
        other.close(5.0)
