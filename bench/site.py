"""The benchmark's fixture site on 127.0.0.1: pages of realistic weight, all generated and served from memory.

Kinds of page (every byte deterministic, nothing external: no fonts, no CDNs):

- ``/article/K`` (K < ARTICLES): a static article of 50-150 KB of HTML, a
  shared stylesheet, three generated PNG photos and one SVG chart;
- ``/list/K`` (K < LISTS): a page that renders 200 items client-side from
  inline JSON (and sets its title from script);
- ``/reviews?page=N`` (1 <= N <= REVIEW_PAGES): a paginated listing, 20 reviews
  a page, with rel=prev/next links;
- ``/tiny``: the smallest page, for the latency probe.

``python -m bench.site`` serves it and prints ``{"port": N}``; it stops when
its standard input closes (so it never outlives the benchmark that started it).
"""
from __future__ import annotations

import html
import json
import random
import struct
import sys
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

ARTICLES = 24
LISTS = 16
REVIEW_PAGES = 50
PHOTOS = 16
CHARTS = 8
LIST_ITEMS = 200
REVIEWS_PER_PAGE = 25

_WORDS = (
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore "
    "magna aliqua enim ad minim veniam quis nostrud exercitation ullamco laboris nisi aliquip ex ea commodo "
    "consequat duis aute irure in reprehenderit voluptate velit esse cillum fugiat nulla pariatur excepteur sint "
    "occaecat cupidatat non proident sunt culpa qui officia deserunt mollit anim id est laborum curabitur pretium "
    "tincidunt lacus nulla gravida orci a odio nullam varius turpis et commodo pharetra est eros bibendum elit nec "
    "luctus magna felis sollicitudin mauris integer in mauris eu nibh euismod gravida duis ac tellus et risus "
    "vulputate vehicula donec lobortis risus a elit etiam tempor ut ullamcorper ligula eu tempor congue eros est "
    "euismod turpis id tincidunt sapien risus a quam maecenas fermentum consequat mi donec fermentum pellentesque "
    "malesuada nulla a mi duis sapien sem aliquet nec commodo eget consequat quis neque aliquam faucibus elit ut "
    "dictum aliquet felis nisl adipiscing sapien sed malesuada diam lacus eget erat cras mollis scelerisque nunc"
).split()

CSS = """
:root { --ink: #1d2230; --muted: #5b6475; --accent: #2a6df4; --paper: #fbfaf7; --rule: #e3e0d8; }
* { box-sizing: border-box; }
html { font-size: 16px; }
body { margin: 0; background: var(--paper); color: var(--ink); font: 1rem/1.6 Georgia, "Times New Roman", serif; }
header.site { display: flex; justify-content: space-between; align-items: center; padding: .8rem 2rem;
  border-bottom: 1px solid var(--rule); background: #fff; position: sticky; top: 0; }
header.site nav a { margin-left: 1.2rem; color: var(--muted); text-decoration: none; font-family: sans-serif; }
header.site nav a:hover { color: var(--accent); }
main { display: grid; grid-template-columns: minmax(0, 1fr) 18rem; gap: 2.5rem; max-width: 72rem;
  margin: 2rem auto; padding: 0 2rem; }
article h1 { font-size: 2.4rem; line-height: 1.15; margin: 0 0 .4rem; }
article .byline { color: var(--muted); font-family: sans-serif; font-size: .9rem; margin-bottom: 1.6rem; }
article h2 { font-size: 1.5rem; margin: 2.2rem 0 .6rem; border-top: 1px solid var(--rule); padding-top: 1rem; }
article p { margin: 0 0 1rem; text-align: justify; hyphens: auto; }
article p:first-of-type::first-letter { float: left; font-size: 3.2rem; line-height: .9; margin: .2rem .4rem 0 0; }
figure { margin: 1.6rem 0; }
figure img { display: block; width: 100%; height: auto; border-radius: 4px; box-shadow: 0 1px 3px #0002; }
figcaption { color: var(--muted); font-size: .85rem; font-family: sans-serif; margin-top: .4rem; }
blockquote { margin: 1.5rem 0; padding: .5rem 1.2rem; border-left: 4px solid var(--accent); color: var(--muted); }
table.data { border-collapse: collapse; width: 100%; margin: 1.5rem 0; font-family: sans-serif; font-size: .9rem; }
table.data th, table.data td { border-bottom: 1px solid var(--rule); padding: .4rem .6rem; text-align: right; }
table.data th:first-child, table.data td:first-child { text-align: left; }
table.data tbody tr:nth-child(odd) { background: #f3f1ec; }
aside.related { font-family: sans-serif; font-size: .9rem; }
aside.related h3 { font-size: 1rem; text-transform: uppercase; letter-spacing: .05em; color: var(--muted); }
aside.related ul { list-style: none; padding: 0; margin: 0; }
aside.related li { padding: .5rem 0; border-bottom: 1px solid var(--rule); }
aside.related a { color: var(--ink); text-decoration: none; }
footer.site { border-top: 1px solid var(--rule); padding: 2rem; color: var(--muted); text-align: center;
  font-family: sans-serif; font-size: .85rem; }
.items { display: grid; grid-template-columns: repeat(auto-fill, minmax(14rem, 1fr)); gap: 1rem; padding: 0;
  list-style: none; grid-column: 1 / -1; }
.item { background: #fff; border: 1px solid var(--rule); border-radius: 6px; padding: .8rem 1rem; }
.item h3 { margin: 0 0 .3rem; font-size: 1.05rem; }
.item .price { font-family: sans-serif; font-weight: bold; color: var(--accent); }
.item .tags span { display: inline-block; font: .75rem sans-serif; background: #eef2fb; border-radius: 3px;
  padding: 0 .35rem; margin: 0 .25rem .25rem 0; }
.stars { color: #e0a100; letter-spacing: .1em; }
.review { border-bottom: 1px solid var(--rule); padding: 1rem 0; }
.review .meta { font-family: sans-serif; font-size: .85rem; color: var(--muted); }
nav.pager { display: flex; justify-content: space-between; font-family: sans-serif; margin: 2rem 0; }
nav.pager a { color: var(--accent); }
@media (max-width: 50rem) { main { grid-template-columns: 1fr; } }
"""


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(n))


def _sentence(rng: random.Random, lo: int = 8, hi: int = 22) -> str:
    s = _words(rng, rng.randint(lo, hi))
    return s[0].upper() + s[1:] + rng.choice(".....?!")


def _paragraph(rng: random.Random, sentences: tuple[int, int] = (4, 9)) -> str:
    return " ".join(_sentence(rng) for _ in range(rng.randint(*sentences)))


def _png(width: int, height: int, seed: int) -> bytes:
    """A deterministic RGB PNG: a diagonal gradient with noisy bands (compresses like a photo-ish image)."""
    rng = random.Random(seed)
    r0, g0, b0 = rng.randrange(256), rng.randrange(256), rng.randrange(256)
    period = 3 * width
    base = bytes(((r0 + x) % 256, (g0 + 2 * x) % 256, (b0 + 3 * x) % 256)[c] for x in range(width * 2) for c in range(3))
    raw = bytearray()
    for y in range(height):
        shift = (y * 3) % period
        row = bytearray(base[shift:shift + period])
        n = min(rng.randint(24, 120), period // 2)
        at = rng.randrange(0, period - n)
        row[at:at + n] = rng.randbytes(n)
        raw += b"\x00" + row
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(raw), 6)) + chunk(b"IEND", b"")


def _svg(seed: int) -> bytes:
    """A deterministic bar chart with a legend."""
    rng = random.Random(seed)
    bars = []
    for i in range(24):
        h = rng.randint(20, 260)
        bars.append(f'<rect x="{40 + i * 26}" y="{300 - h}" width="20" height="{h}" fill="hsl({(seed * 47 + i * 9) % 360},60%,55%)">'
                    f'<title>{_words(rng, 2)}: {h}</title></rect>')
    ticks = "".join(f'<line x1="36" x2="680" y1="{300 - t}" y2="{300 - t}" stroke="#ddd"/>'
                    f'<text x="30" y="{304 - t}" text-anchor="end" font-size="10">{t}</text>' for t in range(0, 281, 40))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 700 330" width="700" height="330">'
            f'<rect width="700" height="330" fill="#fff"/>{ticks}{"".join(bars)}'
            f'<text x="350" y="322" text-anchor="middle" font-size="12">{_words(rng, 4)}</text></svg>').encode()


def _layout(title: str, body: str, *, head_extra: str = "") -> str:
    nav = "".join(f'<a href="/reviews?page={i}">{w}</a>' for i, w in enumerate(("News", "Lists", "Reviews", "About"), 1))
    return ("<!doctype html><html lang=\"la\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{html.escape(title)}</title>"
            f"<link rel=\"stylesheet\" href=\"/static/site.css\">{head_extra}</head><body>"
            f"<header class=\"site\"><a href=\"/\">foxden bench</a><nav>{nav}</nav></header>{body}"
            "<footer class=\"site\">Generated for benchmarks. Nothing here leaves 127.0.0.1.</footer></body></html>")


def _article(k: int) -> str:
    rng = random.Random(1000 + k)
    target = (50 + (k * 37) % 101) * 1024  # 50..150 KB, spread over the articles
    title = f"Article {k}: {_sentence(rng, 4, 8)[:-1]}"
    parts = [f"<h1>{html.escape(title)}</h1><div class=\"byline\">By {_words(rng, 2).title()} · "
             f"{rng.randint(3, 19)} min read</div>"]
    photos = [(k * 3 + j) % PHOTOS for j in range(3)]
    figures = [f'<figure><img src="/img/photo-{p}.png" width="480" height="300" alt="{_words(rng, 3)}">'
               f"<figcaption>{html.escape(_sentence(rng))}</figcaption></figure>" for p in photos]
    figures.append(f'<figure><img src="/img/chart-{k % CHARTS}.svg" width="700" height="330" alt="chart">'
                   f"<figcaption>{html.escape(_sentence(rng))}</figcaption></figure>")
    size = len(parts[0])
    section = 0
    while size < target:
        chunk = [f"<h2>{html.escape(_sentence(rng, 3, 7)[:-1])}</h2>"]
        chunk += [f"<p>{html.escape(_paragraph(rng))}</p>" for _ in range(rng.randint(3, 6))]
        if section < len(figures):
            chunk.append(figures[section])
        if section % 3 == 1:
            chunk.append(f"<blockquote>{html.escape(_paragraph(rng, (1, 2)))}</blockquote>")
        if section % 4 == 2:
            rows = "".join(f"<tr><td>{html.escape(_words(rng, 2))}</td>" + "".join(
                f"<td>{rng.randint(0, 99999):,}</td>" for _ in range(4)) + "</tr>" for _ in range(12))
            chunk.append("<table class=\"data\"><thead><tr><th>item</th><th>q1</th><th>q2</th><th>q3</th>"
                         f"<th>q4</th></tr></thead><tbody>{rows}</tbody></table>")
        text = "".join(chunk)
        parts.append(text)
        size += len(text)
        section += 1
    related = "".join(f'<li><a href="/article/{(k + i) % ARTICLES}">{html.escape(_sentence(rng, 4, 9))}</a></li>'
                      for i in range(1, 9))
    body = (f"<main><article>{''.join(parts)}</article>"
            f"<aside class=\"related\"><h3>Related</h3><ul>{related}</ul></aside></main>")
    return _layout(title, body)


_LIST_SCRIPT = """
(function () {
  const data = JSON.parse(document.getElementById('data').textContent);
  const ul = document.getElementById('items');
  const frag = document.createDocumentFragment();
  const byRating = data.items.slice().sort((a, b) => b.rating - a.rating || a.id - b.id);
  for (const it of byRating) {
    const li = document.createElement('li');
    li.className = 'item';
    const h = document.createElement('h3');
    h.textContent = it.name;
    const price = document.createElement('div');
    price.className = 'price';
    price.textContent = (it.price / 100).toFixed(2) + ' EUR';
    const stars = document.createElement('div');
    stars.className = 'stars';
    stars.textContent = '\\u2605'.repeat(it.rating) + '\\u2606'.repeat(5 - it.rating);
    const p = document.createElement('p');
    p.textContent = it.desc;
    const tags = document.createElement('div');
    tags.className = 'tags';
    for (const t of it.tags) { const s = document.createElement('span'); s.textContent = t; tags.appendChild(s); }
    li.append(h, price, stars, p, tags);
    frag.appendChild(li);
  }
  ul.appendChild(frag);
  const total = data.items.reduce((s, it) => s + it.price, 0);
  document.getElementById('summary').textContent = data.items.length + ' items, total ' + (total / 100).toFixed(2);
  document.title = data.title + ' (' + data.items.length + ' items)';
})();
"""


def _list_page(k: int) -> str:
    rng = random.Random(5000 + k)
    items = [{"id": i, "name": _sentence(rng, 2, 4)[:-1], "price": rng.randint(199, 99999),
              "rating": rng.randint(1, 5), "tags": [rng.choice(_WORDS) for _ in range(rng.randint(1, 4))],
              "desc": _sentence(rng, 10, 20)} for i in range(LIST_ITEMS)]
    data = json.dumps({"title": f"List {k}", "items": items}, separators=(",", ":")).replace("</", "<\\/")
    body = (f"<main><section style=\"grid-column: 1 / -1\"><h1>List {k}</h1><p id=\"summary\">loading…</p>"
            "<ul id=\"items\" class=\"items\"></ul></section></main>"
            f"<script type=\"application/json\" id=\"data\">{data}</script><script>{_LIST_SCRIPT}</script>")
    return _layout(f"List {k} (loading)", body)


def _reviews_page(n: int) -> str:
    rng = random.Random(9000 + n)
    reviews = []
    for i in range(REVIEWS_PER_PAGE):
        stars = rng.randint(1, 5)
        reviews.append(
            f"<div class=\"review\" id=\"r{(n - 1) * REVIEWS_PER_PAGE + i}\"><h3>{html.escape(_sentence(rng, 3, 7))}</h3>"
            f"<div class=\"meta\"><span class=\"stars\">{'★' * stars}{'☆' * (5 - stars)}</span> · "
            f"{html.escape(_words(rng, 2).title())} · 2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}</div>"
            f"<p>{html.escape(_paragraph(rng, (3, 8)))}</p></div>")
    prev = f'<a rel="prev" href="/reviews?page={n - 1}">‹ previous</a>' if n > 1 else "<span></span>"
    nxt = f'<a rel="next" href="/reviews?page={n + 1}">next ›</a>' if n < REVIEW_PAGES else "<span></span>"
    body = (f"<main><section><h1>Reviews, page {n} of {REVIEW_PAGES}</h1>{''.join(reviews)}"
            f"<nav class=\"pager\">{prev}<span>{n} / {REVIEW_PAGES}</span>{nxt}</nav></section>"
            "<aside class=\"related\"><h3>Summary</h3><ul>"
            + "".join(f"<li>{s} stars: {rng.randint(10, 900)}</li>" for s in range(5, 0, -1))
            + "</ul></aside></main>")
    return _layout(f"Reviews – page {n} of {REVIEW_PAGES}", body)


TINY = b"<!doctype html><html><head><title>tiny</title></head><body>ok</body></html>"


class Content:
    """Every response body, generated once (about a second) and kept in memory."""

    def __init__(self):
        self.pages: dict[str, bytes] = {}
        self.assets: dict[str, tuple[str, bytes]] = {"/static/site.css": ("text/css; charset=utf-8", CSS.encode())}
        for k in range(ARTICLES):
            self.pages[f"/article/{k}"] = _article(k).encode()
        for k in range(LISTS):
            self.pages[f"/list/{k}"] = _list_page(k).encode()
        for n in range(1, REVIEW_PAGES + 1):
            self.pages[f"/reviews?page={n}"] = _reviews_page(n).encode()
        self.pages["/tiny"] = TINY
        for p in range(PHOTOS):
            self.assets[f"/img/photo-{p}.png"] = ("image/png", _png(480, 300, 77 + p))
        for c in range(CHARTS):
            self.assets[f"/img/chart-{c}.svg"] = ("image/svg+xml", _svg(c))
        self.assets["/favicon.ico"] = ("image/png", _png(16, 16, 1))

    def lookup(self, path: str, query: dict[str, str]) -> tuple[int, str, bytes, bool]:
        """(status, content type, body, cacheable) for a request."""
        if path == "/reviews":
            body = self.pages.get(f"/reviews?page={query.get('page', '1')}")
        else:
            body = self.pages.get(path)
        if body is not None:
            return 200, "text/html; charset=utf-8", body, False
        if path in self.assets:
            ctype, data = self.assets[path]
            return 200, ctype, data, True
        if path == "/":
            links = "".join(f'<li><a href="{html.escape(u)}">{html.escape(u)}</a></li>' for u in self.pages)
            return 200, "text/html; charset=utf-8", _layout("bench site", f"<main><ul>{links}</ul></main>").encode(), False
        return 404, "text/html; charset=utf-8", b"<!doctype html><title>not found</title>", False


def page_paths() -> dict[str, list[str]]:
    """The page URLs (paths) of each kind."""
    return {
        "article": [f"/article/{k}" for k in range(ARTICLES)],
        "list": [f"/list/{k}" for k in range(LISTS)],
        "reviews": [f"/reviews?page={n}" for n in range(1, REVIEW_PAGES + 1)],
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "Site._Server"

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):  # noqa: N802 - http.server's naming
        parts = urlsplit(self.path)
        site = self.server.site
        if parts.path == "/__stats":
            with site.lock:
                body = json.dumps({"requests": site.requests, "bytes": site.bytes_sent}).encode()
            self._reply(200, "application/json", body, False)
            return
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        status, ctype, body, cacheable = site.content.lookup(parts.path, query)
        with site.lock:
            site.requests += 1
            site.bytes_sent += len(body)
        self._reply(status, ctype, body, cacheable)

    def _reply(self, status: int, ctype: str, body: bytes, cacheable: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "public, max-age=3600" if cacheable else "no-cache")
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass


class Site:
    """The site on 127.0.0.1 with a free port, served by threads; a context manager."""

    class _Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 128
        site: "Site"

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.content = Content()
        self.lock = threading.Lock()
        self.requests = 0
        self.bytes_sent = 0
        self.server = self._Server((host, port), _Handler)
        self.server.site = self
        self.thread = threading.Thread(target=self.server.serve_forever, name="bench-site", daemon=True)

    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "Site":
        self.thread.start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "Site":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


def main() -> int:
    with Site() as site:
        print(json.dumps({"port": site.server.server_address[1], "base": site.base}), flush=True)
        sys.stdin.read()  # until our parent closes the pipe (or dies)
    return 0


if __name__ == "__main__":
    sys.exit(main())
