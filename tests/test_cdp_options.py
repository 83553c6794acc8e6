"""Issue #14's job options on foxden's CDP driver: a real Chromium, pages and a forward proxy on 127.0.0.1."""
from __future__ import annotations

import base64
import http.client
import struct
import threading
import time
import uuid
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from foxden import engines, procs
from foxden.config import default_config
from foxden.drivers import open_driver
from foxden.drivers.cdp_block import CDP_TYPES, blocks, fetch_patterns, glob_matches, websocket_blocker
from foxden.drivers.cdp_outputs import element_clip, full_page_clip, lower_headers, summary_expression
from foxden.drivers.cdp_page import (auth_response, context_params, cookie_param, effective_options, option_step,
                                     page_commands, viewport_metrics)
from foxden.drivers.cdp_waits import IDLE_S, LIFECYCLE, NetworkTally, navigation_done
from foxden.drivers.results import capped, page_outcome, step_code
from foxden.protocols.errors import ErrorCode
from foxden.protocols.messages import JobSpec
from foxden.protocols.options import DEFAULT, Cookie, JobOptions, Proxy, ResourceType, SameSite, Viewport, WaitUntil

# --- pure helpers ------------------------------------------------------------------------------


@pytest.mark.parametrize("glob, url, hit", [
    ("*.woff2", "http://a.test/f/x.woff2", True),
    ("*.woff2", "http://a.test/f/x.woff2?v=1", False),  # the whole URL must match
    ("*.woff2*", "http://a.test/f/x.woff2?v=1", True),
    ("*://ads.test/*", "https://ads.test/a/b.js", True),
    ("*://ads.test/*", "https://notads.test/a", False),
    ("http://a.test/?.png", "http://a.test/1.png", True),
    ("http://a.test/?.png", "http://a.test/12.png", False),
    ("http://a.test/\\*", "http://a.test/*", True),  # an escaped star is itself
    ("http://a.test/\\*", "http://a.test/x", False),
    ("http://a.test/a.b", "http://a.test/aXb", False),  # a dot is a dot
    ("*/x.png", "http://a.test/x.png#frag", True),  # the fragment never counts
])
def test_glob_matching(glob, url, hit):
    assert glob_matches(glob, url) is hit


def test_resource_types_map_onto_cdp_and_websocket_is_left_to_blocked_urls():
    assert set(CDP_TYPES) == set(ResourceType)  # every type has a CDP mapping
    opts = JobOptions(block_types=(ResourceType.IMAGE, ResourceType.WEBSOCKET, ResourceType.OTHER))
    assert blocks(opts, "http://a.test/x", "Image") and blocks(opts, "http://a.test/x", "Ping")
    assert not blocks(opts, "http://a.test/x", "Script") and not blocks(opts, "http://a.test/x", "Document")
    kinds = {p["resourceType"] for p in fetch_patterns(opts, auth=False)}
    assert "Image" in kinds and "WebSocket" not in kinds  # Fetch never pauses a WebSocket handshake
    assert "window.WebSocket = WebSocket" in websocket_blocker(opts)
    assert websocket_blocker(JobOptions(block_types=(ResourceType.IMAGE,))) is None
    globbed = JobOptions(block_patterns=("*.woff2",))
    assert fetch_patterns(globbed, auth=False) == [{"urlPattern": "*.woff2", "requestStage": "Request"}]
    assert blocks(globbed, "http://a.test/f.woff2", "Font") and not blocks(globbed, "http://a.test/f.css", "Font")


def test_default_options_send_nothing_extra():
    assert page_commands(DEFAULT, "http://a.test/", "UA") == []
    assert fetch_patterns(DEFAULT, auth=False) is None
    assert context_params(None) == {}
    assert viewport_metrics(None)["width"] == 1280


def test_page_commands_for_every_option():
    opts = JobOptions(headers=(("X-A", "1"),), locale="de-DE", timezone="Asia/Tokyo",
                      cookies=(Cookie("a", "1"),), block_types=(ResourceType.FONT,),
                      proxy=Proxy("http://p.test:1", "u", "pw"))
    cmds = dict(page_commands(opts, "http://a.test/x", "DefaultUA"))
    assert cmds["Network.setExtraHTTPHeaders"] == {"headers": {"X-A": "1"}}
    assert cmds["Emulation.setUserAgentOverride"] == {"userAgent": "DefaultUA", "acceptLanguage": "de-DE"}
    assert cmds["Emulation.setLocaleOverride"] == {"locale": "de-DE"}
    assert cmds["Emulation.setTimezoneOverride"] == {"timezoneId": "Asia/Tokyo"}
    # proxy credentials: every request is paused, so that Chromium asks for them
    assert cmds["Fetch.enable"] == {"patterns": [{"urlPattern": "*", "requestStage": "Request"}],
                                    "handleAuthRequests": True}
    assert cmds["Network.setCookies"] == {"cookies": [{"name": "a", "value": "1", "url": "http://a.test/x"}]}
    assert [option_step(m) for m in cmds] == ["headers", "user_agent", "locale", "timezone", "block", "cookies"]
    assert all(step_code(option_step(m), "x") is ErrorCode.BAD_INPUT for m in cmds)
    assert context_params(opts.proxy) == {"proxyServer": "http://p.test:1", "proxyBypassList": "<-loopback>"}


def test_cookie_scope():
    assert cookie_param(Cookie("a", "1", domain=".a.test"), "http://x/") == {
        "name": "a", "value": "1", "domain": ".a.test", "path": "/"}
    full = cookie_param(Cookie("a", "1", url="http://b.test/", path="/p", secure=True, http_only=True,
                               same_site=SameSite.LAX, expires=2e9), "http://x/")
    assert full == {"name": "a", "value": "1", "url": "http://b.test/", "path": "/p", "secure": True,
                    "httpOnly": True, "expires": 2e9, "sameSite": "Lax"}


def test_a_session_keeps_its_first_jobs_context_options():
    first = JobOptions(user_agent="UA1", locale="fr-FR", proxy=Proxy("http://p:1"), html=True)
    later = JobOptions(user_agent="UA2", timezone="UTC", pdf=True)
    eff = effective_options(first, later)
    assert eff.context_options == first.context_options and eff.pdf and not eff.html
    assert effective_options(None, later) is later


def test_navigation_done_per_wait_until():
    seen = {("L", "DOMContentLoaded")}
    assert navigation_done(WaitUntil.DOMCONTENTLOADED, "L", seen)
    assert not navigation_done(WaitUntil.LOAD, "L", seen)
    assert navigation_done(WaitUntil.COMMIT, "L", set())
    assert not navigation_done(WaitUntil.NETWORKIDLE, "L", seen)  # load first, then the tally
    assert navigation_done(WaitUntil.NETWORKIDLE, "L", seen | {("L", "load")})
    assert not navigation_done(WaitUntil.LOAD, "L", {("OLD", "load")})  # another document's load
    assert set(LIFECYCLE) == set(WaitUntil)


def test_network_tally_is_idle_500ms_after_its_last_request_ends():
    tally = NetworkTally(now=10.0)
    assert tally.idle_at() == 10.5
    tally.started("a")
    tally.started("b")
    tally.ended("a", now=11.0)
    assert tally.idle_at() is None  # b is still in flight
    tally.ended("zzz", now=11.5)  # a request it never saw start changes nothing
    assert tally.idle_at() is None
    tally.ended("b", now=12.0)
    assert tally.idle_at() == 12.0 + IDLE_S
    tally.loaded(now=13.0)  # a load after the last request: the window starts at the load
    assert tally.idle_at() == 13.0 + IDLE_S
    tally.started("c")
    tally.loaded(now=14.0)
    assert tally.idle_at() is None


def test_html_pdf_and_headers_count_towards_the_result_cap():
    for big in ({"html": "x" * 5000}, {"pdf": b"%PDF" + b"x" * 5000}, {"response_headers": {"a": "x" * 5000}}):
        ok = page_outcome(final_url="http://a.test/", http_status=200, title="t", content_length=1, value=None,
                          screenshot=None, **big)
        assert capped(ok, 10_000) is ok
        assert capped(ok, 4_000).error.code == "result_too_large", big.keys()


def test_clips_headers_and_auth_answers():
    assert element_clip([10.5, 20, 100, 50.2]) == {"x": 10, "y": 20, "width": 101, "height": 51, "scale": 1}
    assert element_clip([0, 0, 0, 10]) is None
    assert element_clip("not a box") is None and element_clip([0, 0, "x", 1]) is None  # a page's own getter
    assert element_clip([0, 0, float("inf"), 1]) is None
    assert full_page_clip({"cssContentSize": {"width": 1280, "height": 3000.4}})["height"] == 3001
    assert lower_headers({"X-A": "1"}) == {"x-a": "1"} and lower_headers(None) is None
    assert summary_expression(False).count(",") < summary_expression(True).count(",")
    proxy = Proxy("http://p:1", "u", "pw")
    assert auth_response("Proxy", proxy) == {"response": "ProvideCredentials", "username": "u", "password": "pw"}
    assert auth_response("Server", proxy) == {"response": "Default"}  # a site's own auth gets nothing
    assert "pw" not in repr(proxy)


# --- a site and a proxy of the test's own ---------------------------------------------------------

class _Site(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _SiteHandler)
        self.seen: list[tuple[str, dict]] = []  # (path, headers) of every request, in order
        self.release = threading.Event()

    def paths(self, token: str) -> list[str]:
        return [p for p, _ in self.seen if token in p]

    def headers_of(self, token: str) -> dict:
        return next(h for p, h in self.seen if token in p)


_ASSETS = """<!DOCTYPE html><html><head><title>assets</title><script src="/app.js?t={t}"></script></head>
<body><img src="/img.png?t={t}"><script>
window.done = Promise.allSettled([
  fetch('/font.woff2?t={t}'),
  new Promise(r => {{ const ws = new WebSocket('ws://' + location.host + '/ws?t={t}');
                      ws.onerror = ws.onclose = ws.onopen = r; }}),
]).then(() => true);
</script></body></html>"""

_ROUTES = {
    "/timer": "<html><body><script>setTimeout(() => { window.ready = 42; }, 300);</script></body></html>",
    "/held": "<html><head><title>held</title></head><body><img src='/hold.png'></body></html>",
    # Busy for 700 ms before load, then a fetch 100 ms after it: idle means quiet after load and after the fetch.
    "/idle": ("<html><body><script>const t0 = Date.now(); while (Date.now() - t0 < 700) {}\n"
              "window.onload = () => setTimeout(() => fetch('/slow?ms=800')"
              ".then(r => r.text()).then(() => { window.fetched = true; }), 100);</script></body></html>"),
    "/tall": ("<!DOCTYPE html><html><head><title>tall</title><style>body{margin:0;height:1000px;background:#fff}"
              "#box{position:absolute;top:700px;left:30px;width:123px;height:45px;background:#f00}</style>"
              "</head><body><div id='box'></div></body></html>"),
    "/probe": "<!DOCTYPE html><html><head><title>probe</title></head><body><p id='p'>hello</p></body></html>",
}


class _SiteHandler(BaseHTTPRequestHandler):
    server: _Site
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def _send(self, body: str, status: int = 200, ctype: str = "text/html", headers: dict | None = None):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        try:
            self.wfile.write(data)
        except OSError:
            pass

    def do_GET(self):  # noqa: N802
        self.server.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
        parts = urlsplit(self.path)
        token = parts.query.split("t=", 1)[-1] if "t=" in parts.query else ""
        if parts.path in _ROUTES:
            self._send(_ROUTES[parts.path], headers={"X-Foxden-Test": "yes"})
        elif parts.path == "/assets":
            self._send(_ASSETS.format(t=token))
        elif parts.path == "/hold.png":
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"\x89PNG")
            self.wfile.flush()
            self.server.release.wait(60)
        elif parts.path == "/slow":
            time.sleep(int(parts.query.split("=")[-1]) / 1000)
            self._send("done", ctype="text/plain")
        elif parts.path == "/hang":
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            self.wfile.write(b"<html><head><title>hang</title></head><body>")
            self.wfile.flush()
            self.server.release.wait(60)
        elif parts.path == "/ws":
            self._send("no", status=400)
        else:
            self._send("", ctype="text/plain")


class _Proxy(ThreadingHTTPServer):
    """A forward HTTP proxy: records every request (URL, Proxy-Authorization) and relays it."""

    daemon_threads = True

    def __init__(self, credentials: tuple[str, str] | None = None):
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.seen: list[tuple[str, str | None]] = []
        self.expected = None if credentials is None else \
            "Basic " + base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()

    @property
    def server_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ProxyHandler(BaseHTTPRequestHandler):
    server: _Proxy
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):  # noqa: N802
        auth = self.headers.get("Proxy-Authorization")
        self.server.seen.append((self.path, auth))
        if self.server.expected is not None and auth != self.server.expected:
            self.send_response(407)
            self.send_header("Proxy-Authenticate", 'Basic realm="foxden"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        target = urlsplit(self.path)
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
        conn.request("GET", target.path + (f"?{target.query}" if target.query else ""),
                     headers={"Via": "foxden-test-proxy"})
        upstream = conn.getresponse()
        body = upstream.read()
        self.send_response(upstream.status)
        self.send_header("Content-Type", upstream.getheader("Content-Type", "text/html"))
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Via-Proxy", "1")
        self.end_headers()
        self.wfile.write(body)
        conn.close()


def _serve(server):
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server


@pytest.fixture(scope="module")
def web():
    server = _serve(_Site())
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    """One CDP driver for the module; every process it starts carries a marker, none may outlive it."""
    tmp = tmp_path_factory.mktemp("cdpopts")
    marker = f"test-{uuid.uuid4().hex}/"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(procs.MARKER_ENV, marker)
        mp.setenv("TMPDIR", str(tmp))
        pool = default_config().replace(pool={"driver": "cdp", "launch_timeout_s": 30.0}).pool
        driver = open_driver(engines.resolve_engine("chromium", None), pool, str(tmp))
        driver.launch()
        try:
            yield driver
        finally:
            driver.close(5.0)
            deadline = time.monotonic() + 10
            while (left := procs.find_marked(marker)) and time.monotonic() < deadline:
                time.sleep(0.1)
            procs.kill_and_wait(left)
            assert not left, [(p.pid, p.name()) for p in left]


def _url(web, path: str) -> str:
    return f"http://127.0.0.1:{web.server_address[1]}{path}"


def _run(driver, url: str, budget: float = 10.0, *, eval: str | None = None, session: str | None = None,
         screenshot: bool = False, **options):
    job = JobSpec(key=uuid.uuid4().hex[:8], id="t", url=url, eval=eval, session=session, screenshot=screenshot,
                  options=JobOptions(**options))
    return driver.run(job, budget)


def _ok(outcome):
    assert outcome.status == "ok", outcome.error
    return outcome.result


def _png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    return struct.unpack(">II", png[16:24])


def _png_pixel(png: bytes, x: int, y: int) -> tuple[int, ...]:
    """One pixel of an 8-bit RGB or RGBA PNG (Chromium's screenshots), rows unfiltered as the PNG spec says."""
    width, height = _png_size(png)
    depth, color = png[24], png[25]
    assert depth == 8 and color in (2, 6), (depth, color)
    bpp = 3 if color == 2 else 4
    pos, idat = 8, b""
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        if kind == b"IDAT":
            idat += png[pos + 8:pos + 8 + length]
        pos += 12 + length
    raw, stride, prev = zlib.decompress(idat), width * bpp, bytearray(width * bpp)
    for row in range(y + 1):
        f, line = raw[row * (stride + 1)], bytearray(raw[row * (stride + 1) + 1:(row + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        prev = line
    return tuple(prev[x * bpp:x * bpp + 3])


# --- identity: what the server and the page see ----------------------------------------------------

pytestmark_browser = pytest.mark.browser


@pytest.mark.browser
def test_headers_cookies_and_user_agent_as_the_server_saw_them(chromium, web):
    token = uuid.uuid4().hex
    _ok(_run(chromium, _url(web, f"/probe?t={token}"), headers=(("X-Job", "one"),), user_agent="FoxdenTest/1.0",
             cookies=(Cookie("plain", "p1"), Cookie("scoped", "s1", domain="127.0.0.1", path="/probe"))))
    seen = web.headers_of(token)
    assert seen["x-job"] == "one" and seen["user-agent"] == "FoxdenTest/1.0"
    assert sorted(seen["cookie"].split("; ")) == ["plain=p1", "scoped=s1"]
    sub = uuid.uuid4().hex  # a subresource carries the extra headers too
    _ok(_run(chromium, _url(web, f"/assets?t={sub}"), headers=(("X-Job", "two"),)))
    assert web.headers_of(f"/app.js?t={sub}")["x-job"] == "two"
    control = uuid.uuid4().hex  # the next job's fresh context has none of it
    _ok(_run(chromium, _url(web, f"/probe?t={control}")))
    seen = web.headers_of(control)
    assert "x-job" not in seen and "cookie" not in seen and seen["user-agent"] != "FoxdenTest/1.0"


@pytest.mark.browser
def test_locale_timezone_and_viewport_as_the_page_sees_them(chromium, web):
    token = uuid.uuid4().hex
    res = _ok(_run(chromium, _url(web, f"/probe?t={token}"), locale="de-DE", timezone="Asia/Tokyo",
                   viewport=Viewport(800, 600),
                   eval="[navigator.language, Intl.DateTimeFormat().resolvedOptions().timeZone,"
                        " innerWidth, innerHeight, new Date(0).getTimezoneOffset()]"))
    assert res.eval == ["de-DE", "Asia/Tokyo", 800, 600, -540]
    assert web.headers_of(token)["accept-language"].startswith("de-DE")
    o = _run(chromium, _url(web, "/probe"), timezone="Not/AZone")  # a value Chromium refuses: named, bad_input
    assert o.status == "failed" and o.error.code == "bad_input" and o.error.message.startswith("timezone:"), o.error


@pytest.mark.browser
def test_a_session_keeps_its_first_identity_on_later_pages(chromium, web):
    first, later = uuid.uuid4().hex, uuid.uuid4().hex
    session = f"s-{first[:6]}"
    try:
        _ok(_run(chromium, _url(web, f"/probe?t={first}"), session=session, user_agent="First/1", locale="fr-FR"))
        res = _ok(_run(chromium, _url(web, f"/probe?t={later}"), session=session, user_agent="Second/2",
                       eval="navigator.language"))
    finally:
        chromium.end_session(session)
    assert web.headers_of(later)["user-agent"] == "First/1" and res.eval == "fr-FR"


# --- blocking --------------------------------------------------------------------------------------

@pytest.mark.browser
def test_blocked_types_and_globs_never_reach_the_server(chromium, web):
    control = uuid.uuid4().hex  # without blocking, the page asks for all of it
    _ok(_run(chromium, _url(web, f"/assets?t={control}"), wait_for_function="window.done"))
    assert {p.split("?")[0] for p in web.paths(control)} == {"/assets", "/app.js", "/img.png", "/font.woff2", "/ws"}
    token = uuid.uuid4().hex
    res = _ok(_run(chromium, _url(web, f"/assets?t={token}"), wait_for_function="window.done",
                   block_types=(ResourceType.IMAGE, ResourceType.WEBSOCKET), block_patterns=("*.woff2*",),
                   eval="document.images[0].complete && document.images[0].naturalWidth"))
    time.sleep(0.3)  # a request that did leave would be on the server by now
    assert {p.split("?")[0] for p in web.paths(token)} == {"/assets", "/app.js"}
    assert res.eval == 0  # the page saw its image fail


@pytest.mark.browser
def test_a_glob_that_matches_the_page_itself_fails_the_navigation(chromium, web):
    token = uuid.uuid4().hex
    o = _run(chromium, _url(web, f"/probe?t={token}"), block_patterns=("*/probe?t=*",))
    assert o.status == "failed" and o.error.code == "navigation_failed" and "BLOCKED_BY_CLIENT" in o.error.message
    assert web.paths(token) == []


# --- waits -----------------------------------------------------------------------------------------

@pytest.mark.browser
def test_domcontentloaded_answers_while_an_image_is_held_open_and_load_times_out(chromium, web):
    res = _ok(_run(chromium, _url(web, "/held"), 5.0, wait_until=WaitUntil.DOMCONTENTLOADED))
    assert res.title == "held"
    o = _run(chromium, _url(web, "/held"), 1.5)
    assert o.status == "timeout" and o.error.message.startswith("navigate:"), o.error


@pytest.mark.browser
def test_networkidle_waits_for_a_request_made_after_load(chromium, web):
    assert _ok(_run(chromium, _url(web, "/idle"), eval="!!window.fetched")).eval is False
    res = _ok(_run(chromium, _url(web, "/idle"), wait_until=WaitUntil.NETWORKIDLE, eval="!!window.fetched"))
    assert res.eval is True


@pytest.mark.browser
def test_commit_answers_once_the_response_arrived_though_its_body_never_ends(chromium, web):
    res = _ok(_run(chromium, _url(web, "/hang"), 5.0, wait_until=WaitUntil.COMMIT))
    assert res.http_status == 200 and res.response_headers["content-length"] == "1000000"


@pytest.mark.browser
def test_wait_for_function_waits_for_a_timer_and_fails_clearly(chromium, web):
    assert _ok(_run(chromium, _url(web, "/timer"), eval="window.ready")).eval is None
    assert _ok(_run(chromium, _url(web, "/timer"), wait_for_function="window.ready === 42",
                    eval="window.ready")).eval == 42
    o = _run(chromium, _url(web, "/timer"), wait_for_function="no_such_thing.x")
    assert o.status == "failed" and o.error.code == "wait_failed", o.error
    assert o.error.message.startswith("wait_for_function:") and "no_such_thing" in o.error.message
    o = _run(chromium, _url(web, "/timer"), 1.5, wait_for_function="window.never")
    assert o.status == "timeout" and o.error.message.startswith("wait_for_function:"), o.error


# --- proxy -----------------------------------------------------------------------------------------

@pytest.mark.browser
@pytest.mark.parametrize("credentials", [None, ("user", "s3cret")])
def test_a_job_through_a_forward_proxy_is_seen_by_it(chromium, web, credentials):
    proxy = _serve(_Proxy(credentials))
    try:
        token = uuid.uuid4().hex
        res = _ok(_run(chromium, _url(web, f"/probe?t={token}"),
                       proxy=Proxy(proxy.server_url, *(credentials or ()))))
        assert res.title == "probe" and res.response_headers["x-via-proxy"] == "1"
        relayed = [(url, auth) for url, auth in proxy.seen if token in url]
        assert relayed and relayed[-1][1] == proxy.expected
        assert web.headers_of(token)["via"] == "foxden-test-proxy"
        if credentials:  # wrong credentials: a clear navigation failure, not a hang
            o = _run(chromium, _url(web, f"/probe?t={token}"), proxy=Proxy(proxy.server_url, "user", "wrong"))
            assert o.status == "failed" and o.error.code == "navigation_failed", o.error
        direct = uuid.uuid4().hex  # the next job, without a proxy, goes straight
        _ok(_run(chromium, _url(web, f"/probe?t={direct}")))
        assert not [url for url, _ in proxy.seen if direct in url]
    finally:
        proxy.shutdown()
        proxy.server_close()


# --- outputs ---------------------------------------------------------------------------------------

@pytest.mark.browser
def test_html_pdf_and_response_headers(chromium, web):
    res = _ok(_run(chromium, _url(web, "/probe"), html=True, pdf=True, eval="document.getElementById('p').remove()"))
    assert res.html.startswith("<!DOCTYPE html><html>") and "probe" in res.html
    assert "hello" not in res.html  # the DOM after the job, not the response body
    assert res.pdf.startswith(b"%PDF")
    assert res.response_headers["x-foxden-test"] == "yes" and res.response_headers["content-type"] == "text/html"
    plain = _ok(_run(chromium, _url(web, "/probe")))
    assert plain.html is None and plain.pdf is None and plain.response_headers["x-foxden-test"] == "yes"


@pytest.mark.browser
def test_full_page_and_selector_screenshots(chromium, web):
    full = _ok(_run(chromium, _url(web, "/tall"), screenshot=True, full_page=True,
                    viewport=Viewport(200, 300))).screenshot
    assert _png_size(full) == (200, 1000)  # the page, not the 200x300 viewport
    assert _png_pixel(full, 91, 722) == (255, 0, 0) and _png_pixel(full, 10, 10) == (255, 255, 255)
    assert _png_size(_ok(_run(chromium, _url(web, "/tall"), screenshot=True)).screenshot) == (1280, 720)
    box = _ok(_run(chromium, _url(web, "/tall"), screenshot=True, screenshot_selector="#box")).screenshot
    assert _png_size(box) == (123, 45)
    assert _png_pixel(box, 0, 0) == (255, 0, 0) and _png_pixel(box, 122, 44) == (255, 0, 0)
    o = _run(chromium, _url(web, "/tall"), screenshot=True, screenshot_selector="#absent")
    assert o.status == "failed" and o.error.code == "page_error" and "#absent" in o.error.message, o.error
