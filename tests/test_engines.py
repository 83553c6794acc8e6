"""Tests for foxden.engines: finding engines, offline option building, real launches."""
from __future__ import annotations

import re
import socket
import threading
import time
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import psutil
import pytest
import requests
from playwright.sync_api import sync_playwright

from foxden import engines
from foxden.engines import (
    CHROMIUM_ARGS,
    FIREFOX_PREFS,
    EngineChoice,
    EngineUnavailable,
    engine_version,
    launch,
    launch_kwargs,
    resolve_engine,
)

TITLE = "foxden engines test"


def camoufox_installed() -> bool:
    try:
        resolve_engine("camoufox", None)
    except EngineUnavailable:
        return False
    return True


def fpgen_model_installed() -> bool:
    try:
        engines._require_fpgen_model()
    except EngineUnavailable:
        return False
    return True


needs_no_camoufox = pytest.mark.skipif(camoufox_installed(), reason="camoufox is installed here")


@pytest.fixture
def no_network(monkeypatch) -> list:
    """Make every way out of this process raise, and record who tried."""
    attempts: list = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access attempted during an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    # requests.get and friends all end in Session.request; camoufox downloads
    # with requests (httpx is not installed).
    monkeypatch.setattr(requests.Session, "request", refuse)
    return attempts


@pytest.fixture
def fake_binary(tmp_path) -> str:
    path = tmp_path / "camoufox-bin"
    path.write_text("#!/bin/sh\nexit 1\n")
    path.chmod(0o755)
    return str(path)


# --- resolve_engine -----------------------------------------------------------


@needs_no_camoufox
def test_auto_falls_back_to_chromium_and_says_why():
    choice = resolve_engine("auto", None)
    assert choice.name == "chromium"
    assert choice.executable_path == "/usr/bin/chromium"
    assert choice.reason == "auto: camoufox: binary not installed; chromium found at /usr/bin/chromium"


@needs_no_camoufox
def test_camoufox_missing_names_the_fix_without_downloading(no_network):
    with pytest.raises(EngineUnavailable, match="camoufox fetch"):
        resolve_engine("camoufox", None)
    assert no_network == []


def test_explicit_engines_find_the_debian_binaries():
    assert resolve_engine("chromium", None).executable_path == "/usr/bin/chromium"
    assert resolve_engine("firefox", None).executable_path == "/usr/lib/firefox-esr/firefox-esr"


def test_configured_path_that_does_not_exist(tmp_path):
    missing = str(tmp_path / "no-such-chrome")
    with pytest.raises(EngineUnavailable, match="does not exist") as info:
        resolve_engine("chromium", missing)
    assert missing in str(info.value)


def test_configured_path_that_is_not_executable(tmp_path):
    path = tmp_path / "chrome"
    path.write_text("not a browser")
    path.chmod(0o644)
    with pytest.raises(EngineUnavailable, match="is not executable"):
        resolve_engine("chromium", str(path))


def test_configured_path_is_taken_as_given(fake_binary):
    choice = resolve_engine("firefox", fake_binary)
    assert (choice.name, choice.executable_path) == ("firefox", fake_binary)
    assert choice.reason == f"firefox: executable_path {fake_binary} as configured"


@pytest.mark.skipif(fpgen_model_installed(), reason="fpgen's model is installed here")
def test_configured_camoufox_still_needs_its_model(fake_binary):
    with pytest.raises(EngineUnavailable, match="fingerprint model not installed; run `camoufox fetch`"):
        resolve_engine("camoufox", fake_binary)


def test_auto_with_a_path_goes_by_the_binary_name(monkeypatch, fake_binary):
    monkeypatch.setattr(engines, "_require_fpgen_model", lambda: None)
    assert resolve_engine("auto", fake_binary).name == "camoufox"
    assert resolve_engine("auto", "/usr/lib/firefox-esr/firefox-esr").name == "firefox"
    with pytest.raises(EngineUnavailable, match="cannot tell"):
        resolve_engine("auto", "/bin/sh")


# --- launch_kwargs ------------------------------------------------------------


def test_chromium_kwargs_append_extra_args():
    kind, kwargs = launch_kwargs(
        EngineChoice("chromium", "/usr/bin/chromium", "test"), headless=True, extra_args=("--lang=fr",)
    )
    assert kind == "chromium"
    features, ignore = engines.chromium_feature_args()
    assert kwargs == {
        "executable_path": "/usr/bin/chromium",
        "headless": True,
        "args": [*CHROMIUM_ARGS, *features, "--lang=fr"],
        "ignore_default_args": ignore,
    }


def test_playwrights_disabled_features_are_read_from_its_driver():
    """If this breaks after a Playwright upgrade, Chromium would query clients2.google.com again."""
    theirs = engines.playwright_disabled_features()
    assert theirs and all(re.fullmatch(r"[A-Za-z0-9_]+", f) for f in theirs)
    assert "MediaRouter" in theirs  # one Playwright has disabled for years


@pytest.mark.browser
def test_chromium_runs_with_one_disable_features_switch_holding_both_lists(marker):
    """Chromium applies only the last --disable-features: ours must be the only one and carry Playwright's list."""
    choice = resolve_engine("chromium", None)
    with sync_playwright() as p:
        browser = launch(p, choice)
        try:
            main = [q for q in leftovers(marker) if "--remote-debugging-pipe" in q.cmdline()]
            assert len(main) == 1
            switches = [a for a in main[0].cmdline() if a.startswith("--disable-features=")]
            assert len(switches) == 1, switches
            features = switches[0].split("=", 1)[1].split(",")
            assert "NetworkTimeServiceQuerying" in features
            assert set(engines.playwright_disabled_features()) <= set(features)
        finally:
            browser.close()
    assert_nothing_left(marker)


def test_firefox_kwargs_use_bidi_and_our_prefs():
    choice = EngineChoice("firefox", "/usr/lib/firefox-esr/firefox-esr", "test")
    kind, kwargs = launch_kwargs(choice, headless=False)
    assert kind == "firefox"
    assert kwargs["channel"] == "moz-firefox"
    assert kwargs["headless"] is False
    assert kwargs["firefox_user_prefs"] == FIREFOX_PREFS
    assert kwargs["firefox_user_prefs"] is not FIREFOX_PREFS
    assert kwargs["env"]["MOZ_REMOTE_SETTINGS_DEVTOOLS"] == "1"


def test_every_overridden_url_is_loopback():
    urls = [v for v in FIREFOX_PREFS.values() if isinstance(v, str) and "://" in v]
    urls += [a.split("=")[-1] for a in CHROMIUM_ARGS if "://" in a]
    assert urls
    assert {urlsplit(url).hostname for url in urls} == {"127.0.0.1"}


# Read from camoufox/utils.py launch_options(): with exclude_addons and
# geoip off and an explicit executable_path, the one remaining download is
# fpgen's model (fingerprint generation and WebGL sampling both load it, via
# fpgen_model.ensure_fpgen_model). No option avoids it short of disabling
# WebGL, so without the model launch_kwargs must refuse, naming the fix, before
# anything touches the network.
@pytest.mark.skipif(fpgen_model_installed(), reason="fpgen's model is installed here")
def test_camoufox_without_its_model_refuses_offline(no_network, fake_binary):
    with pytest.raises(EngineUnavailable, match="camoufox fetch"):
        launch_kwargs(EngineChoice("camoufox", fake_binary, "test"), headless=True)
    assert no_network == []


def test_camoufox_options_turn_every_download_off(monkeypatch, no_network, fake_binary):
    # The option building itself needs the model (see above), so the
    # package's launch_options is replaced by a recorder: this checks what we
    # ask of it.
    import camoufox.utils
    from camoufox.addons import DefaultAddons

    calls = []
    monkeypatch.setattr(engines, "_require_fpgen_model", lambda: None)
    monkeypatch.setattr(camoufox.utils, "launch_options", lambda **kw: calls.append(kw) or {"built": True})

    kind, kwargs = launch_kwargs(
        EngineChoice("camoufox", fake_binary, "test"), headless=True, extra_args=("--foo",)
    )

    assert (kind, kwargs) == ("firefox", {"built": True})
    [options] = calls
    assert options["executable_path"] == fake_binary
    assert options["exclude_addons"] == list(DefaultAddons)
    assert options["geoip"] is False
    assert options["headless"] is True
    assert options["args"] == ["--foo"]
    assert options["firefox_user_prefs"] == FIREFOX_PREFS
    assert options["env"]["MOZ_REMOTE_SETTINGS_DEVTOOLS"] == "1"
    assert no_network == []


# --- launch -------------------------------------------------------------------


def test_launch_turns_a_missing_binary_into_engine_unavailable(tmp_path, monkeypatch):
    # Playwright makes its profile and artifacts dirs before it finds the binary
    # missing, and leaves them; foxden's browsers get a TMPDIR of their own for that.
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    gone = EngineChoice("chromium", str(tmp_path / "gone"), "test")
    with sync_playwright() as p:
        with pytest.raises(EngineUnavailable, match="apt-get install -y chromium"):
            launch(p, gone)


def test_launch_turns_an_unrunnable_binary_into_engine_unavailable(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    path = tmp_path / "firefox"
    path.write_text("")
    path.chmod(0o644)
    with sync_playwright() as p:
        with pytest.raises(EngineUnavailable, match="apt-get install -y firefox-esr"):
            launch(p, EngineChoice("firefox", str(path), "test"))


class _Page(BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"<!doctype html><title>{TITLE}</title><p>hello".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def page_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()
    server.server_close()


@pytest.fixture
def marker(monkeypatch) -> str:
    """A value every process started by the test inherits, to find strays by."""
    value = uuid.uuid4().hex
    monkeypatch.setenv("FOXDEN_TEST_MARKER", value)
    return value


def drive(engine: str, url: str) -> None:
    try:
        choice = resolve_engine(engine, None)
    except EngineUnavailable as e:
        pytest.skip(str(e))
    with sync_playwright() as p:
        browser = launch(p, choice)
        try:
            assert engine_version(browser).startswith(f"{browser.browser_type.name} ")
            page = browser.new_page()
            page.goto("about:blank")
            assert page.url == "about:blank"
            page.goto(url)
            assert page.title() == TITLE
        finally:
            browser.close()


def leftovers(marker: str) -> list[psutil.Process]:
    """Live children of ours that look like a browser or the driver, plus any
    process carrying the marker (crashpad double-forks out of our tree)."""
    found = {p.pid: p for p in psutil.Process().children(recursive=True) if _browserish(p)}
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("FOXDEN_TEST_MARKER") == marker:
                found[proc.pid] = proc
        except psutil.Error:
            continue
    return [p for p in found.values() if _alive(p)]


def _browserish(proc: psutil.Process) -> bool:
    try:
        text = " ".join([proc.name(), *proc.cmdline()])
    except psutil.Error:
        return False
    return any(word in text for word in ("chrom", "firefox", "crashpad", "playwright"))


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def assert_nothing_left(marker: str) -> None:
    # Processes exit a moment after the driver says the browser closed.
    deadline = time.monotonic() + 10
    while (left := leftovers(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, [(p.pid, p.name()) for p in left]


@pytest.mark.browser
def test_chromium_launches_browses_and_leaves_nothing(page_url, marker):
    drive("chromium", page_url)
    assert_nothing_left(marker)


@pytest.mark.browser
@pytest.mark.firefox
def test_firefox_esr_launches_browses_and_leaves_nothing(page_url, marker):
    drive("firefox", page_url)
    assert_nothing_left(marker)


@pytest.mark.browser
@pytest.mark.skipif(not camoufox_installed(), reason="camoufox is not installed (camoufox fetch)")
def test_camoufox_launches_browses_and_leaves_nothing(page_url, marker):
    drive("camoufox", page_url)
    assert_nothing_left(marker)
