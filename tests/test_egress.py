"""The egress policy: the decision function, and attacks on it through a real daemon and real browsers."""
from __future__ import annotations

import ipaddress
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from foxden.client import job_request
from foxden.config import ConfigError, config_from_overrides
from foxden.egress.guard import with_refusals
from foxden.egress.policy import EgressPolicy, Reason, judge_address, judge_name, parse_rules
from foxden.egress.proxy import Refusal
from foxden.protocols.errors import ErrorCode
from foxden.protocols.messages import Outcome
from foxden.protocols.wire import PageResult
from foxden.testsite import Site

ip = ipaddress.ip_address
CLOSED = EgressPolicy(allow_private=False)


# --- the decision, a pure function ---------------------------------------------------

@pytest.mark.parametrize("address, reason", [
    ("127.0.0.1", Reason.LOOPBACK), ("127.255.0.9", Reason.LOOPBACK), ("::1", Reason.LOOPBACK),
    ("10.1.2.3", Reason.PRIVATE), ("172.16.0.1", Reason.PRIVATE), ("172.31.255.255", Reason.PRIVATE),
    ("192.168.1.1", Reason.PRIVATE), ("fc00::1", Reason.PRIVATE), ("fd12:3456::1", Reason.PRIVATE),
    ("169.254.169.254", Reason.LINK_LOCAL), ("fe80::1", Reason.LINK_LOCAL),
    ("100.64.0.1", Reason.CGNAT), ("100.127.255.254", Reason.CGNAT),
    ("224.0.0.1", Reason.MULTICAST), ("239.255.255.250", Reason.MULTICAST), ("ff02::1", Reason.MULTICAST),
    ("0.0.0.0", Reason.UNSPECIFIED), ("::", Reason.UNSPECIFIED),
    ("255.255.255.255", Reason.RESERVED), ("240.0.0.1", Reason.RESERVED), ("0.1.2.3", Reason.RESERVED),
    ("192.0.2.1", Reason.RESERVED), ("2001:db8::1", Reason.RESERVED),
    ("::ffff:127.0.0.1", Reason.LOOPBACK), ("::ffff:10.0.0.1", Reason.PRIVATE),
    ("::ffff:169.254.169.254", Reason.LINK_LOCAL), ("2002:7f00:1::", Reason.LOOPBACK),
    ("64:ff9b::a9fe:a9fe", Reason.LINK_LOCAL), ("64:ff9b::7f00:1", Reason.LOOPBACK),
])
def test_every_non_public_address_is_refused_when_private_targets_are_off(address, reason):
    verdict = judge_address("h.example", ip(address), CLOSED)
    assert not verdict.allowed and verdict.reason is reason, verdict
    assert judge_address("h.example", ip(address), EgressPolicy(allow_private=True)).allowed


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700::1111", "100.63.255.255",
                                     "100.128.0.1", "172.32.0.1", "::ffff:93.184.216.34"])
def test_public_addresses_are_allowed(address):
    assert judge_address("h.example", ip(address), CLOSED).reason is Reason.PUBLIC


def test_this_hosts_own_addresses_are_refused_even_when_public():
    policy = EgressPolicy(allow_private=False, own=frozenset({ip("93.184.216.34")}))
    assert judge_address("me.example", ip("93.184.216.34"), policy).reason is Reason.OWN_ADDRESS
    assert judge_address("me.example", ip("93.184.216.35"), policy).allowed


def test_allow_rules_make_exceptions_and_deny_rules_win():
    policy = EgressPolicy.from_rules(False, ["127.0.0.2", "10.0.0.0/8", "intranet.example", "*.corp.example"],
                                     ["10.9.0.0/16", "bad.corp.example"])
    assert judge_address("x", ip("127.0.0.2"), policy).reason is Reason.ALLOWED_HOST
    assert judge_address("x", ip("127.0.0.1"), policy).reason is Reason.LOOPBACK
    assert judge_address("x", ip("10.1.0.1"), policy).allowed
    assert judge_address("x", ip("10.9.0.1"), policy).reason is Reason.DENIED_HOST
    assert judge_address("intranet.example", ip("192.168.0.5"), policy).allowed
    assert judge_address("INTRANET.example.", ip("192.168.0.5"), policy).allowed
    assert judge_address("a.b.corp.example", ip("127.0.0.1"), policy).allowed
    assert not judge_address("corp.example", ip("127.0.0.1"), policy).allowed  # *.d matches below d only
    assert judge_address("bad.corp.example", ip("93.184.216.34"), policy).reason is Reason.DENIED_HOST
    assert judge_address("intranet.example", ip("10.9.0.1"), policy).reason is Reason.DENIED_HOST
    assert judge_name("bad.corp.example", policy).reason is Reason.DENIED_HOST
    assert judge_name("elsewhere.example", policy) is None


def test_deny_rules_apply_even_when_private_targets_are_allowed():
    policy = EgressPolicy.from_rules(True, [], ["169.254.0.0/16", "*.internal"])
    assert policy.restricts and not EgressPolicy.from_rules(True).restricts
    assert judge_address("x", ip("169.254.169.254"), policy).reason is Reason.DENIED_HOST
    assert judge_address("db.internal", ip("93.184.216.34"), policy).reason is Reason.DENIED_HOST
    assert judge_address("x", ip("127.0.0.1"), policy).reason is Reason.OPEN


@pytest.mark.parametrize("entry", ["", " ", "10.0.0.1/8", "10.0.0.300", "::g", "a..b", "*.", "*", "a*.example",
                                   "-a.example", "ex ample.com", "http://x.example/", "x.example:80", "1.2.3.4/33"])
def test_bad_host_rules_are_refused_at_config_load_naming_the_key(entry, tmp_path):
    with pytest.raises(ValueError):
        parse_rules([entry])
    with pytest.raises(ConfigError) as err:
        config_from_overrides({"jobs": {"deny_hosts": ["1.2.3.4", entry]}}, base_dir=tmp_path)
    assert "[jobs] deny_hosts" in str(err.value) and err.value.key == "jobs.deny_hosts"


def test_good_host_rules_load(tmp_path):
    cfg = config_from_overrides({"jobs": {"allow_hosts": ["127.0.0.2", "fd00::/8", "1password.example", "*.x.test"],
                                          "deny_hosts": ["169.254.169.254"]}}, base_dir=tmp_path)
    assert cfg.jobs.allow_hosts == ("127.0.0.2", "fd00::/8", "1password.example", "*.x.test")


def test_a_failed_navigation_with_a_refusal_is_a_blocked_target_and_refusals_are_listed():
    refused = [Refusal("http://127.0.0.1:9/x", "127.0.0.1 is a loopback address")]
    failed = with_refusals(Outcome("failed", error=ErrorCode.NAVIGATION_FAILED.error("navigate: net::ERR")),
                           refused, "http://a/")
    assert failed.error.code == "blocked_target" and "http://a/" in failed.error.message
    assert "loopback" in failed.error.message
    ok = Outcome("ok", result=PageResult(final_url="http://a/", http_status=200, title="", content_length=0))
    assert with_refusals(ok, refused, "http://a/").result.blocked == ("http://127.0.0.1:9/x",)
    shown = Outcome("ok", result=PageResult(final_url="http://127.0.0.1:9/x", http_status=403, title="",
                                            content_length=0))  # the proxy's 403 page
    assert with_refusals(shown, refused, "http://a/").error.code == "blocked_target"
    assert with_refusals(ok, [], "http://a/") is ok


# --- the proxy, without a browser ---------------------------------------------------------

@pytest.fixture
def proxy():
    from foxden.egress.proxy import EgressProxy

    p = EgressProxy(EgressPolicy.from_rules(False, ["127.0.0.2"]))
    p.start()
    yield p
    p.stop()


def _via(proxy, method: str, url: str, body: bytes | None = None, headers: dict | None = None):
    import http.client

    c = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    try:
        c.request(method, url, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


def test_the_proxy_forwards_allowed_requests_with_their_bodies_and_refuses_the_rest(proxy):
    with _Victim("127.0.0.2") as allowed, _Victim("127.0.0.1") as victim:
        base = f"http://127.0.0.2:{allowed.port}"
        status, _, body = _via(proxy, "GET", base + "/page")
        assert status == 200 and b"secret" in body
        status, _, body = _via(proxy, "HEAD", base + "/page")
        assert status == 200 and body == b""
        status, _, body = _via(proxy, "POST", base + "/echo", body=b"x" * 100_000)
        assert status == 200 and body == b"x" * 100_000
        status, headers, body = _via(proxy, "GET", f"http://127.0.0.1:{victim.port}/x")
        assert status == 403 and headers.get("x-foxden-egress") == "blocked" and b"loopback" in body
        status, _, _ = _via(proxy, "GET", f"http://{_hosts_name()}:{victim.port}/by-name")
        assert status == 403
        assert victim.seen == []
        assert [r.url for r in proxy.refusals()] == [f"http://127.0.0.1:{victim.port}/x",
                                                     f"http://{_hosts_name()}:{victim.port}/by-name"]
        proxy.begin_job()
        assert proxy.refusals() == []


def test_the_proxy_answers_a_malformed_request_400_and_keeps_serving(proxy):
    import socket as s

    with s.create_connection(("127.0.0.1", proxy.port), timeout=30) as sock:
        sock.sendall(b"GET /relative HTTP/1.1\r\nHost: x\r\n\r\n")  # not a proxy request
        assert sock.recv(100).startswith(b"HTTP/1.1 400")
    with s.create_connection(("127.0.0.1", proxy.port), timeout=30) as sock:
        sock.sendall(b"\x16\x03\x01 not http at all\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 400")
    with Site("127.0.0.2") as allowed:
        assert _via(proxy, "GET", allowed.url("/page/1"))[0] == 200


def test_the_proxy_keeps_a_bounded_record_of_refusals(proxy):
    from foxden.egress.proxy import MAX_RECORDED

    for i in range(MAX_RECORDED + 5):
        assert _via(proxy, "GET", f"http://127.0.0.1:9/{i}")[0] == 403
    assert len(proxy.refusals()) == MAX_RECORDED


def test_no_proxy_runs_when_every_connection_is_allowed(tmp_path):
    from foxden import engines
    from foxden.drivers import open_driver
    from foxden.egress.guard import GuardedDriver

    choice = engines.EngineChoice("chromium", "/usr/bin/chromium", "test")
    open_cfg = config_from_overrides({}, base_dir=tmp_path)
    assert not isinstance(open_driver(choice, open_cfg.pool, str(tmp_path), open_cfg.jobs), GuardedDriver)
    closed = config_from_overrides({"jobs": {"allow_private": False}}, base_dir=tmp_path)
    guarded = open_driver(choice, closed.pool, str(tmp_path), closed.jobs)
    try:
        assert isinstance(guarded, GuardedDriver)
        command = guarded._driver._command
        assert f"--proxy-server=http://127.0.0.1:{guarded._proxy.port}" in command
        assert {"--proxy-bypass-list=<-loopback>", "--disable-quic"} <= set(command)
    finally:
        guarded.close(1.0)


def test_firefox_goes_through_the_proxy_for_loopback_too():
    from foxden import engines

    kind, kwargs = engines.launch_kwargs(engines.EngineChoice("firefox", "/usr/bin/firefox", "t"), headless=True,
                                         proxy="http://127.0.0.1:4242")
    prefs = kwargs["firefox_user_prefs"]
    assert (prefs["network.proxy.type"], prefs["network.proxy.http_port"], prefs["network.proxy.ssl_port"]) == (1, 4242, 4242)
    assert prefs["network.proxy.allow_hijacking_localhost"] is True and prefs["network.proxy.no_proxies_on"] == ""
    assert prefs["media.peerconnection.enabled"] is False
    _, plain = engines.launch_kwargs(engines.EngineChoice("firefox", "/usr/bin/firefox", "t"), headless=True)
    assert "network.proxy.type" not in plain["firefox_user_prefs"]


def test_chromium_runs_without_its_sandbox_only_where_it_cannot_work():
    from foxden.engines import sandbox_off_reason

    assert "root" in sandbox_off_reason(0, True) and "root" in sandbox_off_reason(0, False)
    assert "user namespaces" in sandbox_off_reason(1000, False)
    assert sandbox_off_reason(1000, True) is None


# --- attacks through a real daemon -------------------------------------------------------

class _Victim(ThreadingHTTPServer):
    """A server on a loopback address that counts every connection made to it, HTTP or not."""

    daemon_threads = True

    def __init__(self, host: str):
        super().__init__((host, 0), _VictimHandler)
        self.seen: list[str] = []
        self.lock = threading.Lock()
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()

    def process_request(self, request, client_address):
        with self.lock:
            self.seen.append(f"connection from {client_address}")
        super().process_request(request, client_address)


class _VictimHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    protocol_version = "HTTP/1.1"

    def do_GET(self, body: bytes = b"<html><head><title>secret</title></head><body>secret</body></html>"):  # noqa: N802
        with self.server.lock:
            self.server.seen.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_HEAD = do_GET

    def do_POST(self):  # noqa: N802 - echoes the body
        self.do_GET(self.rfile.read(int(self.headers.get("Content-Length", 0))))


class _UdpVictim:
    """A UDP socket on 127.0.0.1 that counts the datagrams sent to it."""

    def __enter__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        return self

    def seen(self) -> list[str]:
        got = []
        while True:
            try:
                data, peer = self.sock.recvfrom(2048)
            except BlockingIOError:
                return got
            got.append(f"UDP datagram of {len(data)} bytes from {peer}")

    def __exit__(self, *exc):
        self.sock.close()


def _hosts_name() -> str:
    """A name /etc/hosts maps to 127.0.0.1, other than localhost."""
    with open("/etc/hosts") as f:
        for line in f:
            fields = line.split("#", 1)[0].split()
            if fields and fields[0] == "127.0.0.1":
                for name in fields[1:]:
                    if name != "localhost" and "localhost" not in name:
                        return name
    pytest.skip("/etc/hosts maps no name other than localhost to 127.0.0.1")


def _attack_urls(port: int) -> list[str]:
    wide = "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in "127.0.0.1")  # full-width digits
    return [f"http://2130706433:{port}/", f"http://0x7f.1:{port}/", f"http://0x7f000001:{port}/",
            f"http://0177.0.0.1:{port}/", f"http://127.1:{port}/", f"http://0:{port}/",
            f"http://127.0.0.1.:{port}/", f"http://localhost.:{port}/", f"http://%31%32%37.0.0.1:{port}/",
            f"http://{wide}:{port}/", f"http://127.0.0.1:{port}\\@localhost./", f"http://{_hosts_name()}:{port}/",
            f"http://127.0.0.1:{port}/", f"https://127.0.0.1:{port}/", f"https://127.1:{port}/",
            f"http://[::ffff:127.0.0.1]:{port}/"]


_EVAL = """async () => {
  const out = [];
  try { await fetch('http://127.0.0.1:%(port)d/fetch'); out.push('fetched'); } catch (e) { out.push('fetch failed'); }
  await new Promise(r => { const i = new Image(); i.onload = i.onerror = r; i.src = 'http://127.0.0.1:%(port)d/img.png'; });
  await new Promise(r => { const w = new WebSocket('ws://127.0.0.1:%(port)d/ws'); w.onerror = w.onclose = w.onopen = r; });
  await new Promise(r => {  // a worker's own fetch
    const src = "fetch('http://127.0.0.1:%(port)d/worker').catch(() => 0).then(() => postMessage(1))";
    const w = new Worker(URL.createObjectURL(new Blob([src], {type: 'text/javascript'})));
    w.onmessage = w.onerror = r;
  });
  try {  // STUN over UDP to a loopback port: no HTTP proxy carries it, so it must not be sent at all
    const pc = new RTCPeerConnection({iceServers: [{urls: 'stun:127.0.0.1:%(udp)d'}]});
    pc.createDataChannel('x');
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise(r => setTimeout(r, 1500));
    out.push('webrtc ' + pc.iceGatheringState);
  } catch (e) { out.push('no webrtc'); }
  return out;
}"""


def _run_attacks(make_daemon, engine: str):
    """Every attack as one batch of jobs on one daemon with allow_private = false; returns what came back."""
    with _Victim("127.0.0.1") as victim, Site("127.0.0.2") as allowed, _UdpVictim() as udp:
        d = make_daemon({"pool": {"engine": engine, "size": 2},
                         "jobs": {"allow_private": False, "allow_hosts": ["127.0.0.2"], "timeout_s": 60.0}})
        urls = _attack_urls(victim.port)
        jobs = [job_request(u) for u in urls]
        jobs.append(job_request(allowed.url("/redirect?to=" + f"http://127.0.0.1:{victim.port}/redirected")))
        jobs.append(job_request(allowed.url("/page/1"), eval=_EVAL % {"port": victim.port, "udp": udp.port}))
        with d.client() as c:
            answers = {i: a for i, _, a in c.submit_many(jobs, concurrency=4)}
        st = d.status()
        assert st["invariants"]["ok"]
        with open(d.log_path, encoding="utf-8", errors="replace") as f:
            log = f.read()
        assert log.count("egress: every browser connects through a loopback proxy") == 1
        if engine == "chromium":
            _check_sandbox(log, st)
        return victim.seen + udp.seen(), urls, answers, allowed, victim.port


def _check_sandbox(log: str, status: dict) -> None:
    """--no-sandbox exactly when sandbox_note says Chromium's sandbox cannot work, and logged once."""
    import psutil

    from foxden.engines import sandbox_note

    assert log.count("chromium sandbox: ") == 1 and f"chromium sandbox: {sandbox_note()}" in log
    main = psutil.Process(status["children"][0]["browser_pids"][0])
    assert ("--no-sandbox" in main.cmdline()) == (sandbox_note() != "sandboxed"), main.cmdline()


def _check_attacks(seen, urls, answers, port):
    assert seen == [], f"the victim server was reached: {seen}"
    for i, url in enumerate(urls):
        a = answers[i]
        assert a.status in ("failed", "rejected"), (url, a)
        assert a.error.code in ("blocked_target", "private_target"), (url, a.error)
    redirect = answers[len(urls)]
    assert redirect.status == "failed" and redirect.error.code == "blocked_target", redirect
    assert f"127.0.0.1:{port}/redirected" in redirect.error.message
    page = answers[len(urls) + 1]
    assert page.status == "ok" and page.result.title == "Page 1", page
    blocked = set(page.result.blocked)
    assert {f"http://127.0.0.1:{port}/{p}" for p in ("fetch", "img.png", "worker")} <= blocked, page.result
    assert f"https://127.0.0.1:{port}/" in blocked, page.result  # the WebSocket's CONNECT


@pytest.mark.browser
def test_no_url_form_redirect_or_page_request_reaches_loopback_on_chromium(make_daemon):
    seen, urls, answers, allowed, port = _run_attacks(make_daemon, "chromium")
    _check_attacks(seen, urls, answers, port)
    # The policy is judged by the proxy, not by the URL check: most forms got past the latter.
    assert sum(answers[i].error.code == "blocked_target" for i in range(len(urls))) >= 9


@pytest.mark.firefox
def test_no_url_form_redirect_or_page_request_reaches_loopback_on_firefox(make_daemon):
    seen, urls, answers, allowed, port = _run_attacks(make_daemon, "firefox")
    _check_attacks(seen, urls, answers, port)


@pytest.mark.browser
def test_the_same_pages_load_when_private_targets_are_allowed(make_daemon):
    with _Victim("127.0.0.1") as victim:
        d = make_daemon({"pool": {"engine": "chromium", "size": 2}})
        urls = _attack_urls(victim.port)
        with d.client() as c:
            answers = {i: a for i, _, a in c.submit_many([job_request(u) for u in urls], concurrency=4)}
        connections = [s for s in victim.seen if s.startswith("connection")]
    not_loaded = {urls[i]: (a.status, a.error) for i, a in answers.items()
                  if urls[i].startswith("http:") and (a.status != "ok" or a.result.title != "secret")}
    assert not not_loaded
    assert len(connections) >= len(urls)  # the https forms too (their TLS then fails on a plain http server)
    assert answers[0].result.blocked == ()


def test_camoufox_is_launched_behind_the_proxy_too(monkeypatch, tmp_path):
    # Camoufox's binary cannot be installed here: this checks the options we
    # ask its launch_options for (it builds the rest), as test_engines does.
    import camoufox.utils

    from foxden import engines

    binary = tmp_path / "camoufox-bin"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    calls = []
    monkeypatch.setattr(engines, "_require_fpgen_model", lambda: None)
    monkeypatch.setattr(camoufox.utils, "launch_options", lambda **kw: calls.append(kw) or {"built": True})
    engines.launch_kwargs(engines.EngineChoice("camoufox", str(binary), "t"), headless=True,
                          proxy="http://127.0.0.1:4242")
    prefs = calls[0]["firefox_user_prefs"]
    assert prefs == {**engines.FIREFOX_PREFS, **engines.firefox_proxy_prefs("http://127.0.0.1:4242")}
    assert prefs["network.proxy.http_port"] == 4242 and prefs["network.proxy.allow_hijacking_localhost"] is True
