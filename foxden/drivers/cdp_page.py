"""A job's context and page options on CDP: the commands that set them up, as pure functions."""
from __future__ import annotations

import dataclasses

from foxden.drivers.cdp_block import fetch_patterns, websocket_blocker
from foxden.protocols.options import DEFAULT, Cookie, JobOptions, Proxy, Viewport

__all__ = ["VIEWPORT", "context_params", "effective_options", "viewport_metrics", "cookie_param",
           "page_commands", "auth_response", "option_step"]

# Playwright's default viewport (and screen), so pages lay out alike on either driver.
VIEWPORT = {"width": 1280, "height": 720, "deviceScaleFactor": 1, "mobile": False,
            "screenWidth": 1280, "screenHeight": 720}

# Chromium sends loopback traffic around a proxy unless told otherwise; a
# job's proxy carries all of its context's traffic.
_BYPASS_NOTHING = "<-loopback>"


def context_params(proxy: Proxy | None) -> dict:
    """Target.createBrowserContext params for a context behind `proxy` (credentials go by Fetch.authRequired)."""
    if proxy is None:
        return {}
    return {"proxyServer": proxy.server, "proxyBypassList": _BYPASS_NOTHING}


def effective_options(first: JobOptions | None, options: JobOptions) -> JobOptions:
    """A session job's options: its own, except the context options (proxy, identity) of the session's first job."""
    if first is None or first.context_options == options.context_options:
        return options
    return dataclasses.replace(options, proxy=first.proxy, user_agent=first.user_agent,
                               locale=first.locale, timezone=first.timezone)


def viewport_metrics(viewport: Viewport | None) -> dict:
    """Emulation.setDeviceMetricsOverride params: the job's viewport (and screen), else Playwright's default."""
    if viewport is None:
        return VIEWPORT
    return {**VIEWPORT, "width": viewport.width, "height": viewport.height,
            "screenWidth": viewport.width, "screenHeight": viewport.height}


def cookie_param(cookie: Cookie, job_url: str) -> dict:
    """A CDP Network.CookieParam; with neither url nor domain the cookie is scoped to the job's URL."""
    param: dict = {"name": cookie.name, "value": cookie.value}
    if cookie.url is not None:
        param["url"] = cookie.url
    elif cookie.domain is not None:
        param["domain"] = cookie.domain
        param["path"] = cookie.path or "/"
    else:
        param["url"] = job_url
    if cookie.path is not None:
        param["path"] = cookie.path
    for key, value in (("secure", cookie.secure), ("httpOnly", cookie.http_only), ("expires", cookie.expires)):
        if value is not None:
            param[key] = value
    if cookie.same_site is not None:
        param["sameSite"] = cookie.same_site.value
    return param


def page_commands(options: JobOptions, job_url: str, default_ua: str) -> list[tuple[str, dict]]:
    """The commands that apply the job's page options before it navigates, in order (none for the defaults).

    The viewport command is always sent by the driver (viewport_metrics)."""
    if options == DEFAULT:
        return []
    out: list[tuple[str, dict]] = []
    if options.headers:
        out.append(("Network.setExtraHTTPHeaders", {"headers": dict(options.headers)}))
    if options.user_agent is not None or options.locale is not None:
        ua: dict = {"userAgent": options.user_agent or default_ua}
        if options.locale is not None:
            ua["acceptLanguage"] = options.locale
        out.append(("Emulation.setUserAgentOverride", ua))
    if options.locale is not None:
        out.append(("Emulation.setLocaleOverride", {"locale": options.locale}))
    if options.timezone is not None:
        out.append(("Emulation.setTimezoneOverride", {"timezoneId": options.timezone}))
    if websocket_blocker(options) is not None:
        out.append(("Page.addScriptToEvaluateOnNewDocument", {"source": websocket_blocker(options)}))
    auth = options.proxy is not None and options.proxy.username is not None
    patterns = fetch_patterns(options, auth)
    if patterns is not None:
        out.append(("Fetch.enable", {"patterns": patterns, "handleAuthRequests": auth}))
    if options.cookies:
        out.append(("Network.setCookies", {"cookies": [cookie_param(c, job_url) for c in options.cookies]}))
    return out


def auth_response(source: str | None, proxy: Proxy | None) -> dict:
    """Fetch.continueWithAuth's authChallengeResponse: the proxy's credentials; nothing for a site's own auth.

    Credentials the proxy refuses are not offered again by Chromium: the
    navigation fails with net::ERR_INVALID_AUTH_CREDENTIALS (tested)."""
    if source != "Proxy" or proxy is None or proxy.username is None:
        return {"response": "Default"}
    return {"response": "ProvideCredentials", "username": proxy.username, "password": proxy.password or ""}


_STEP_OF = {
    "Network.setExtraHTTPHeaders": "headers", "Emulation.setUserAgentOverride": "user_agent",
    "Emulation.setLocaleOverride": "locale", "Emulation.setTimezoneOverride": "timezone",
    "Page.addScriptToEvaluateOnNewDocument": "block", "Fetch.enable": "block", "Network.setCookies": "cookies",
}


def option_step(method: str) -> str:
    """The job step (an option's name) a page_commands() command applies, for its error."""
    return _STEP_OF.get(method, "options")
