"""Job options (#14) through a real daemon, as the server, the proxy and the page saw them, per engine."""
from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile

import pytest

from conftest import merged
from foxden.harness import DaemonProcess, write_config
from optsite import ForwardProxy, OptSite, png_size

pytestmark = pytest.mark.browser

SECRET = "pw-Zq81-never-logged"
# Chromium twice: on foxden's own CDP driver (the default) and on Playwright's (`[pool] driver`).
ENGINES = {
    "firefox": {"pool": {"engine": "firefox", "size": 1}},
    "chromium": {"pool": {"engine": "chromium", "driver": "cdp", "size": 1}},
    "pwchromium": {"pool": {"engine": "chromium", "driver": "playwright", "size": 1}},
}


def start_daemon(overrides: dict) -> tuple[DaemonProcess, str]:
    d = tempfile.mkdtemp(prefix="fx", dir="/tmp")
    cfg = merged({"jobs": {"timeout_s": 15.0}, "daemon": {"log_level": "debug"}, **overrides})
    cfg["pool"]["launch_timeout_s"] = 90.0  # a busy CI box can take long to start Firefox
    # No job here hangs on purpose: a browser replaced for a missed heartbeat on a busy box would only
    # leave its new profile in /tmp mid-module (the autouse leak check).
    cfg["watchdog"]["heartbeat_timeout_s"] = 20.0
    cfg["daemon"].setdefault("state_dir", os.path.join(d, "state"))
    daemon = DaemonProcess(write_config(os.path.join(d, "foxden.toml"), cfg), log_path=os.path.join(d, "daemon.log"))
    return daemon.start(timeout=240), d


def stop_daemon(daemon: DaemonProcess, d: str) -> None:
    st = daemon.status()
    print(f"{daemon.config_path}: restarts {st['restarts']}, exits {st['exits']}")
    rc = daemon.stop()
    left = daemon.leftovers()
    daemon.kill_leftovers()
    shutil.rmtree(d, ignore_errors=True)
    assert not left and rc == 0, f"daemon exit {rc}, left {left}"


@pytest.fixture(scope="module")
def optsite():
    s = OptSite()
    yield s
    s.close()


@pytest.fixture(scope="module", params=[pytest.param("firefox", marks=pytest.mark.firefox), "chromium", "pwchromium"])
def den(request):
    daemon, d = start_daemon(ENGINES[request.param])
    daemon.engine = request.param
    yield daemon
    stop_daemon(daemon, d)


def submit(den, url, **job):
    with den.client(timeout=60) as c:
        return c.submit(url, **job)


def ok(answer):
    assert answer.status == "ok", answer
    return answer.result


def test_headers_cookies_and_user_agent_as_the_server_saw_them(den, optsite):
    r = ok(submit(den, optsite.url(f"/echo?case=identity-{den.engine}"), headers={"X-Job": "one", "X-Other": "two"},
                  user_agent="FoxdenTest/1.0", cookies=[{"name": "a", "value": "1"},
                                                         {"name": "b", "value": "2", "path": "/echo"}]))
    (_, seen), = optsite.requests_to(f"/echo?case=identity-{den.engine}")
    assert seen["x-job"] == "one" and seen["x-other"] == "two"
    assert seen["user-agent"] == "FoxdenTest/1.0"
    assert sorted(seen["cookie"].split("; ")) == ["a=1", "b=2"]
    assert r.response_headers["x-foxden-test"] == "Yes" and r.response_headers["content-type"].startswith("text/html")


def test_locale_and_timezone_as_the_page_sees_them(den, optsite):
    r = ok(submit(den, optsite.url(f"/echo?case=locale-{den.engine}"), locale="de-CH", timezone="Asia/Tokyo",
                  eval="[navigator.language, Intl.DateTimeFormat().resolvedOptions().timeZone,"
                       " new Date(Date.UTC(2024, 0, 1)).getTimezoneOffset()]"))
    assert r.eval == ["de-CH", "Asia/Tokyo", -540]
    (_, seen), = optsite.requests_to(f"/echo?case=locale-{den.engine}")
    assert seen["accept-language"].startswith("de-CH")


def test_a_blocked_type_or_glob_never_reaches_the_server(den, optsite):
    r = ok(submit(den, optsite.url(f"/assets?e={den.engine}"), block=["image"], eval="window.scriptRan === true"))
    assert r.eval is True  # the script was not blocked
    ok(submit(den, optsite.url(f"/assets?e={den.engine}&glob"), block=["*skip.png*"]))
    paths = [p for p, h in optsite.requests_to("/asset/") if h.get("referer", "").endswith(den.engine)]
    assert "/asset/s.js" in paths and "/asset/pic.png" not in paths and "/asset/skip.png?kind=glob" not in paths
    glob_paths = [p for p, h in optsite.requests_to("/asset/") if h.get("referer", "").endswith(f"e={den.engine}&glob")]
    assert "/asset/pic.png" in glob_paths and "/asset/skip.png?kind=glob" not in glob_paths


def test_domcontentloaded_answers_while_an_image_never_finishes(den, optsite):
    r = ok(submit(den, optsite.url(f"/held?{den.engine}"), wait_until="domcontentloaded", timeout_s=10,
                  eval="[document.readyState, document.images[0].complete]"))
    # Answered while the image was still loading: `load` had not fired, and never would.
    assert r.title == "held" and r.eval == ["interactive", False]
    assert optsite.requests_to("/held.png")


def test_wait_for_function_waits_for_a_timer(den, optsite):
    r = ok(submit(den, optsite.url("/timer"), wait_for_function="window.ready === 42", eval="window.ready"))
    assert r.eval == 42


def test_html_and_screenshots_full_page_and_selector(den, optsite):
    r = ok(submit(den, optsite.url("/tall"), html=True, screenshot=True, full_page=True,
                  viewport={"width": 500, "height": 400}))
    assert "<div id=\"tall\"></div>" in r.html and r.html.startswith("<html")
    assert png_size(r.screenshot) == (500, 3080)
    r = ok(submit(den, optsite.url("/tall"), screenshot=True, screenshot_selector="#box"))
    assert png_size(r.screenshot) == (120, 80) and r.html is None
    r = ok(submit(den, optsite.url("/tall"), screenshot=True, viewport={"width": 640, "height": 360}))
    assert png_size(r.screenshot) == (640, 360)


def test_pdf_on_chromium_unsupported_option_elsewhere(den, optsite):
    a = submit(den, optsite.url("/echo?pdf"), pdf=True)
    if den.engine != "firefox":
        assert ok(a).pdf.startswith(b"%PDF-")
    else:
        assert (a.status, a.error.code, a.attempts) == ("rejected", "unsupported_option", 0)
        assert "job.pdf" in a.error.message and den.engine in a.error.message


def test_a_job_through_a_proxy_is_seen_by_it_and_its_password_is_never_shown(den, optsite):
    # The page's host resolves nowhere: it loads only through the proxy, which serves it from optsite.
    proxy = ForwardProxy(credentials=f"user:{SECRET}", upstream=("127.0.0.1", optsite.server.server_address[1]))
    try:
        a = submit(den, f"http://proxied.invalid/echo?via=proxy-{den.engine}",
                   proxy=f"http://user:{SECRET}@127.0.0.1:{proxy.port}")
        bad = submit(den, optsite.url("/echo"), proxy=f"http://user:{SECRET}@127.0.0.1:99999")
    finally:
        proxy.close()
    r = ok(a)
    proxy_auth = "Basic " + base64.b64encode(f"user:{SECRET}".encode()).decode()
    assert r.response_headers.get("x-via-test-proxy") == "1"
    assert r.title == "echo" and (f"http://proxied.invalid/echo?via=proxy-{den.engine}", proxy_auth) in proxy.seen
    assert (bad.status, bad.error.code) == ("rejected", "bad_input") and "job.proxy" in bad.error.message
    # The credentials went to the proxy, and nowhere else: not the answer, the status, the log.
    shown = json.dumps(a.to_json_dict()) + json.dumps(bad.to_json_dict()) + json.dumps(den.status())
    with open(den.log_path, errors="replace") as f:
        shown += f.read()
    assert SECRET not in shown and "proxy" in shown


def test_bad_values_are_rejected_before_any_browser_work(den, optsite):
    cases = {"block": (["imgs"], "job.block[0]: unknown resource type 'imgs'"),
             "viewport": ({"width": 0, "height": 10}, "job.viewport.width: 0"),
             "timezone": ("Mars/Olympus", "job.timezone"),
             "proxy": ("http//nope", "job.proxy")}
    for name, (value, message) in cases.items():
        a = submit(den, optsite.url("/echo?never"), **{name: value})
        assert (a.status, a.error.code, a.attempts) == ("rejected", "bad_input", 0), a
        assert a.error.message.startswith(message), a.error.message
    assert not optsite.requests_to("/echo?never")


@pytest.mark.firefox
def test_a_proxy_the_egress_policy_refuses_is_blocked(optsite):
    """allow_private = false: a job's proxy is judged like its target, by literal address and by name;
    one the policy allows (allow_hosts) carries the job instead of the browser's egress proxy."""
    proxy = ForwardProxy(upstream=("127.0.0.1", optsite.server.server_address[1]))
    daemon, d = start_daemon({**ENGINES["firefox"], "jobs": {"timeout_s": 15.0, "allow_private": False,
                                                               "allow_hosts": ["127.0.0.1"]}})
    try:
        with daemon.client(timeout=60) as c:
            literal = c.submit("http://proxied.invalid/echo", proxy=f"http://127.0.0.2:{proxy.port}")
            # inet_aton reads 127.2 as 127.0.0.2: a name to the dispatcher, an address to the guard.
            named = c.submit("http://proxied.invalid/echo", proxy=f"http://127.2:{proxy.port}")
            allowed = c.submit("http://proxied.invalid/echo?allowed", proxy=f"http://127.0.0.1:{proxy.port}")
    finally:
        stop_daemon(daemon, d)
        proxy.close()
    assert (literal.status, literal.error.code, literal.attempts) == ("rejected", "blocked_target", 0), literal
    assert literal.error.message.startswith("job.proxy: 127.0.0.2 is a loopback address")
    # A name only a lookup can judge goes to the browser, whose guard resolves and refuses it.
    assert (named.status, named.error.code) == ("failed", "blocked_target"), named
    assert "job.proxy" in named.error.message and "127.0.0.2" in named.error.message
    assert ok(allowed).title == "echo" and ok(allowed).response_headers.get("x-via-test-proxy") == "1"
    # Only the allowed job's requests (its page, perhaps its favicon) reached the proxy.
    assert "http://proxied.invalid/echo?allowed" in [u for u, _ in proxy.seen]
    assert all(u.startswith("http://proxied.invalid/") and "echo" not in u.replace("echo?allowed", "")
               for u, _ in proxy.seen), proxy.seen


def test_cli_submit_flags_and_batch_keys(den, optsite, tmp_path, capsys):
    from foxden import cli

    html, shot, pdf = tmp_path / "page.html", tmp_path / "shot.png", tmp_path / "page.pdf"
    args = ["submit", "-c", den.config_path, optsite.url(f"/tall?cli={den.engine}"), "--header", "X-Cli: yes",
            "--cookie", "c=1", "--cookie", "d=2", "--user-agent", "CliAgent", "--viewport", "300x200",
            "--screenshot", str(shot), "--full-page", "--html", str(html), "--block", "image", "--wait-until",
            "domcontentloaded", "--json"]
    if den.engine != "firefox":
        args += ["--pdf", str(pdf)]
    assert cli.main(args) == 0, capsys.readouterr()
    doc = json.loads(capsys.readouterr().out)
    assert doc["status"] == "ok" and doc["result"]["response_headers"]["x-foxden-test"] == "Yes"
    assert "id=\"tall\"" in html.read_text() and doc["result"]["html"] == html.read_text()
    assert png_size(shot.read_bytes()) == (300, 3080)
    assert pdf.read_bytes().startswith(b"%PDF-") if den.engine != "firefox" else not pdf.exists()
    (_, seen), = optsite.requests_to(f"/tall?cli={den.engine}")
    assert (seen["x-cli"], seen["user-agent"], sorted(seen["cookie"].split("; "))) == ("yes", "CliAgent", ["c=1", "d=2"])
    lines = [{"url": optsite.url(f"/echo?batch={den.engine}"), "id": "good", "headers": {"X-Batch": "1"},
              "block": ["image"], "locale": "fr"},
             {"url": optsite.url("/echo?never"), "id": "typed", "block": "image"},
             {"url": optsite.url("/echo?never"), "id": "valued", "timezone": "Nowhere/Land"}]
    batch = tmp_path / "jobs.jsonl"
    batch.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert cli.main(["batch", "-c", den.config_path, str(batch)]) == 1
    out = {d["id"]: d for d in map(json.loads, capsys.readouterr().out.splitlines())}
    assert out["good"]["status"] == "ok"
    assert (out["typed"]["error"]["code"], out["valued"]["error"]["code"]) == ("bad_input", "bad_input")
    assert "job.block: expected a list" in out["typed"]["error"]["message"]
    assert out["valued"]["error"]["message"].startswith("job.timezone: 'Nowhere/Land'")
    (_, seen), = optsite.requests_to(f"/echo?batch={den.engine}")
    assert seen["x-batch"] == "1" and seen["accept-language"].startswith("fr")
    assert not optsite.requests_to("/echo?never")


def test_a_session_keeps_the_identity_it_started_with(den, optsite):
    first = f"/echo?session=1-{den.engine}"
    ok(submit(den, optsite.url(first), session=f"S-{den.engine}", user_agent="FirstAgent", locale="de",
              headers={"X-Job": "1"}))
    r = ok(submit(den, optsite.url(f"/echo?session=2-{den.engine}"), session=f"S-{den.engine}",
                  user_agent="SecondAgent", headers={"X-Job": "2"}, viewport={"width": 333, "height": 222},
                  eval="[navigator.userAgent, navigator.language, innerWidth]"))
    assert r.eval == ["FirstAgent", "de", 333]  # context options stay; the page's own apply per job
    (_, seen), = optsite.requests_to(f"/echo?session=2-{den.engine}")
    assert (seen["user-agent"], seen["x-job"]) == ("FirstAgent", "2")
    with den.client(timeout=60) as c:
        assert c.end_session(f"S-{den.engine}")


def test_the_async_client_takes_the_options(den, optsite):
    import asyncio

    from foxden import AsyncClient

    async def run():
        async with AsyncClient.from_config(den.config, timeout=60) as c:
            return await c.submit(optsite.url(f"/echo?async={den.engine}"), headers={"X-Async": "1"}, html=True,
                                  cookies=[{"name": "k", "value": "v"}])

    r = ok(asyncio.run(run()))
    (_, seen), = optsite.requests_to(f"/echo?async={den.engine}")
    assert (seen["x-async"], seen["cookie"]) == ("1", "k=v") and "<p id=\"p\">echo</p>" in r.html
