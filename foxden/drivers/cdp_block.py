"""A job's request blocking on CDP: resource types and URL globs as Fetch patterns, and the one decision."""
from __future__ import annotations


from foxden.protocols.options import JobOptions, ResourceType, glob_matches

__all__ = ["CDP_TYPES", "glob_matches", "blocks", "fetch_patterns", "websocket_blocker", "WEBSOCKET_BLOCKER"]

# foxden's resource types (Playwright's names) as CDP Network.ResourceType
# values. "other" is every kind that is neither a document nor one of the
# named ones. WebSocket handshakes are never paused by the Fetch domain, and
# Network.setBlockedURLs lets them through too (Chromium 156, tried): they
# are blocked in the page instead (WEBSOCKET_BLOCKER).
CDP_TYPES: dict[ResourceType, tuple[str, ...]] = {
    ResourceType.IMAGE: ("Image",),
    ResourceType.MEDIA: ("Media",),
    ResourceType.FONT: ("Font",),
    ResourceType.STYLESHEET: ("Stylesheet",),
    ResourceType.SCRIPT: ("Script",),
    ResourceType.XHR: ("XHR",),
    ResourceType.FETCH: ("Fetch",),
    ResourceType.WEBSOCKET: ("WebSocket",),
    ResourceType.OTHER: ("Other", "TextTrack", "EventSource", "Manifest", "Ping", "CSPViolationReport",
                         "Prefetch", "SignedExchange", "FedCM"),
}

# Runs in every frame of the page before its own scripts: WebSocket (and
# WebSocketStream) never open a connection; a socket fails as one that the
# browser blocked does (an error event, then close 1006), so pages go on.
# Playwright's routeWebSocket replaces the constructor the same way.
WEBSOCKET_BLOCKER = """(() => {
  if (!window.WebSocket) return;
  class WebSocket extends EventTarget {
    constructor(url) {
      super();
      Object.assign(this, {url: String(new URL(url, location.href)), readyState: 3, protocol: '', extensions: '',
                           bufferedAmount: 0, binaryType: 'blob', onopen: null, onmessage: null, onerror: null,
                           onclose: null});
      setTimeout(() => {
        const error = new Event('error');
        if (this.onerror) this.onerror(error);
        this.dispatchEvent(error);
        const close = new CloseEvent('close', {code: 1006, wasClean: false});
        if (this.onclose) this.onclose(close);
        this.dispatchEvent(close);
      }, 0);
    }
    send() { throw new DOMException('WebSocket blocked by the job', 'InvalidStateError'); }
    close() {}
  }
  Object.assign(WebSocket, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
  window.WebSocket = WebSocket;
  if (window.WebSocketStream) {
    window.WebSocketStream = function WebSocketStream() {
      throw new DOMException('WebSocket blocked by the job', 'NetworkError');
    };
  }
})();"""


def blocks(options: JobOptions, url: str, cdp_type: str | None) -> bool:
    """Whether a request of CDP resource type `cdp_type` to `url` is blocked by the job's options."""
    for kind in options.block_types:
        if cdp_type in CDP_TYPES[kind]:
            return True
    return any(glob_matches(g, url) for g in options.block_patterns)


def fetch_patterns(options: JobOptions, auth: bool) -> list[dict] | None:
    """The Fetch.enable patterns the job needs, or None when it needs no Fetch domain at all.

    With proxy credentials (`auth`) every request is paused: Chromium asks for
    credentials only for requests the Fetch domain intercepts."""
    if auth:
        return [{"urlPattern": "*", "requestStage": "Request"}]
    patterns = [{"urlPattern": "*", "resourceType": t, "requestStage": "Request"}
                for kind in options.block_types if kind is not ResourceType.WEBSOCKET for t in CDP_TYPES[kind]]
    patterns += [{"urlPattern": g, "requestStage": "Request"} for g in options.block_patterns]
    return patterns or None


def websocket_blocker(options: JobOptions) -> str | None:
    """The script (Page.addScriptToEvaluateOnNewDocument) that blocks WebSockets, if the job blocks them."""
    return WEBSOCKET_BLOCKER if ResourceType.WEBSOCKET in options.block_types else None
