"""A job's page options from its wire form: JobOptions, or an error naming the field (pure functions)."""
from __future__ import annotations

import functools
import re
import zoneinfo
from urllib.parse import unquote, urlsplit

from foxden.protocols.errors import ErrorCode
from foxden.protocols.options import Cookie, JobOptions, Proxy, ResourceType, SameSite, Viewport, WaitUntil
from foxden.protocols.urls import check_url
from foxden.protocols.wire import ErrorInfo, JobRequest

__all__ = ["BadOption", "PDF_ENGINES", "PROXY_SCHEMES", "options_of", "parse_proxy", "proxy_refusal", "refusal",
           "unsupported"]

PROXY_SCHEMES = ("http", "https", "socks5")
PDF_ENGINES = frozenset({"chromium"})
MAX_VIEWPORT = 16384  # CSS pixels per side; Chromium's own limit for a surface
_DEFAULT_PORTS = {"http": 80, "https": 443, "socks5": 1080}
# RFC 9110 token characters: what a header name may be made of.
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # a header value may hold tabs, nothing else below space
# BCP 47, the forms browsers take: language[-script][-region][-variant...], e.g. en, en-US, zh-Hant-TW, de-CH-1996.
_BCP47 = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z]{4})?(-(?:[A-Za-z]{2}|[0-9]{3}))?(-(?:[A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*$")
# A block entry with one of these is a URL glob; otherwise it must name a resource type.
_GLOB_CHARS = frozenset("*?/.:")
_TYPES = ", ".join(t.value for t in ResourceType)


class BadOption(ValueError):
    """A well-typed option with a value no browser can take; str() names the field."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}")
        self.path = path

    def error(self) -> ErrorInfo:
        return ErrorCode.BAD_INPUT.error(str(self))


def refusal(req: JobRequest, engine: str = "", jobs=None) -> ErrorInfo | None:
    """None when the job's options are good, else the error it is rejected with before any browser work.

    `engine` (the daemon's resolved engine, "" if unknown) decides
    unsupported_option; `jobs` ([jobs] config) judges a proxy's host like a
    target's, so a per-job proxy cannot lead around the egress wall."""
    try:
        options = options_of(req)
    except BadOption as exc:
        return exc.error()
    return unsupported(options, engine) or (proxy_refusal(options.proxy, jobs) if jobs is not None else None)


def options_of(req: JobRequest) -> JobOptions:
    """JobOptions from a decoded (well-typed) JobRequest; raises BadOption naming the first bad field."""
    block_types, block_patterns = _block(req.block or ())
    return JobOptions(
        wait_until=_wait_until(req.wait_until),
        wait_for_function=_nonblank(req.wait_for_function, "job.wait_for_function"),
        headers=_headers(req.headers or {}),
        user_agent=_user_agent(req.user_agent),
        locale=_locale(req.locale),
        timezone=_timezone(req.timezone),
        viewport=_viewport(req.viewport),
        cookies=tuple(_cookie(c, f"job.cookies[{i}]", req.url) for i, c in enumerate(req.cookies or ())),
        block_types=block_types,
        block_patterns=block_patterns,
        proxy=None if req.proxy is None else parse_proxy(req.proxy, "job.proxy"),
        html=req.html,
        full_page=_needs_screenshot(req.full_page, req, "job.full_page"),
        screenshot_selector=_selector(req),
        pdf=req.pdf,
    )


def unsupported(options: JobOptions, engine: str) -> ErrorInfo | None:
    """unsupported_option for what `engine` cannot do ("" = not known yet: nothing is refused)."""
    if not engine:
        return None
    if options.pdf and engine not in PDF_ENGINES:
        return ErrorCode.UNSUPPORTED_OPTION.error(f"job.pdf: {engine} cannot print a page to PDF (Chromium only)")
    proxy = options.proxy
    if proxy is not None and proxy.username is not None and proxy.server.startswith("socks5:"):
        return ErrorCode.UNSUPPORTED_OPTION.error(
            f"job.proxy: {engine} cannot authenticate to a socks5 proxy (use an http proxy for credentials)")
    return None


def proxy_refusal(proxy: Proxy | None, jobs) -> ErrorInfo | None:
    """blocked_target when the [jobs] egress policy refuses the proxy's host as it would a target.

    Judged on literal addresses and localhost here (no lookups in an actor);
    the browser's egress guard resolves a name and judges its addresses before the job runs."""
    if proxy is None:
        return None
    host = urlsplit(proxy.server).netloc.rsplit(":", 1)[0]
    refused = check_url(f"http://{host}/", jobs)
    if refused is None:
        return None
    return ErrorCode.BLOCKED_TARGET.error(f"job.proxy: {refused.message} (a job's proxy is judged like its target)")


# --- one option each ----------------------------------------------------------------


def _wait_until(value: str | None) -> WaitUntil:
    if value is None:
        return WaitUntil.LOAD
    try:
        return WaitUntil(value)
    except ValueError:
        raise BadOption("job.wait_until", f"unknown value {value!r} (one of {', '.join(WaitUntil)})") from None


def _nonblank(value: str | None, path: str) -> str | None:
    if value is not None and not value.strip():
        raise BadOption(path, "must not be empty")
    return value


def _headers(headers: dict) -> tuple[tuple[str, str], ...]:
    seen: set[str] = set()
    for name, value in headers.items():
        path = f"job.headers[{name[:60]!r}]"
        if not _TOKEN.match(name):
            raise BadOption(path, "not a valid header name (letters, digits and !#$%&'*+-.^_`|~ only)")
        if name.lower() in seen:
            raise BadOption(path, "given twice (header names are case-insensitive)")
        seen.add(name.lower())
        if _CONTROL.search(value):
            raise BadOption(path, "the value holds a line break or control character")
    return tuple(headers.items())


def _user_agent(value: str | None) -> str | None:
    if value is not None and (not value.strip() or _CONTROL.search(value)):
        raise BadOption("job.user_agent", "must be a non-empty string without line breaks or control characters")
    return value


def _locale(value: str | None) -> str | None:
    if value is not None and not _BCP47.match(value):
        raise BadOption("job.locale", f"{value!r} is not a BCP 47 language tag (e.g. en-US, de, zh-Hant-TW)")
    return value


def _timezone(value: str | None) -> str | None:
    if value is not None and not _known_zone(value):
        raise BadOption("job.timezone", f"{value[:60]!r} is not an IANA time zone name (e.g. Europe/Berlin, UTC)")
    return value


@functools.lru_cache(maxsize=256)
def _known_zone(name: str) -> bool:
    if not name or name.startswith(("/", ".")) or name in ("localtime", "posixrules", "Factory"):
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def _viewport(value: dict | None) -> Viewport | None:
    if value is None:
        return None
    for side in ("width", "height"):
        if not 1 <= value[side] <= MAX_VIEWPORT:
            raise BadOption(f"job.viewport.{side}", f"{value[side]} is not in 1..{MAX_VIEWPORT}")
    return Viewport(value["width"], value["height"])


def _cookie(c: dict, path: str, job_url: str) -> Cookie:
    if not c["name"] or _CONTROL.search(c["name"]) or any(ch in c["name"] for ch in ";= \t"):
        raise BadOption(f"{path}.name", "must be a non-empty cookie name without ';', '=', spaces or control characters")
    if _CONTROL.search(c["value"]) or ";" in c["value"]:
        raise BadOption(f"{path}.value", "must not hold ';' or control characters")
    url, domain, cookie_path = c.get("url"), c.get("domain"), c.get("path")
    if url is not None and domain is not None:
        raise BadOption(path, "give url or domain, not both")
    if url is not None and check_url(url) is not None or url == "about:blank":
        raise BadOption(f"{path}.url", "must be an http or https URL")
    if domain is not None and (not domain.strip(".") or any(ch in domain for ch in "/:; \t")):
        raise BadOption(f"{path}.domain", f"{domain[:60]!r} is not a host name")
    if cookie_path is not None and not cookie_path.startswith("/"):
        raise BadOption(f"{path}.path", "must start with '/'")
    if url is None and domain is None and not job_url.lower().startswith(("http://", "https://")):
        raise BadOption(path, f"has no url or domain, and the job's URL ({job_url[:60]}) cannot give it a scope")
    return Cookie(name=c["name"], value=c["value"], domain=domain, path=cookie_path, url=url,
                  secure=c.get("secure"), http_only=c.get("http_only"), same_site=_same_site(c.get("same_site"), path),
                  expires=c.get("expires"))


def _same_site(value: str | None, path: str) -> SameSite | None:
    if value is None:
        return None
    for member in SameSite:
        if value.lower() == member.value.lower():
            return member
    raise BadOption(f"{path}.same_site", f"unknown value {value!r} (one of {', '.join(SameSite)})")


def _block(entries) -> tuple[tuple[ResourceType, ...], tuple[str, ...]]:
    types: list[ResourceType] = []
    patterns: list[str] = []
    for i, entry in enumerate(entries):
        if not entry.strip():
            raise BadOption(f"job.block[{i}]", "must not be empty")
        if _GLOB_CHARS.intersection(entry):
            patterns.append(entry)
            continue
        try:
            types.append(ResourceType(entry))
        except ValueError:
            raise BadOption(f"job.block[{i}]", f"unknown resource type {entry[:60]!r} (one of {_TYPES};"
                                               " a URL glob holds one of * ? / . :)") from None
    return tuple(dict.fromkeys(types)), tuple(dict.fromkeys(patterns))


def _needs_screenshot(value: bool, req: JobRequest, path: str) -> bool:
    if value and not req.screenshot:
        raise BadOption(path, "needs screenshot = true")
    return value


def _selector(req: JobRequest) -> str | None:
    value = _nonblank(req.screenshot_selector, "job.screenshot_selector")
    if value is not None:
        _needs_screenshot(True, req, "job.screenshot_selector")
        if req.full_page:
            raise BadOption("job.screenshot_selector", "cannot be combined with full_page (an element is shot whole)")
    return value


# --- proxies --------------------------------------------------------------------------


def parse_proxy(value, path: str) -> Proxy:
    """A Proxy from a URL string (scheme://[user:pass@]host[:port]) or a {server, username?, password?} map.

    Messages name the field and the proxy's scheme://host:port, never its credentials."""
    if isinstance(value, str):
        server, username, password = _proxy_url(value, path)
        return Proxy(server, username, password)
    server, username, password = _proxy_url(value["server"], f"{path}.server")
    if username is not None and (value.get("username") is not None or value.get("password") is not None):
        raise BadOption(path, "credentials both in server and in username/password")
    if username is None:
        username, password = value.get("username"), value.get("password")
    if password is not None and username is None:
        raise BadOption(f"{path}.password", "given without a username")
    return Proxy(server, username, password)


def _proxy_url(text: str, path: str) -> tuple[str, str | None, str | None]:
    """(scheme://host:port, username, password) of a proxy URL; a bare host:port means http."""
    if "://" not in text:
        text = "http://" + text
    try:
        parts = urlsplit(text)
        host, port = parts.hostname, parts.port
    except ValueError:
        raise BadOption(path, "not a proxy URL (scheme://[user:pass@]host:port)") from None
    scheme = parts.scheme.lower()
    if scheme not in PROXY_SCHEMES:
        raise BadOption(path, f"scheme {scheme[:20]!r} is not one of {', '.join(PROXY_SCHEMES)}")
    if not host or any(ch in host for ch in " \t/\\"):
        raise BadOption(path, f"a proxy URL needs a host (scheme://[user:pass@]host:port)")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise BadOption(path, f"a proxy URL is scheme://host:port only, without a path, query or fragment"
                              f" ({scheme}://{host})")
    if port == 0:
        raise BadOption(path, f"port 0 is not a proxy port ({scheme}://{host})")
    shown = f"[{host}]" if ":" in host else host
    server = f"{scheme}://{shown}:{port or _DEFAULT_PORTS[scheme]}"
    if parts.username is None:
        if "@" in parts.netloc:
            raise BadOption(path, f"empty credentials before '@' ({server})")
        return server, None, None
    return server, unquote(parts.username), None if parts.password is None else unquote(parts.password)
