"""Browser engines: find an installed one, build offline launch options, launch it."""
from __future__ import annotations

import functools
import json
import os
import platform
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:  # Playwright is imported only where a browser is launched through it
    from playwright.sync_api import Browser, Playwright

ENGINES = ("camoufox", "chromium", "firefox")

CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
FIREFOX_PATHS = ("/usr/lib/firefox-esr/firefox-esr", "/usr/lib/firefox/firefox")

FIXES = {
    "camoufox": "run `camoufox fetch`",
    "chromium": "run `apt-get install -y chromium` (or `playwright install chromium`)",
    "firefox": "run `apt-get install -y firefox-esr`",
}

# Where every phone-home URL we can override points: port 9 (discard) on
# loopback, so anything that still fires fails at once and stays on the host.
_DEAD_URL = "http://127.0.0.1:9/"



def sandbox_off_reason(euid: int, userns: bool) -> str | None:
    """Why Chromium must run with --no-sandbox here, or None when its sandbox works (a pure function).

    As root Chromium refuses to start sandboxed at all ("Running as root
    without --no-sandbox is not supported", measured with Debian's 14x
    builds, whatever the user-namespace settings); unprivileged, its
    sandbox needs unprivileged user namespaces (Debian's build ships no
    setuid helper)."""
    if euid == 0:
        return "running as root, where Chromium refuses its sandbox"
    if not userns:
        return "unprivileged user namespaces are off (kernel.unprivileged_userns_clone, user.max_user_namespaces)"
    return None


def userns_available() -> bool:
    """True if an unprivileged process may create a user namespace (what Chromium's sandbox needs)."""
    for path, off in (("/proc/sys/kernel/unprivileged_userns_clone", "0"),
                      ("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1"),
                      ("/proc/sys/user/max_user_namespaces", "0")):
        try:
            with open(path) as f:
                if f.read().strip() == off:
                    return False
        except OSError:
            continue  # this kernel has no such switch
    return True


@functools.cache
def sandbox_note() -> str:
    """One line for the start-up log: whether Chromium runs sandboxed here, and if not why."""
    why = sandbox_off_reason(os.geteuid(), userns_available())
    return "sandboxed" if why is None else f"--no-sandbox: {why}"


def _sandbox_args() -> tuple[str, ...]:
    return ("--no-sandbox",) if sandbox_note() != "sandboxed" else ()


# --no-sandbox only where Chromium's sandbox cannot work (sandbox_off_reason).
# The rest keep Chromium from phoning Google on its own.
# --disable-dev-shm-usage is not needed: Playwright always passes it.
CHROMIUM_ARGS: tuple[str, ...] = (
    *_sandbox_args(),
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-domain-reliability",
    "--no-pings",
    # Both fire at startup despite the switches above: the sign-in cookie
    # check (accounts.google.com/ListAccounts) and the component updater.
    f"--gaia-url={_DEAD_URL}",
    f"--component-updater=url-source={_DEAD_URL}",
)

# Features to turn off beyond Playwright's own list. NetworkTimeServiceQuerying:
# a DNS lookup and query of clients2.google.com soon after start, which
# --disable-background-networking does not stop (seen with strace here).
# Chromium applies only the last --disable-features switch, so ours must carry
# Playwright's list too (chromium_disable_features).
EXTRA_DISABLED_FEATURES: tuple[str, ...] = ("NetworkTimeServiceQuerying",)

# Every name below exists in Firefox ESR 153 (checked against its omni.ja and
# libxul); prefs Firefox has since dropped (pocket, ping-centre) are left out.
FIREFOX_PREFS: dict[str, object] = {
    # Telemetry and data reporting.
    "toolkit.telemetry.enabled": False,
    "toolkit.telemetry.unified": False,
    "toolkit.telemetry.archive.enabled": False,
    "toolkit.telemetry.server": _DEAD_URL,
    "toolkit.telemetry.newProfilePing.enabled": False,
    "toolkit.telemetry.shutdownPingSender.enabled": False,
    "toolkit.telemetry.firstShutdownPing.enabled": False,
    "toolkit.telemetry.updatePing.enabled": False,
    "toolkit.telemetry.bhrPing.enabled": False,
    "toolkit.telemetry.dap_enabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "toolkit.coverage.opt-out": True,
    "toolkit.coverage.endpoint.base": _DEAD_URL,
    "datareporting.healthreport.uploadEnabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.policy.firstRunURL": "",
    "datareporting.usage.uploadEnabled": False,
    "browser.newtabpage.activity-stream.telemetry": False,
    # Studies and experiments: Normandy, Shield, Nimbus.
    "app.normandy.enabled": False,
    "app.normandy.api_url": _DEAD_URL,
    "app.shield.optoutstudies.enabled": False,
    "nimbus.rollouts.enabled": False,
    # Remote settings: the feed behind blocklists, experiments, search config.
    "services.settings.server": _DEAD_URL,
    # Updates of the browser, add-ons, system add-ons, search engines, GMP plugins.
    "app.update.auto": False,
    "app.update.checkInstallTime": False,
    "app.update.disabledForTesting": True,
    "app.update.background.enabled": False,
    "app.update.staging.enabled": False,
    "extensions.update.enabled": False,
    "extensions.update.autoUpdateDefault": False,
    "extensions.getAddons.cache.enabled": False,
    "extensions.blocklist.enabled": False,
    "extensions.systemAddon.update.enabled": False,
    "extensions.systemAddon.update.url": _DEAD_URL,
    "extensions.htmlaboutaddons.recommendations.enabled": False,
    "browser.discovery.enabled": False,
    "browser.search.update": False,
    "media.gmp-manager.url": _DEAD_URL,
    "media.gmp-manager.updateEnabled": False,
    "media.gmp-gmpopenh264.enabled": False,
    "media.gmp-widevinecdm.enabled": False,
    # Safe browsing: list downloads and per-URL lookups.
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.blockedURIs.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "browser.safebrowsing.downloads.remote.enabled": False,
    "browser.safebrowsing.downloads.remote.url": _DEAD_URL,
    "browser.safebrowsing.features.malware.update": False,
    "browser.safebrowsing.features.phishing.update": False,
    "browser.safebrowsing.provider.google.updateURL": _DEAD_URL,
    "browser.safebrowsing.provider.google.gethashURL": _DEAD_URL,
    "browser.safebrowsing.provider.google4.updateURL": _DEAD_URL,
    "browser.safebrowsing.provider.google4.gethashURL": _DEAD_URL,
    "browser.safebrowsing.provider.google4.dataSharing.enabled": False,
    "browser.safebrowsing.provider.google5.enabled": False,
    "browser.safebrowsing.provider.mozilla.updateURL": _DEAD_URL,
    "browser.safebrowsing.provider.mozilla.gethashURL": _DEAD_URL,
    # Captive portal and connectivity probes.
    "network.captive-portal-service.enabled": False,
    "captivedetect.canonicalURL": _DEAD_URL,
    "network.connectivity-service.enabled": False,
    # DNS over HTTPS (5 = off by choice, so no rollout turns it on).
    "network.trr.mode": 5,
    # Speculative connections and prefetching.
    "network.prefetch-next": False,
    "network.dns.disablePrefetch": True,
    "network.http.speculative-parallel-limit": 0,
    "browser.places.speculativeConnect.enabled": False,
    "browser.urlbar.speculativeConnect.enabled": False,
    # Certificate status and CRLite/intermediate downloads.
    "security.OCSP.enabled": 0,
    "security.remote_settings.crlite_filters.enabled": False,
    "security.remote_settings.intermediates.enabled": False,
    # New tab, activity stream and sponsored content fetches.
    "browser.newtabpage.enabled": False,
    "browser.newtab.preload": False,
    "browser.newtabpage.activity-stream.feeds.section.topstories": False,
    "browser.newtabpage.activity-stream.feeds.system.topstories": False,
    "browser.newtabpage.activity-stream.feeds.topsites": False,
    "browser.newtabpage.activity-stream.showSponsored": False,
    "browser.newtabpage.activity-stream.showSponsoredTopSites": False,
    "browser.newtabpage.activity-stream.showWeather": False,
    "browser.topsites.contile.enabled": False,
    "browser.topsites.useRemoteSetting": False,
    "browser.startup.homepage": "about:blank",
    "browser.startup.page": 0,
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.aboutwelcome.enabled": False,
    "browser.uitour.enabled": False,
    # Search suggestions, Firefox Suggest, region lookup, geolocation.
    "browser.search.suggest.enabled": False,
    "browser.urlbar.suggest.searches": False,
    "browser.urlbar.suggest.trending": False,
    "browser.urlbar.quicksuggest.enabled": False,
    "browser.urlbar.suggest.quicksuggest.sponsored": False,
    "browser.urlbar.suggest.quicksuggest.nonsponsored": False,
    "browser.urlbar.merino.endpointURL": _DEAD_URL,
    "browser.region.network.url": _DEAD_URL,
    "browser.region.update.enabled": False,
    "geo.provider.network.url": _DEAD_URL,
    # Push notifications keep a websocket to Mozilla open.
    "dom.push.enabled": False,
    "dom.push.connection.enabled": False,
    # Crash reports.
    "browser.tabs.crashReporting.sendReport": False,
    "browser.crashReports.unsubmittedCheck.enabled": False,
    "browser.crashReports.unsubmittedCheck.autoSubmit2": False,
    "breakpad.reportURL": _DEAD_URL,
    # Accounts, ML models and other features that fetch on their own.
    "identity.fxaccounts.enabled": False,
    "browser.ml.enable": False,
    "browser.ml.chat.enabled": False,
    "browser.ml.linkPreview.enabled": False,
    "browser.contentblocking.report.monitor.enabled": False,
    "browser.backup.scheduled.enabled": False,
    # First-run prompts.
    "browser.shell.checkDefaultBrowser": False,
}


def chromium_proxy_args(proxy: str) -> tuple[str, ...]:
    """Switches that send every connection of Chromium through the egress proxy at `proxy`.

    <-loopback> undoes Chromium's implicit bypass of localhost and loopback
    addresses; QUIC (UDP) would not go through an HTTP proxy, and WebRTC may
    only use proxied (TCP) paths, so neither can reach an address directly.
    DNS prefetching is off: with a proxy Chromium resolves nothing it needs,
    and a lookup of a page's names would tell their DNS servers about them."""
    return (f"--proxy-server={proxy}", "--proxy-bypass-list=<-loopback>", "--disable-quic",
            "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
            "--webrtc-ip-handling-policy=disable_non_proxied_udp", "--dns-prefetch-disable")


def firefox_proxy_prefs(proxy: str) -> dict[str, object]:
    """Prefs that send every connection of Firefox (pages and its own) through the egress proxy at `proxy`."""
    parts = urlsplit(proxy)
    return {
        "network.proxy.type": 1,  # manual
        "network.proxy.http": parts.hostname, "network.proxy.http_port": parts.port,
        "network.proxy.ssl": parts.hostname, "network.proxy.ssl_port": parts.port,
        "network.proxy.share_proxy_settings": False,
        "network.proxy.socks": "", "network.proxy.socks_port": 0,
        "network.proxy.no_proxies_on": "",
        "network.proxy.allow_hijacking_localhost": True,  # else localhost and 127/8 go direct
        "network.proxy.failover_direct": False,  # never around the proxy, even when it is down
        "network.proxy.allow_bypass": False,
        "media.peerconnection.enabled": False,  # WebRTC: UDP that no HTTP proxy carries
        "network.http.http3.enable": False,
        "network.dns.disablePrefetch": True,
        "network.dns.disablePrefetchFromHTTPS": True,
        "network.http.speculative-parallel-limit": 0,
    }


class EngineUnavailable(Exception):
    """An engine that cannot run here: says what was looked for and how to fix it."""


@dataclass(frozen=True)
class EngineChoice:
    """The engine to run, its binary, and why it was picked."""

    name: str
    executable_path: str | None
    reason: str


def resolve_engine(engine: str, executable_path: str | None) -> EngineChoice:
    """Pick the engine and binary for `engine` ("auto" or one of ENGINES); no network."""
    if engine != "auto" and engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; expected auto or one of {', '.join(ENGINES)}")
    if executable_path:
        return _configured(engine, executable_path)
    if engine != "auto":
        path = _find(engine)
        return EngineChoice(engine, path, f"{engine}: found at {path}")
    misses = []
    for name in ENGINES:
        try:
            path = _find(name)
        except EngineUnavailable as e:
            misses.append(str(e))
            continue
        # Each miss reads "<what>; <fix>": the reason only needs the what.
        skipped = [miss.split(";")[0] for miss in misses]
        return EngineChoice(name, path, "auto: " + "; ".join([*skipped, f"{name} found at {path}"]))
    raise EngineUnavailable("auto: no browser engine is installed: " + " / ".join(misses))


def _configured(engine: str, path: str) -> EngineChoice:
    """A choice for an explicitly configured binary, which must be executable."""
    if not _executable(path):
        what = "is not executable" if os.path.exists(path) else "does not exist"
        raise EngineUnavailable(
            f"{engine}: executable_path {path} {what}; point it at the browser binary, or leave it"
            " empty to use the installed one"
        )
    if engine == "auto":
        engine = _guess_engine(path)
        reason = f"auto: executable_path {path} looks like {engine}"
    else:
        reason = f"{engine}: executable_path {path} as configured"
    if engine == "camoufox":
        _require_fpgen_model()
    return EngineChoice(engine, path, reason)


def _guess_engine(path: str) -> str:
    """The engine a binary's file name implies; auto has nothing else to go on."""
    name = os.path.basename(path).lower()
    for hint, engine in (("camoufox", "camoufox"), ("firefox", "firefox"), ("chrom", "chromium")):
        if hint in name:
            return engine
    raise EngineUnavailable(
        f"auto: cannot tell which engine {path} is; set engine to one of {', '.join(ENGINES)}"
    )


def _find(engine: str) -> str:
    """The installed binary of `engine`, or EngineUnavailable naming the fix."""
    if engine == "camoufox":
        path = _camoufox_binary()
        # Checked here as well as at launch so that auto moves on, and the
        # daemon refuses at start-up, rather than a browser actor failing.
        _require_fpgen_model()
        return path
    candidates = (*CHROMIUM_PATHS, _playwright_chromium()) if engine == "chromium" else FIREFOX_PATHS
    for path in candidates:
        if _executable(path):
            return path
    raise EngineUnavailable(f"{engine}: no binary at {', '.join(candidates)}; {FIXES[engine]}")


def _executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def _camoufox_binary() -> str:
    """Camoufox's installed binary, found by the package itself without downloading."""
    # Imported here: the package pulls in requests, rich and yaml (~1 s), and
    # only a camoufox choice needs it.
    from camoufox.exceptions import UnsupportedVersion
    from camoufox.pkgman import camoufox_path, launch_path

    try:
        # download_if_missing=False is the package's no-network switch: it
        # raises instead of fetching a build from GitHub.
        return launch_path(camoufox_path(download_if_missing=False))
    except (FileNotFoundError, UnsupportedVersion) as e:
        # CamoufoxNotInstalled is a FileNotFoundError.
        raise EngineUnavailable(f"camoufox: binary not installed; {FIXES['camoufox']} ({e})") from None


def _playwright_chromium() -> str:
    """Where `playwright install chromium` puts Chromium; it may not be there."""
    # Mirrors the driver's registry (playwright-core's EXECUTABLE_PATHS and
    # registryDirectory) so no driver process has to start just to ask.
    package = _playwright_dir() / "driver" / "package"
    browsers = json.loads((package / "browsers.json").read_text())["browsers"]
    revision = next(b["revision"] for b in browsers if b["name"] == "chromium")
    configured = os.environ.get("PLAYWRIGHT_BROWSERS_PATH")
    if configured == "0":
        root = package / ".local-browsers"
    elif configured:
        root = Path(configured)
    else:
        cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        root = Path(cache) / "ms-playwright"
    arm = platform.machine().lower() in ("aarch64", "arm64")
    build = ("chrome-linux", "chrome") if arm else ("chrome-linux64", "chrome")
    return str(root.joinpath(f"chromium-{revision}", *build))


def _playwright_dir() -> Path:
    """The installed playwright package's directory, found without importing it."""
    import importlib.util

    spec = importlib.util.find_spec("playwright")
    return Path(spec.origin).parent if spec and spec.origin else Path("/nonexistent")


@functools.cache
def playwright_disabled_features() -> tuple[str, ...] | None:
    """The Chromium features Playwright's driver disables (its --disable-features list), or None.

    Playwright's Python API does not expose its default switches; its driver
    bundle holds the list as a JS array literal (`disabledFeatures = [...]`)."""
    lib = _playwright_dir() / "driver" / "package" / "lib"
    for name in ("coreBundle.js", "server/chromium/chromiumSwitches.js"):
        try:
            text = (lib / name).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        m = re.search(r"disabledFeatures\s*=\s*\[(.*?)\]", text, re.S)
        if m:
            body = re.sub(r"//[^\n]*", "", m.group(1))  # comments name issues, not features
            features = tuple(re.findall(r'"([A-Za-z0-9_]+)"', body))
            if features and not re.search(r"[?:]", body):  # a plain list, nothing conditional
                return features
    return None


def chromium_feature_args() -> tuple[list[str], list[str]]:
    """(args, ignore_default_args) that turn off Playwright's features plus ours, in one switch.

    When Playwright's list cannot be read, nothing is changed: dropping its
    list would turn back on what Playwright turns off for correctness."""
    theirs = playwright_disabled_features()
    if theirs is None:
        return [], []
    ours = [f for f in EXTRA_DISABLED_FEATURES if f not in theirs]
    switch = "--disable-features=" + ",".join(theirs)
    return ["--disable-features=" + ",".join([*theirs, *ours])], [switch]


# What Playwright's Chromium launch passes (playwright-core 1.62,
# chromiumSwitches.ts and chromium.ts), for foxden's CDP driver, so that a
# page behaves the same on either driver. Left out: switches for Playwright's
# own features (--allow-pre-commit-input for its input pipeline,
# --enable-features=CDPScreenshotNewSurface, --export-tagged-pdf).
CHROMIUM_DEFAULT_SWITCHES: tuple[str, ...] = (
    "--disable-field-trial-config",          # no field-trial experiments: the same Chromium every run
    "--disable-background-networking",
    "--disable-background-timer-throttling",  # timers and rendering run at full speed in every page
    "--disable-backgrounding-occluded-windows",
    "--disable-renderer-backgrounding",
    "--disable-back-forward-cache",
    "--disable-breakpad",
    "--disable-client-side-phishing-detection",
    "--disable-component-extensions-with-background-pages",
    "--disable-component-update",
    "--no-default-browser-check",
    "--disable-default-apps",
    "--disable-dev-shm-usage",                # shared memory in TMPDIR: /dev/shm is small in containers
    "--disable-extensions",
    "--disable-hang-monitor",
    "--disable-ipc-flooding-protection",
    "--disable-popup-blocking",
    "--disable-prompt-on-repost",
    "--force-color-profile=srgb",
    "--metrics-recording-only",
    "--no-first-run",
    "--password-store=basic",
    "--use-mock-keychain",
    "--no-service-autorun",
    "--disable-search-engine-choice-screen",
    "--disable-infobars",
    "--disable-sync",
    "--enable-unsafe-swiftshader",
)
CHROMIUM_HEADLESS_SWITCHES: tuple[str, ...] = (
    "--headless",
    "--hide-scrollbars",
    "--mute-audio",
    "--blink-settings=primaryHoverType=2,availableHoverTypes=2,primaryPointerType=4,availablePointerTypes=4",
)
# Used when Playwright's list cannot be read from its driver (see
# playwright_disabled_features): the features that change what a page does.
FALLBACK_DISABLED_FEATURES: tuple[str, ...] = (
    "AvoidUnnecessaryBeforeUnloadCheckSync", "DestroyProfileOnBrowserClose", "DialMediaRouteProvider",
    "GlobalMediaControls", "HttpsUpgrades", "LensOverlay", "MediaRouter", "PaintHolding",
    "ThirdPartyStoragePartitioning", "Translate", "OptimizationHints",
)


def chromium_command(choice: EngineChoice, *, headless: bool, extra_args: Sequence[str] = (),
                     user_data_dir: str, proxy: str | None = None) -> list[str]:
    """The full command line of a Chromium that foxden's CDP driver starts and owns (behind `proxy`, if given)."""
    features = playwright_disabled_features() or FALLBACK_DISABLED_FEATURES
    features = (*features, *(f for f in EXTRA_DISABLED_FEATURES if f not in features))
    return [
        choice.executable_path or "/usr/bin/chromium",
        *CHROMIUM_DEFAULT_SWITCHES,
        *(CHROMIUM_HEADLESS_SWITCHES if headless else ()),
        *CHROMIUM_ARGS,
        "--disable-features=" + ",".join(features),
        *extra_args,
        *(chromium_proxy_args(proxy) if proxy else ()),
        f"--user-data-dir={user_data_dir}",
        "--remote-debugging-pipe",
        "--no-startup-window",
    ]


def launch_kwargs(
    choice: EngineChoice, *, headless: bool, extra_args: Sequence[str] = (), proxy: str | None = None
) -> tuple[str, dict]:
    """The Playwright browser type ("chromium" or "firefox") and its launch() kwargs (behind `proxy`, if given)."""
    prefs = {**FIREFOX_PREFS, **(firefox_proxy_prefs(proxy) if proxy else {})}
    if choice.name == "chromium":
        features, ignore = chromium_feature_args()
        kwargs = {
            "executable_path": choice.executable_path,
            "headless": headless,
            "args": [*CHROMIUM_ARGS, *features, *extra_args, *(chromium_proxy_args(proxy) if proxy else ())],
        }
        if ignore:
            kwargs["ignore_default_args"] = ignore
        return "chromium", kwargs
    if choice.name == "firefox":
        # Debian's Firefox has no Juggler; Playwright drives it over WebDriver BiDi.
        return "firefox", {
            "channel": "moz-firefox",
            "executable_path": choice.executable_path,
            "headless": headless,
            "args": [*extra_args],
            "firefox_user_prefs": prefs,
            "env": _firefox_env(),
        }
    if choice.name == "camoufox":
        return "firefox", _camoufox_kwargs(choice, headless, extra_args, prefs)
    raise ValueError(f"unknown engine {choice.name!r}")


def _firefox_env() -> dict[str, str]:
    """Our environment plus the switch that lets services.settings.server apply."""
    # Release builds ignore the remote-settings server pref unless this is set,
    # and poll firefox.settings.services.mozilla.com at startup regardless.
    return {**os.environ, "MOZ_REMOTE_SETTINGS_DEVTOOLS": "1"}


def _camoufox_kwargs(choice: EngineChoice, headless: bool, extra_args: Sequence[str], prefs: dict) -> dict:
    """Camoufox's own launch options with every download it could start turned off."""
    from camoufox.addons import DefaultAddons
    from camoufox.utils import launch_options

    # Without an explicit path the package resolves (and may download) a build.
    path = choice.executable_path or _camoufox_binary()
    _require_fpgen_model()
    return launch_options(
        executable_path=path,
        headless=headless,
        args=list(extra_args),
        firefox_user_prefs=prefs,
        env=_firefox_env(),
        # The default addon (uBlock Origin) is downloaded from addons.mozilla.org.
        exclude_addons=list(DefaultAddons),
        # GeoIP looks up our public IP and may download its database.
        geoip=False,
    )


def _require_fpgen_model() -> None:
    """Refuse unless fpgen's pinned model is installed (checks hashes; fpgen is not imported)."""
    # Camoufox draws the fingerprint and the WebGL identity from this model and
    # downloads it from GitHub when it is missing; only block_webgl avoids
    # that, and a browser without WebGL is easy to spot. `camoufox fetch`
    # installs it with the browser.
    from camoufox.exceptions import FpgenModelError
    from camoufox.fpgen_model import is_pinned

    try:
        installed = is_pinned()
    except FpgenModelError:
        # Raised when the fpgen package itself is missing.
        installed = False
    if not installed:
        raise EngineUnavailable(f"camoufox: fingerprint model not installed; {FIXES['camoufox']}")


# Playwright's words for a path that is not there (its own check) or that
# the kernel would not run (node's spawn error).
_MISSING_BINARY = re.compile(r"executable doesn't exist|spawn \S+ (ENOENT|EACCES)", re.IGNORECASE)


def launch(
    playwright: Playwright, choice: EngineChoice, *, headless: bool = True, extra_args: Sequence[str] = (),
    proxy: str | None = None,
) -> Browser:
    """Launch `choice` with Playwright's sync API; a missing binary is EngineUnavailable."""
    from playwright.sync_api import Error

    kind, kwargs = launch_kwargs(choice, headless=headless, extra_args=extra_args, proxy=proxy)
    try:
        return getattr(playwright, kind).launch(**kwargs)
    except Error as e:
        if not _MISSING_BINARY.search(e.message):
            raise
        raise EngineUnavailable(
            f"{choice.name}: cannot start {kwargs['executable_path']}; {FIXES[choice.name]}"
            f" ({e.message.splitlines()[0]})"
        ) from e


def engine_version(browser: Browser) -> str:
    """E.g. "chromium 156.0.8078.79": the Playwright browser type and its version."""
    return f"{browser.browser_type.name} {browser.version}"
