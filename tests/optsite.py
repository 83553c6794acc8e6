"""Helpers for the job-option tests (not collected): a site that records what it was sent, and a forward proxy."""
from __future__ import annotations

import base64
import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

# A 1x1 PNG.
PIXEL = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=")

PAGES = {
    "/echo": "<html><head><title>echo</title></head><body><p id='p'>echo</p></body></html>",
    "/assets": ("<html><head><title>assets</title><script src='/asset/s.js'></script></head><body>"
                "<img src='/asset/pic.png'><img src='/asset/skip.png?kind=glob'></body></html>"),
    "/held": "<html><head><title>held</title></head><body><img src='/held.png'></body></html>",
    "/timer": ("<html><head><title>timer</title></head><body><script>"
               "setTimeout(() => { window.ready = 42; }, 1000);</script></body></html>"),
    "/tall": ("<html><head><title>tall</title><style>html{scrollbar-width:none} body{margin:0} #box{width:120px;height:80px;background:red}"
              " #tall{height:3000px}</style></head><body><div id='box'></div><div id='tall'></div></body></html>"),
}


class _SiteHandler(BaseHTTPRequestHandler):
    server: "OptSite._Server"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def _reply(self, body: bytes, ctype: str, extra: dict | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Foxden-Test", "Yes")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            pass

    def do_GET(self):  # noqa: N802
        site = self.server.site
        path = urlsplit(self.path).path
        with site.lock:
            site.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
        if path == "/held.png":
            # Headers and part of the body, then nothing until the site stops: a load that never finishes.
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(PIXEL[:20])
            self.wfile.flush()
            site.stopping.wait(120)
        elif path.endswith(".png"):
            self._reply(PIXEL, "image/png")
        elif path.endswith(".js"):
            self._reply(b"window.scriptRan = true;", "text/javascript")
        else:
            self._reply(PAGES.get(path, "<html><head><title>none</title></head></html>").encode(),
                        "text/html; charset=utf-8")


class OptSite:
    """A threaded HTTP server on 127.0.0.1 that records every request (path and lower-case headers)."""

    class _Server(ThreadingHTTPServer):
        daemon_threads = True

    def __init__(self):
        self.seen: list[tuple[str, dict]] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.server = self._Server(("127.0.0.1", 0), _SiteHandler)
        self.server.site = self
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def requests_to(self, path_prefix: str) -> list[tuple[str, dict]]:
        with self.lock:
            return [(p, h) for p, h in self.seen if p.startswith(path_prefix)]

    def close(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


class _ProxyHandler(BaseHTTPRequestHandler):
    server: "ForwardProxy._Server"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_CONNECT(self):  # noqa: N802 - recorded, not tunnelled: the tests use plain http targets
        with self.server.proxy.lock:
            self.server.proxy.seen.append(("CONNECT " + self.path, self.headers.get("Proxy-Authorization")))
        self.send_response(502)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):  # noqa: N802
        proxy = self.server.proxy
        auth = self.headers.get("Proxy-Authorization")
        if proxy.credentials is not None and auth != "Basic " + base64.b64encode(proxy.credentials.encode()).decode():
            self.send_response(407)
            self.send_header("Proxy-Authenticate", 'Basic realm="foxden-test"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        with proxy.lock:
            proxy.seen.append((self.path, auth))
        target = urlsplit(self.path)
        # Every host is served by `upstream` (host, port) when given: a name that resolves nowhere
        # loads only through this proxy.
        host, port = proxy.upstream or (target.hostname, target.port or 80)
        conn = http.client.HTTPConnection(host, port, timeout=10)
        try:
            conn.request("GET", target.path + (f"?{target.query}" if target.query else ""),
                         headers={k: v for k, v in self.headers.items() if not k.lower().startswith("proxy-")})
            resp = conn.getresponse()
            body = resp.read()
        except OSError:
            self.send_response(502)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        finally:
            conn.close()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(k, v)
        self.send_header("X-Via-Test-Proxy", "1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            pass


class ForwardProxy:
    """A plain-HTTP forward proxy on 127.0.0.1 that records (absolute URL, Proxy-Authorization) of what it carried.

    With `credentials` ("user:pass") it answers 407 until the client authenticates."""

    class _Server(ThreadingHTTPServer):
        daemon_threads = True

    def __init__(self, credentials: str | None = None, upstream: tuple[str, int] | None = None):
        self.credentials = credentials
        self.upstream = upstream
        self.seen: list[tuple[str, str | None]] = []
        self.lock = threading.Lock()
        self.server = self._Server(("127.0.0.1", 0), _ProxyHandler)
        self.server.proxy = self
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


__all__ = ["ForwardProxy", "OptSite", "PAGES", "PIXEL", "png_size"]
