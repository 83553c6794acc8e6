"""When a CDP job's navigation counts as done, and the wait for a JavaScript condition, as pure helpers."""
from __future__ import annotations

import json
import re

from foxden.protocols.options import WaitUntil

__all__ = ["LIFECYCLE", "IDLE_S", "NetworkTally", "navigation_done", "wait_function_expression"]

# The main frame's lifecycle events (Page.lifecycleEvent names) each
# wait_until needs for the navigation's document. "commit" needs none: the
# reply to Page.navigate comes once the response arrived and the new document
# was committed. networkidle waits for load, then for the page's own request
# count (NetworkTally) to stay at zero for IDLE_S after both load and its last
# request: Chromium's networkIdle lifecycle event fired while a fetch begun
# after load was still in flight.
LIFECYCLE: dict[WaitUntil, tuple[str, ...]] = {
    WaitUntil.LOAD: ("load",),
    WaitUntil.DOMCONTENTLOADED: ("DOMContentLoaded",),
    WaitUntil.NETWORKIDLE: ("load",),
    WaitUntil.COMMIT: (),
}

IDLE_S = 0.5  # Playwright's networkidle: no request in flight for 500 ms


class NetworkTally:
    """A page's requests in flight (from its Network events) and since when none has been."""

    def __init__(self, now: float):
        self.inflight: set[str] = set()
        self.quiet_since: float | None = now

    def started(self, request: str) -> None:
        self.inflight.add(request)
        self.quiet_since = None

    def ended(self, request: str, now: float) -> None:
        if request in self.inflight:
            self.inflight.discard(request)
            if not self.inflight:
                self.quiet_since = now

    def loaded(self, now: float) -> None:
        """The document's load event: the quiet window starts no earlier (a timer set in onload gets its 500 ms)."""
        if self.quiet_since is not None:
            self.quiet_since = max(self.quiet_since, now)

    def idle_at(self) -> float | None:
        """When the page counts as network-idle (monotonic), or None while a request is in flight."""
        return None if self.quiet_since is None else self.quiet_since + IDLE_S


def navigation_done(wait_until: WaitUntil, loader: str | None, seen: set[tuple[str, str]]) -> bool:
    """True once the lifecycle events `wait_until` needs fired for document `loader` (seen: (loader, name))."""
    if loader is None:
        return True  # no new document (a same-document navigation): nothing to wait for
    return all((loader, name) in seen for name in LIFECYCLE[wait_until])


# Polls the expression (evaluated as a global script, called if it is a
# function, awaited if a promise) every 50 ms until it is truthy. Its first
# error rejects: a script error ends the job at once instead of at its budget.
_WAIT_FUNCTION = """new Promise((resolve, reject) => {
  const src = %s;
  const later = window.setTimeout.bind(window);
  const check = async () => {
    let v;
    try { v = (0, eval)(src); if (typeof v === 'function') v = v(); v = await v; }
    catch (e) { reject(e); return; }
    if (v) resolve(true); else later(check, 50);
  };
  check();
})"""


_FUNCTION_SOURCE = re.compile(r"^(async)?\s*function(\s|\()")


def wait_function_expression(source: str) -> str:
    """The Runtime.evaluate expression that waits until the JavaScript `source` is truthy."""
    source = source.strip()
    if _FUNCTION_SOURCE.match(source):  # a function expression, not a declaration
        source = f"({source})"
    return _WAIT_FUNCTION % json.dumps(source)
