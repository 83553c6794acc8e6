"""A job's page options (issue #14), as validated values every driver reads the same way."""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["WaitUntil", "ResourceType", "SameSite", "Viewport", "Cookie", "Proxy", "JobOptions", "DEFAULT", "glob_matches"]

# This module is the contract between the wire (foxden.protocols.wire decodes
# and validates a client's job into these) and the drivers (Chromium over CDP,
# Playwright for Firefox and Camoufox), which only ever see a JobOptions.
# Everything here crosses actors, so it is listed for the transport's
# unpickler (foxden.transport.unpickle.MESSAGE_MODULES).


class WaitUntil(StrEnum):
    """When navigation counts as done (Playwright's `waitUntil` names)."""

    LOAD = "load"
    DOMCONTENTLOADED = "domcontentloaded"
    NETWORKIDLE = "networkidle"  # no network request for 500 ms
    COMMIT = "commit"  # the response arrived and the document began to load


class ResourceType(StrEnum):
    """Request kinds a job may block (Playwright's resource types, the ones that mean the same everywhere)."""

    IMAGE = "image"
    MEDIA = "media"
    FONT = "font"
    STYLESHEET = "stylesheet"
    SCRIPT = "script"
    XHR = "xhr"
    FETCH = "fetch"
    WEBSOCKET = "websocket"
    OTHER = "other"


class SameSite(StrEnum):
    """A cookie's SameSite attribute."""

    STRICT = "Strict"
    LAX = "Lax"
    NONE = "None"


@dataclass(frozen=True)
class Viewport:
    """The page's viewport in CSS pixels (both >= 1)."""

    width: int
    height: int


@dataclass(frozen=True)
class Cookie:
    """One cookie set before navigation; with neither `url` nor `domain` it is scoped to the job's URL."""

    name: str
    value: str
    domain: str | None = None
    path: str | None = None
    url: str | None = None
    secure: bool | None = None
    http_only: bool | None = None
    same_site: SameSite | None = None
    expires: float | None = None  # Unix time in seconds; None = a session cookie


@dataclass(frozen=True)
class Proxy:
    """Where a job's (or a session's) browser context sends its traffic; `server` is scheme://host:port."""

    server: str
    username: str | None = None
    password: str | None = None

    def __repr__(self) -> str:
        # Credentials never reach logs, status or metrics, even through a repr.
        user = "" if self.username is None else "***@"
        return f"Proxy({user}{self.server})"

    __str__ = __repr__


@dataclass(frozen=True)
class JobOptions:
    """Every page option of one job; the defaults mean "as before #14" (wait for load, nothing extra)."""

    wait_until: WaitUntil = WaitUntil.LOAD
    wait_for_function: str | None = None  # a JavaScript expression; the job waits until it is truthy
    headers: tuple[tuple[str, str], ...] = ()  # extra request headers, in order
    user_agent: str | None = None
    locale: str | None = None  # navigator.language and Accept-Language
    timezone: str | None = None  # an IANA name, e.g. "Europe/Berlin"
    viewport: Viewport | None = None
    cookies: tuple[Cookie, ...] = ()
    block_types: tuple[ResourceType, ...] = ()
    block_patterns: tuple[str, ...] = ()  # URL globs ("*.woff2", "https://ads.example/*")
    proxy: Proxy | None = None
    html: bool = False  # result.html: the serialized DOM after the waits
    full_page: bool = False  # the screenshot covers the whole page, not the viewport
    screenshot_selector: str | None = None  # the screenshot covers this element only
    pdf: bool = False  # result.pdf (Chromium only; other engines answer unsupported_option)

    @property
    def context_options(self) -> tuple:
        """What fixes a browser context at creation (a session keeps these across its jobs and browsers)."""
        return (self.proxy, self.user_agent, self.locale, self.timezone)


DEFAULT = JobOptions()


@functools.lru_cache(maxsize=256)
def _glob_regex(glob: str) -> re.Pattern:
    out, i = [], 0
    while i < len(glob):
        ch = glob[i]
        if ch == "\\" and i + 1 < len(glob):
            out.append(re.escape(glob[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "*" else "." if ch == "?" else re.escape(ch))
        i += 1
    return re.compile("".join(out), re.S)


def glob_matches(glob: str, url: str) -> bool:
    """True if the whole `url` (without its #fragment) matches `glob`.

    The one glob semantics of `block` on every engine, CDP's Fetch urlPattern's, so that Chromium's own
    filter and this check agree: `*` is any run of characters (`/` included), `?` exactly
    one, a backslash makes the next character literal; everything else is
    itself. "*.woff2" blocks every URL ending in .woff2; "*://ads.example/*"
    every URL on that host."""
    return _glob_regex(glob).fullmatch(url.split("#", 1)[0]) is not None
