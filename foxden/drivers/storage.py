"""Storage state (cookies + localStorage per origin, Playwright's shape) read from and written to a browser context."""
from __future__ import annotations

import base64
import json
import time
from foxden.drivers.cdp import CdpError, CdpPipe, CdpTimeout

__all__ = ["READ_PAGE", "CdpStorage", "from_cdp_cookie", "playwright_apply", "playwright_state", "to_cdp_cookie"]

# The page a helper tab gets for each origin it visits to read or write that
# origin's localStorage: fulfilled inside the browser (Fetch / route), so the
# origin's server never sees the request.
_BLANK = "<!doctype html><html><head><title></title></head><body></body></html>"
_BLANK_B64 = base64.b64encode(_BLANK.encode()).decode()
# [origin, items] of a page's main frame; null where localStorage is denied (an opaque origin).
READ_PAGE = ("(() => { try { const out = []; for (let i = 0; i < localStorage.length; i++) {"
              " const k = localStorage.key(i); out.push({name: k, value: localStorage.getItem(k)}); }"
              " return [location.origin, out]; } catch (e) { return null; } })()")
_WRITE_LOCAL = "((items) => { for (const {name, value} of items) localStorage.setItem(name, value); return []; })(%s)"


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


class CdpStorage:
    """Keeps and writes the storage state of a ChromiumDriver's session contexts over CDP.

    Cookies are read from the context when asked (Storage.getCookies, one
    call). localStorage can only be read in a page of its origin, so it is
    read in the session's job page just before that page closes (one
    Runtime.evaluate: the main frame's origin) and kept here per session and
    origin: a snapshot costs two CDP calls, never a page of its own. Only a
    restore opens a helper tab, once per origin of the state."""

    def __init__(self, pipe: CdpPipe):
        self._pipe = pipe
        self.local: dict[str, dict[str, list]] = {}  # session -> origin -> [{name, value}]

    def remember(self, session: str, page_session: str, timeout_s: float = 1.0) -> None:
        """Keep the localStorage of the page's origin (a page that does not answer in time keeps what was kept)."""
        command = self._pipe.send("Runtime.evaluate", {"expression": READ_PAGE, "returnByValue": True}, page_session)
        try:
            reply = self._pipe.result(command, time.monotonic() + timeout_s)
        except CdpTimeout:
            self._pipe.discard(command)
            return
        except CdpError:
            return
        value = reply.get("result", {}).get("value")
        if isinstance(value, list) and len(value) == 2 and isinstance(value[1], list):
            origin, items = value
            if isinstance(origin, str) and origin.startswith(("http://", "https://")):
                self.local.setdefault(session, {})[origin] = items

    def read(self, session: str, context: str, deadline: float) -> dict:
        """The session's state: the context's cookies now, the localStorage kept per origin."""
        cookies = self._pipe.call("Storage.getCookies", {"browserContextId": context}, deadline=deadline)["cookies"]
        local = self.local.get(session, {})
        return {"cookies": [from_cdp_cookie(c) for c in cookies],
                "origins": [{"origin": o, "localStorage": items} for o, items in sorted(local.items()) if items]}

    def write(self, session: str, context: str, state: dict, deadline: float) -> None:
        """Put a state into the session's fresh context: its cookies, then each origin's localStorage."""
        if state.get("cookies"):
            self._pipe.call("Storage.setCookies", {"browserContextId": context,
                                                   "cookies": [to_cdp_cookie(c) for c in state["cookies"]]},
                            deadline=deadline)
        origins = {o["origin"]: o["localStorage"] for o in state.get("origins", ()) if o.get("localStorage")}
        self.local[session] = dict(origins)
        if origins:
            self._in_tab(context, origins, deadline)

    def forget(self, session: str) -> None:
        self.local.pop(session, None)

    def _in_tab(self, context: str, origins: dict[str, list], deadline: float) -> None:
        """Visit each origin in a helper tab of the context (answered inside the browser) and set its items."""
        pipe = self._pipe
        target = pipe.call("Target.createTarget", {"url": "about:blank", "browserContextId": context},
                           deadline=deadline)["targetId"]
        chained = pipe.on_event
        try:
            session = pipe.call("Target.attachToTarget", {"targetId": target, "flatten": True},
                                deadline=deadline)["sessionId"]
            pipe.on_event = _fulfilling(pipe, session, chained)
            pipe.call("Fetch.enable", {"patterns": [{"urlPattern": "*", "requestStage": "Request"}]}, session, deadline)
            for origin, items in sorted(origins.items()):
                nav = pipe.call("Page.navigate", {"url": origin + "/"}, session, deadline)
                if not nav.get("errorText"):
                    self._when_at(session, origin, _WRITE_LOCAL % json.dumps(items), deadline)
        finally:
            pipe.on_event = chained
            pipe.discard(pipe.send("Target.closeTarget", {"targetId": target}))

    def _when_at(self, session: str, origin: str, script: str, deadline: float) -> None:
        """Evaluate `script` once the tab's document is `origin`'s (Page.navigate may answer before it commits)."""
        expression = f"(location.origin === {json.dumps(origin)}) ? ({script}) : {json.dumps(_NOT_YET)}"
        while True:
            reply = self._pipe.call("Runtime.evaluate", {"expression": expression, "returnByValue": True},
                                    session, deadline)
            if reply.get("result", {}).get("value") != _NOT_YET:
                return
            if time.monotonic() > deadline:
                raise CdpTimeout(f"storage tab: not at {origin} in time")
            time.sleep(0.005)


def _fulfilling(pipe: CdpPipe, tab: str, chained):
    """An event handler that answers the helper tab's requests with a blank page and passes the rest on."""
    def on_event(method: str, params: dict, session: str | None) -> None:
        if method == "Fetch.requestPaused" and session == tab:
            pipe.discard(pipe.send("Fetch.fulfillRequest", {
                "requestId": params["requestId"], "responseCode": 200, "body": _BLANK_B64,
                "responseHeaders": [{"name": "Content-Type", "value": "text/html; charset=utf-8"}]}, session))
        elif chained is not None:
            chained(method, params, session)
    return on_event


_NOT_YET = "__foxden_not_at_origin_yet__"


def playwright_state(cookies: list[dict], local: dict[str, list]) -> dict:
    """A storage state from Playwright's context.cookies() and the localStorage kept per origin."""
    keys = ("name", "value", "domain", "path", "expires", "httpOnly", "secure", "sameSite")
    return {"cookies": [{k: c[k] for k in keys if k in c} for c in cookies],
            "origins": [{"origin": o, "localStorage": items} for o, items in sorted(local.items()) if items]}


def playwright_apply(context, state: dict) -> dict[str, list]:
    """Put a state into a fresh Playwright context: cookies, then each origin's localStorage (a routed blank page).

    Returns the localStorage set, per origin."""
    if state.get("cookies"):
        context.add_cookies([{k: v for k, v in c.items() if not (k == "expires" and v < 0)}
                             for c in state["cookies"]])
    origins = {o["origin"]: o["localStorage"] for o in state.get("origins", ()) if o.get("localStorage")}
    if not origins:
        return {}
    page = context.new_page()
    try:
        page.route("**/*", lambda route: route.fulfill(status=200, content_type="text/html", body=_BLANK))
        for origin, items in sorted(origins.items()):
            page.goto(origin + "/", wait_until="commit")
            page.evaluate("(items) => { for (const {name, value} of items) localStorage.setItem(name, value); }",
                          items)
    finally:
        page.close()
    return origins
