"""Storage state (cookies + localStorage per origin, Playwright's shape) read from and written to a browser context."""
from __future__ import annotations

import base64
import json
from collections.abc import Callable

from foxden.drivers.cdp import CdpPipe

__all__ = ["CdpStorage", "OriginTracker", "playwright_apply", "to_cdp_cookie", "from_cdp_cookie"]

# The page a helper tab gets for each origin it visits to read or write that
# origin's localStorage: fulfilled inside the browser (Fetch / route), so the
# origin's server never sees the request.
_BLANK = "<!doctype html><html><head><title></title></head><body></body></html>"
_BLANK_B64 = base64.b64encode(_BLANK.encode()).decode()
_READ_LOCAL = ("(() => { const out = []; for (let i = 0; i < localStorage.length; i++) {"
               " const k = localStorage.key(i); out.push({name: k, value: localStorage.getItem(k)}); } return out; })()")
_WRITE_LOCAL = "((items) => { for (const {name, value} of items) localStorage.setItem(name, value); return true; })(%s)"


def from_cdp_cookie(c: dict) -> dict:
    """A cookie from CDP's Storage.getCookies in Playwright's storage-state shape (sameSite default Lax, as Playwright)."""
    return {"name": c["name"], "value": c["value"], "domain": c["domain"], "path": c.get("path", "/"),
            "expires": -1 if c.get("session") or c.get("expires", -1) < 0 else c["expires"],
            "httpOnly": bool(c.get("httpOnly")), "secure": bool(c.get("secure")),
            "sameSite": c.get("sameSite") or "Lax"}


def to_cdp_cookie(c: dict) -> dict:
    """A storage-state cookie as CDP's Storage.setCookies takes it (no expires: a session cookie)."""
    out = {"name": c["name"], "value": c["value"], "domain": c["domain"], "path": c.get("path", "/"),
           "httpOnly": bool(c.get("httpOnly")), "secure": bool(c.get("secure")), "sameSite": c.get("sameSite", "Lax")}
    if c.get("expires", -1) >= 0:
        out["expires"] = c["expires"]
    return out


def _origin_of(url: str) -> str | None:
    if not url.startswith(("http://", "https://")):
        return None
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    return f"{scheme}://{host}" if host else None


class OriginTracker:
    """Chained into a CdpPipe's event handler: the http(s) origins the most recent page navigated to.

    A browser runs one job at a time, so when a session's job has ended the
    page that navigated last is that job's: its origins are the ones whose
    localStorage the job may have changed."""

    def __init__(self, pipe: CdpPipe):
        self._pipe = pipe
        self._next = pipe.on_event
        self._page: str | None = None
        self.recent: set[str] = set()
        self.fulfil: str | None = None  # a helper tab's CDP session: its requests are answered with a blank page
        self.navigated: set[str] = set()  # origins a helper tab has committed to
        pipe.on_event = self.on_event

    def on_event(self, method: str, params: dict, session: str | None) -> None:
        if method == "Fetch.requestPaused" and session is not None and session == self.fulfil:
            self._pipe.discard(self._pipe.send("Fetch.fulfillRequest", {
                "requestId": params["requestId"], "responseCode": 200, "body": _BLANK_B64,
                "responseHeaders": [{"name": "Content-Type", "value": "text/html; charset=utf-8"}]}, session))
            return
        if method == "Page.frameNavigated" and session is not None:
            origin = _origin_of(params.get("frame", {}).get("url", ""))
            if session == self.fulfil:
                if origin:
                    self.navigated.add(origin)
                return
            if session != self._page:
                self._page, self.recent = session, set()
            if origin:
                self.recent.add(origin)
        if self._next is not None:
            self._next(method, params, session)

    def take(self) -> set[str]:
        """The origins seen since the last take (of the page that navigated last)."""
        recent, self.recent, self._page = self.recent, set(), None
        return recent


class CdpStorage:
    """Reads and writes one browser context's storage state over CDP (the ChromiumDriver's helper)."""

    def __init__(self, pipe: CdpPipe):
        self._pipe = pipe
        self.tracker = OriginTracker(pipe)
        self.origins: dict[str, set[str]] = {}  # browser context -> origins its pages have been at

    def read(self, context: str, deadline: float) -> dict:
        """The context's cookies and the localStorage of every origin its pages have been at."""
        origins = self.origins.setdefault(context, set())
        origins |= self.tracker.take()
        cookies = self._pipe.call("Storage.getCookies", {"browserContextId": context}, deadline=deadline)["cookies"]
        local = self._in_tab(context, sorted(origins), _READ_LOCAL, deadline) if origins else {}
        return {"cookies": [from_cdp_cookie(c) for c in cookies],
                "origins": [{"origin": o, "localStorage": items} for o, items in sorted(local.items()) if items]}

    def write(self, context: str, state: dict, deadline: float) -> None:
        """Put a state into a fresh context: its cookies, then each origin's localStorage."""
        if state.get("cookies"):
            self._pipe.call("Storage.setCookies", {"browserContextId": context,
                                                   "cookies": [to_cdp_cookie(c) for c in state["cookies"]]},
                            deadline=deadline)
        scripts = {o["origin"]: _WRITE_LOCAL % json.dumps(o["localStorage"])
                   for o in state.get("origins", ()) if o.get("localStorage")}
        self.origins[context] = set(scripts)
        if scripts:
            self._in_tab(context, sorted(scripts), scripts.get, deadline)

    def forget(self, context: str) -> None:
        self.origins.pop(context, None)

    def _in_tab(self, context: str, origins: list[str], script: str | Callable[[str], str],
                deadline: float) -> dict[str, list]:
        """Visit each origin in a helper tab of the context (fulfilled locally) and evaluate a script there."""
        pipe = self._pipe
        target = pipe.call("Target.createTarget", {"url": "about:blank", "browserContextId": context},
                           deadline=deadline)["targetId"]
        out: dict[str, list] = {}
        try:
            session = pipe.call("Target.attachToTarget", {"targetId": target, "flatten": True},
                                deadline=deadline)["sessionId"]
            self.tracker.fulfil = session
            pipe.discard(pipe.send("Page.enable", None, session))
            pipe.call("Fetch.enable", {"patterns": [{"urlPattern": "*", "requestStage": "Request"}]}, session, deadline)
            for origin in origins:
                self.tracker.navigated.discard(origin)
                nav = pipe.call("Page.navigate", {"url": origin + "/"}, session, deadline)
                if nav.get("errorText"):
                    continue
                pipe.wait_until(lambda o=origin: o in self.tracker.navigated, deadline, "storage tab")
                source = script if isinstance(script, str) else script(origin)
                reply = pipe.call("Runtime.evaluate", {"expression": source, "returnByValue": True}, session, deadline)
                value = reply.get("result", {}).get("value")
                out[origin] = value if isinstance(value, list) else []
        finally:
            self.tracker.fulfil = None
            pipe.discard(pipe.send("Target.closeTarget", {"targetId": target}))
        return out


def playwright_apply(context, state: dict) -> None:
    """Put a state into a fresh Playwright context: cookies, then each origin's localStorage (a routed blank page)."""
    if state.get("cookies"):
        context.add_cookies([{k: v for k, v in c.items() if not (k == "expires" and v < 0)}
                             for c in state["cookies"]])
    origins = [o for o in state.get("origins", ()) if o.get("localStorage")]
    if not origins:
        return
    page = context.new_page()
    try:
        page.route("**/*", lambda route: route.fulfill(status=200, content_type="text/html", body=_BLANK))
        for o in origins:
            page.goto(o["origin"] + "/")
            page.evaluate("(items) => { for (const {name, value} of items) localStorage.setItem(name, value); }",
                          o["localStorage"])
    finally:
        page.close()
