"""A job's options in Playwright's terms: context kwargs, cookies, what to block (pure functions)."""
from __future__ import annotations

from urllib.parse import urlsplit

from foxden.protocols.options import Cookie, JobOptions, Proxy, glob_matches

__all__ = ["blocks", "context_kwargs", "cookie_params", "page_kwargs", "proxy_param"]


def proxy_param(proxy: Proxy) -> dict:
    """Playwright's proxy setting for a browser context."""
    param = {"server": proxy.server}
    if proxy.username is not None:
        param["username"] = proxy.username
        param["password"] = proxy.password or ""
    return param


def context_kwargs(options: JobOptions, *, session: bool) -> dict:
    """new_context() kwargs: what fixes a context (proxy, identity); for a one-job context also the page's.

    A session's context outlives its first job, so its viewport and headers
    are set per page instead (page_kwargs)."""
    kw: dict = {}
    if options.proxy is not None:
        kw["proxy"] = proxy_param(options.proxy)
    if options.user_agent is not None:
        kw["user_agent"] = options.user_agent
    if options.locale is not None:
        kw["locale"] = options.locale
    if options.timezone is not None:
        kw["timezone_id"] = options.timezone
    if not session:
        kw.update(page_kwargs(options))
    return kw


def page_kwargs(options: JobOptions) -> dict:
    """The per-page settings as context kwargs: viewport and extra headers."""
    kw: dict = {}
    if options.viewport is not None:
        kw["viewport"] = {"width": options.viewport.width, "height": options.viewport.height}
    if options.headers:
        kw["extra_http_headers"] = dict(options.headers)
    return kw


def cookie_params(cookies: tuple[Cookie, ...], job_url: str) -> list[dict]:
    """add_cookies() arguments; a cookie with neither url nor domain is scoped to the job's URL."""
    out = []
    for c in cookies:
        p: dict = {"name": c.name, "value": c.value}
        if c.domain is not None:
            p["domain"] = c.domain
            p["path"] = c.path or "/"
        else:
            p["url"] = c.url or job_url
            if c.path is not None:  # Playwright takes a path with a domain only; the URL's path is its scope
                del p["url"]
                p["domain"] = urlsplit(c.url or job_url).hostname
                p["path"] = c.path
        for key, value in (("secure", c.secure), ("httpOnly", c.http_only), ("expires", c.expires)):
            if value is not None:
                p[key] = value
        if c.same_site is not None:
            p["sameSite"] = c.same_site.value
        out.append(p)
    return out


def blocks(options: JobOptions, url: str, resource_type: str) -> bool:
    """Whether a request of the page is blocked: its type is listed, or its whole URL matches a glob.

    In a glob `*` matches any characters (slashes too) and `?` one, so
    "*.woff2" blocks every WOFF2 font and "https://ads.example/*" a whole site."""
    if resource_type in options.block_types:
        return True
    return any(glob_matches(pattern, url) for pattern in options.block_patterns)
