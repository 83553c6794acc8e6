"""A small site on 127.0.0.1 for the demo and the tests: pages, cookies, slow and hanging responses."""
from __future__ import annotations

import html
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class _Handler(BaseHTTPRequestHandler):
    server: "Site._Server"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # keep test and demo output clean
        pass

    def _send(self, body: str, status: int = 200, headers: dict | None = None) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the browser went away first (killed, timed out): not the site's problem

    def do_GET(self):  # noqa: N802 - http.server's naming
        parts = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(parts.query).items()}
        site = self.server.site
        with site.lock:
            site.requests.append(self.path)
        path = parts.path
        if path == "/" or path.startswith("/page/"):
            n = path.rsplit("/", 1)[-1] or "index"
            items = "".join(f"<li><a href='/page/{i}'>item {i}</a></li>" for i in range(20))
            self._send(f"<html><head><title>Page {html.escape(n)}</title></head>"
                       f"<body><h1 id='title'>Page {html.escape(n)}</h1><ul>{items}</ul></body></html>")
        elif path == "/slow":
            time.sleep(min(float(q.get("ms", "500")), 60_000) / 1000.0)
            self._send("<html><head><title>slow</title></head><body>slow</body></html>")
        elif path == "/hang":
            # Headers and half a body, then nothing: a response that never finishes.
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            self.wfile.write(b"<html><head><title>hang</title></head><body>")
            self.wfile.flush()
            site.stopping.wait(600)
        elif path == "/cookie/set":
            v = q.get("v", "1")
            self._send(f"<html><head><title>set {html.escape(v)}</title></head><body>ok</body></html>",
                       headers={"Set-Cookie": f"foxden={v}; Path=/"})
        elif path == "/cookie/get":
            cookie = self.headers.get("Cookie", "")
            self._send(f"<html><head><title>cookie {html.escape(cookie)}</title></head><body></body></html>")
        elif path == "/delayed-element":
            ms = int(q.get("ms", "200"))
            self._send("<html><head><title>delayed</title></head><body><script>"
                       f"setTimeout(() => {{ const d = document.createElement('div'); d.id = 'late';"
                       f" d.textContent = 'here'; document.body.appendChild(d); }}, {ms});</script></body></html>")
        elif path == "/csp":
            # A page whose policy forbids every script: a job's eval must still run.
            self._send("<html><head><title>csp</title></head><body>strict</body></html>",
                       headers={"Content-Security-Policy": "script-src 'none'"})
        elif path == "/redirect":
            self.send_response(302)
            self.send_header("Location", q.get("to", "/"))
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path == "/dialogs":
            self._send("<html><head><title>dialogs</title></head><body><script>"
                       "alert('a'); window.answer = confirm('b');</script></body></html>")
        elif path.startswith("/status/"):
            code = int(path.rsplit("/", 1)[-1])
            self._send(f"<html><head><title>status {code}</title></head><body></body></html>", status=code)
        else:
            self._send("<html><head><title>not found</title></head></html>", status=404)


class Site:
    """A threaded HTTP server on 127.0.0.1 with a free port; a context manager."""

    class _Server(ThreadingHTTPServer):
        daemon_threads = True
        site: "Site"

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.requests: list[str] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.server = self._Server((host, port), _Handler)
        self.server.site = self
        self.thread = threading.Thread(target=self.server.serve_forever, name="foxden-site", daemon=True)

    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base + path

    def start(self) -> "Site":
        self.thread.start()
        return self

    def close(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "Site":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
