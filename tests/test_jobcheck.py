"""Job options (#14) from the wire to JobOptions: every bad value named, every good form taken (pure, no browser)."""
from __future__ import annotations

import dataclasses
import logging

import msgpack
import pytest

from foxden.config import default_config
from foxden.drivers import pwoptions
from foxden.egress.guard import proxy_refused
from foxden.egress.policy import EgressPolicy
from foxden.protocols import jobcheck, wire
from foxden.protocols.options import Cookie, JobOptions, Proxy, ResourceType, SameSite, Viewport, WaitUntil

URL = "https://example.com/a/b"
OPEN = default_config().jobs
CLOSED = dataclasses.replace(OPEN, allow_private=False)


def job(**kw) -> wire.JobRequest:
    """A JobRequest as the gateway decodes it from the wire (so the wire's type checks apply too)."""
    body = msgpack.packb({"v": 1, "type": "submit", "rid": 1, "job": {"url": kw.pop("url", URL), **kw}})
    return wire.decode_body(body).job


def refusal(engine="chromium", jobs=OPEN, **kw):
    return jobcheck.refusal(job(**kw), engine, jobs)


BAD_INPUT = [
    (dict(wait_until="idle"), "job.wait_until: unknown value 'idle' (one of load, domcontentloaded, networkidle, commit)"),
    (dict(wait_for_function="  "), "job.wait_for_function: must not be empty"),
    (dict(headers={"Bad Name": "x"}), "job.headers['Bad Name']: not a valid header name"),
    (dict(headers={"X-A": "a\r\nX-Injected: 1"}), "job.headers['X-A']: the value holds a line break"),
    (dict(headers={"x-a": "1", "X-A": "2"}), "job.headers['X-A']: given twice"),
    (dict(user_agent=""), "job.user_agent: must be a non-empty string"),
    (dict(user_agent="a\nb"), "job.user_agent: must be a non-empty string without line breaks"),
    (dict(locale="english!"), "job.locale: 'english!' is not a BCP 47 language tag"),
    (dict(locale="en_US"), "job.locale: 'en_US' is not a BCP 47"),
    (dict(timezone="Mars/Olympus"), "job.timezone: 'Mars/Olympus' is not an IANA time zone name"),
    (dict(timezone="../../etc/passwd"), "job.timezone: '../../etc/passwd' is not an IANA"),
    (dict(timezone="localtime"), "job.timezone: 'localtime' is not an IANA"),
    (dict(viewport={"width": 0, "height": 600}), "job.viewport.width: 0 is not in 1..16384"),
    (dict(viewport={"width": 800, "height": -1}), "job.viewport.height: -1 is not in 1..16384"),
    (dict(viewport={"width": 800, "height": 100000}), "job.viewport.height: 100000 is not in 1..16384"),
    (dict(cookies=[{"name": "", "value": "v"}]), "job.cookies[0].name: must be a non-empty cookie name"),
    (dict(cookies=[{"name": "a", "value": "v"}, {"name": "b=c", "value": "v"}]), "job.cookies[1].name:"),
    (dict(cookies=[{"name": "a", "value": "x;y"}]), "job.cookies[0].value: must not hold ';'"),
    (dict(cookies=[{"name": "a", "value": "v", "url": URL, "domain": "example.com"}]),
     "job.cookies[0]: give url or domain, not both"),
    (dict(cookies=[{"name": "a", "value": "v", "url": "ftp://x/"}]), "job.cookies[0].url: must be an http or https URL"),
    (dict(cookies=[{"name": "a", "value": "v", "domain": "a/b"}]), "job.cookies[0].domain: 'a/b' is not a host name"),
    (dict(cookies=[{"name": "a", "value": "v", "path": "x"}]), "job.cookies[0].path: must start with '/'"),
    (dict(cookies=[{"name": "a", "value": "v", "same_site": "sometimes"}]),
     "job.cookies[0].same_site: unknown value 'sometimes' (one of Strict, Lax, None)"),
    (dict(url="about:blank", cookies=[{"name": "a", "value": "v"}]),
     "job.cookies[0]: has no url or domain, and the job's URL (about:blank) cannot give it a scope"),
    (dict(block=["image", "imgs"]), "job.block[1]: unknown resource type 'imgs' (one of image, media, font, "
                                    "stylesheet, script, xhr, fetch, websocket, other;"),
    (dict(block=[""]), "job.block[0]: must not be empty"),
    (dict(proxy="ftp://p:21"), "job.proxy: scheme 'ftp' is not one of http, https, socks5"),
    (dict(proxy="http://"), "job.proxy: a proxy URL needs a host"),
    (dict(proxy="http://p:99999"), "job.proxy: not a proxy URL"),
    (dict(proxy="http://p:0"), "job.proxy: port 0 is not a proxy port"),
    (dict(proxy="http://p:8080/path"), "job.proxy: a proxy URL is scheme://host:port only"),
    (dict(proxy="http://p:8080?x=1"), "job.proxy: a proxy URL is scheme://host:port only"),
    (dict(proxy="http//nope"), "job.proxy: a proxy URL is scheme://host:port only"),
    (dict(proxy={"server": "gopher://p"}), "job.proxy.server: scheme 'gopher'"),
    (dict(proxy={"server": "http://p:1", "password": "x"}), "job.proxy.password: given without a username"),
    (dict(proxy={"server": "http://u:p@p:1", "username": "v"}), "job.proxy: credentials both in server"),
    (dict(full_page=True), "job.full_page: needs screenshot = true"),
    (dict(screenshot_selector="#a"), "job.screenshot_selector: needs screenshot = true"),
    (dict(screenshot=True, full_page=True, screenshot_selector="#a"),
     "job.screenshot_selector: cannot be combined with full_page"),
    (dict(screenshot=True, screenshot_selector=" "), "job.screenshot_selector: must not be empty"),
]


@pytest.mark.parametrize("kw, message", BAD_INPUT, ids=[m.split(":")[0] + str(i) for i, (_, m) in enumerate(BAD_INPUT)])
def test_every_bad_value_is_bad_input_naming_the_field(kw, message):
    error = refusal(**kw)
    assert error is not None and error.code == "bad_input", error
    assert error.message.startswith(message), error.message


BAD_TYPES = [
    (dict(headers={"a": 1}), "job.headers: expected a map of at most 100 string keys to string values"),
    (dict(headers=["a"]), "job.headers: expected a map"),
    (dict(viewport={"width": "800", "height": 600}), "job.viewport.width: expected an integer"),
    (dict(viewport={"width": 800}), "job.viewport.height: required field is missing"),
    (dict(viewport={"width": 800, "height": 600, "depth": 1}), "job.viewport.depth: unknown field"),
    (dict(cookies=[{"name": "a"}]), "job.cookies[0].value: required field is missing"),
    (dict(cookies=[{"name": "a", "value": "b", "secure": "yes"}]), "job.cookies[0].secure: expected true or false"),
    (dict(cookies=[{"name": "a", "value": "b", "expires": -1}]), "job.cookies[0].expires: expected a finite number >= 0"),
    (dict(cookies={"name": "a"}), "job.cookies: expected a list"),
    (dict(block="image"), "job.block: expected a list"),
    (dict(block=[1]), "job.block: expected a list of at most 100 strings"),
    (dict(proxy=8080), "job.proxy: expected a proxy URL string or a map"),
    (dict(proxy={"username": "u"}), "job.proxy.server: required field is missing"),
    (dict(html="yes"), "job.html: expected true or false"),
    (dict(pdf=1), "job.pdf: expected true or false"),
    (dict(wait_until=3), "job.wait_until: expected a string"),
]


@pytest.mark.parametrize("kw, message", BAD_TYPES, ids=[m.split(":")[0] + str(i) for i, (_, m) in enumerate(BAD_TYPES)])
def test_a_wrong_type_is_a_bad_field_frame(kw, message):
    with pytest.raises(wire.ProtocolError) as info:
        job(**kw)
    assert info.value.code in ("bad_field", "missing_field")
    assert info.value.message.startswith(message), info.value.message


def test_no_options_mean_the_defaults():
    assert jobcheck.options_of(job()) == JobOptions()
    assert refusal() is None


def test_every_good_form_is_taken():
    o = jobcheck.options_of(job(
        wait_until="domcontentloaded", wait_for_function="window.ok", headers={"X-A": "1", "Accept": "text/html"},
        user_agent="Bot/1", locale="zh-Hant-TW", timezone="America/New_York", viewport={"width": 1366, "height": 768},
        cookies=[{"name": "a", "value": ""}, {"name": "b", "value": "2", "domain": ".example.com", "path": "/x",
                                               "secure": True, "http_only": True, "same_site": "lax", "expires": 2e9},
                 {"name": "c", "value": "3", "url": "https://other.example/"}],
        block=["image", "font", "*.woff2", "https://ads.example/*", "image"], html=True, screenshot=True,
        full_page=True, pdf=True))
    assert o.wait_until is WaitUntil.DOMCONTENTLOADED and o.wait_for_function == "window.ok"
    assert o.headers == (("X-A", "1"), ("Accept", "text/html"))
    assert (o.user_agent, o.locale, o.timezone, o.viewport) == ("Bot/1", "zh-Hant-TW", "America/New_York",
                                                                 Viewport(1366, 768))
    assert o.cookies[1] == Cookie("b", "2", domain=".example.com", path="/x", secure=True, http_only=True,
                                  same_site=SameSite.LAX, expires=2e9)
    assert o.block_types == (ResourceType.IMAGE, ResourceType.FONT)
    assert o.block_patterns == ("*.woff2", "https://ads.example/*")
    assert o.html and o.full_page and o.pdf
    for wait in ("load", "networkidle", "commit"):
        assert jobcheck.options_of(job(wait_until=wait)).wait_until.value == wait
    for tag in ("en", "de-CH", "es-419", "sr-Latn-RS", "de-CH-1996"):
        assert refusal(locale=tag) is None, tag
    for zone in ("UTC", "Europe/Berlin", "Asia/Kolkata", "America/Argentina/Buenos_Aires"):
        assert refusal(timezone=zone) is None, zone
    assert jobcheck.options_of(job(screenshot=True, screenshot_selector="#a")).screenshot_selector == "#a"


@pytest.mark.parametrize("form, expected", [
    ("http://proxy.example:3128", Proxy("http://proxy.example:3128")),
    ("proxy.example:3128", Proxy("http://proxy.example:3128")),
    ("http://proxy.example", Proxy("http://proxy.example:80")),
    ("https://proxy.example", Proxy("https://proxy.example:443")),
    ("socks5://10.0.0.1", Proxy("socks5://10.0.0.1:1080")),
    ("HTTP://Proxy.Example:8080/", Proxy("http://proxy.example:8080")),
    ("http://user:pa%40ss@proxy.example:8080", Proxy("http://proxy.example:8080", "user", "pa@ss")),
    ("http://user@proxy.example:8080", Proxy("http://proxy.example:8080", "user", None)),
    ("http://[::1]:8080", Proxy("http://[::1]:8080")),
    ({"server": "http://proxy.example:8080", "username": "u", "password": "p"},
     Proxy("http://proxy.example:8080", "u", "p")),
    ({"server": "http://u:p@proxy.example:8080"}, Proxy("http://proxy.example:8080", "u", "p")),
])
def test_proxy_forms(form, expected):
    assert jobcheck.options_of(job(proxy=form)).proxy == expected


def test_proxy_credentials_never_show():
    secret = "hunter2-secret"
    p = jobcheck.options_of(job(proxy=f"http://bob:{secret}@proxy.example:8080")).proxy
    shown = [repr(p), str(p), repr(JobOptions(proxy=p)), repr(job(proxy=f"http://bob:{secret}@p:1")),
             f"{p}", logging.Formatter().format(logging.makeLogRecord({"msg": "%s", "args": (JobOptions(proxy=p),)}))]
    assert all(secret not in s and "bob" not in s for s in shown), shown
    assert repr(p) == "Proxy(***@http://proxy.example:8080)"
    # Nor in the messages of the refusals about a proxy.
    for bad in (f"ftp://bob:{secret}@p:1", f"http://bob:{secret}@p:99999", f"http://bob:{secret}@p:1/x",
                f"http://bob:{secret}@:1"):
        assert secret not in refusal(proxy=bad).message, bad
    assert secret not in refusal(jobs=CLOSED, proxy=f"http://bob:{secret}@127.0.0.1:1").message


def test_what_an_engine_cannot_do_is_unsupported_option_naming_it():
    for engine in ("firefox", "camoufox"):
        e = refusal(engine=engine, pdf=True)
        assert (e.code, e.message) == ("unsupported_option", f"job.pdf: {engine} cannot print a page to PDF (Chromium only)")
    assert refusal(engine="chromium", pdf=True) is None
    e = refusal(engine="chromium", proxy="socks5://u:p@s:1080")
    assert e.code == "unsupported_option" and "socks5" in e.message and "chromium" in e.message
    assert refusal(engine="", pdf=True) is None  # engine not known: judged by nothing
    # A bad value is named before what the engine cannot do.
    assert refusal(engine="firefox", pdf=True, block=["x"]).code == "bad_input"


def test_a_proxy_is_judged_like_a_target_when_private_targets_are_refused():
    for host in ("127.0.0.1", "10.1.2.3", "[::1]", "localhost", "169.254.169.254"):
        e = refusal(jobs=CLOSED, proxy=f"http://{host}:3128")
        assert e is not None and e.code == "blocked_target" and e.message.startswith("job.proxy: "), (host, e)
    assert refusal(jobs=CLOSED, proxy="http://proxy.example:3128") is None  # a name: the browser's guard judges it
    assert refusal(jobs=OPEN, proxy="http://127.0.0.1:3128") is None
    denied = dataclasses.replace(OPEN, deny_hosts=("proxy.bad",))
    assert refusal(jobs=denied, proxy="http://proxy.bad:1").code == "blocked_target"


def test_the_guard_resolves_a_proxy_name_and_judges_every_address():
    policy = EgressPolicy.from_rules(False)
    answers = {"good.example": ["93.184.216.34"], "rebound.example": ["93.184.216.34", "127.0.0.1"]}

    def resolve(host, port):
        if host not in answers:
            raise OSError("no such host")
        return [(2, 1, 6, "", (a, 0)) for a in answers[host]]

    assert proxy_refused(Proxy("http://good.example:1"), policy, resolve) is None
    out = proxy_refused(Proxy("http://rebound.example:1", "u", "pw"), policy, resolve)
    assert (out.status, out.error.code) == ("failed", "blocked_target") and "127.0.0.1" in out.error.message
    assert "pw" not in out.error.message
    out = proxy_refused(Proxy("http://nowhere.example:1"), policy, resolve)
    assert out.error.code == "navigation_failed" and "job.proxy" in out.error.message
    assert proxy_refused(None, policy, resolve) is None


def test_playwright_forms_of_the_options():
    o = jobcheck.options_of(job(proxy="http://u:p@h:1", user_agent="UA", locale="fr", timezone="UTC",
                                viewport={"width": 10, "height": 20}, headers={"X": "1"}))
    assert pwoptions.context_kwargs(o, session=False) == {
        "proxy": {"server": "http://h:1", "username": "u", "password": "p"}, "user_agent": "UA", "locale": "fr",
        "timezone_id": "UTC", "viewport": {"width": 10, "height": 20}, "extra_http_headers": {"X": "1"}}
    # A session's context keeps only what fixes it; viewport and headers go on each page.
    assert set(pwoptions.context_kwargs(o, session=True)) == {"proxy", "user_agent", "locale", "timezone_id"}
    cookies = jobcheck.options_of(job(cookies=[{"name": "a", "value": "1"}, {"name": "b", "value": "2", "path": "/p"},
                                               {"name": "c", "value": "3", "domain": "x.example", "same_site": "None",
                                                "secure": True}])).cookies
    assert pwoptions.cookie_params(cookies, URL) == [
        {"name": "a", "value": "1", "url": URL},
        {"name": "b", "value": "2", "domain": "example.com", "path": "/p"},
        {"name": "c", "value": "3", "domain": "x.example", "path": "/", "secure": True, "sameSite": "None"}]


def test_block_matches_types_and_whole_url_globs():
    o = jobcheck.options_of(job(block=["image", "*.woff2", "https://ads.example/*"]))
    assert pwoptions.blocks(o, "https://a.example/x.png", "image")
    assert pwoptions.blocks(o, "https://cdn.example/f/a.woff2", "font")
    assert pwoptions.blocks(o, "https://ads.example/deep/path.js", "script")
    assert not pwoptions.blocks(o, "https://a.example/f/a.woff", "font")
    assert not pwoptions.blocks(o, "https://a.example/", "document")
    assert not pwoptions.blocks(JobOptions(), "https://a.example/x.png", "image")


def test_options_on_the_wire_round_trip():
    req = job(headers={"X": "1"}, viewport={"width": 1, "height": 2}, cookies=[{"name": "a", "value": "b"}],
              block=["image"], proxy={"server": "http://p:1", "username": "u", "password": "p"}, html=True, pdf=True,
              wait_until="commit", screenshot=True, full_page=True)
    again = wire.decode_body(wire.encode(wire.Submit(1, req))[4:]).job
    assert again == req
    assert msgpack.unpackb(wire.encode(wire.Submit(1, wire.JobRequest(url="u")))[4:])["job"] == {"url": "u"}


def test_html_and_pdf_count_toward_the_result_cap():
    from foxden.drivers import results

    for extra in ({"html": "x" * 5000}, {"pdf": b"%PDF-" + b"x" * 5000}):
        outcome = results.page_outcome(final_url="u", http_status=200, title="t", content_length=1, value=None,
                                       screenshot=None, **extra)
        capped = results.capped(outcome, 4096)
        assert (capped.status, capped.error.code) == ("failed", "result_too_large"), extra
        assert results.capped(outcome, 1 << 20) is outcome
