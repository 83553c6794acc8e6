"""One driver in its own process: ``python -m bench.drivers SPEC.json``.

The process sets its driver up (browsers launched, or connected to foxden's
warm daemon) and runs one warm-up job per slot, then prints a ``ready`` event
and obeys commands read from standard input, one per line:

- ``go``: run the spec's job list at the spec's concurrency; prints ``done``
  with per-job latencies and values;
- ``probe1``: run one light-page probe job (the spec's probe URL) alone;
  prints ``probe1`` with its latency (the orchestrator alternates drivers job
  by job, so that every driver's probe sees the same machine);
- ``close``: close everything it started; prints ``closed`` and exits.

Events are JSON lines on the process's original standard output; anything a
library prints goes to standard error (the orchestrator keeps it in a log).

Latency of a job: from the moment a free slot takes it (foxden: the client
sends it, with `concurrency` in flight; the Playwright pool: a browser is
taken from the free queue; Crawlee: the crawler fetches it from its request
queue) to its answer (foxden: the answer arrives; the pool: the context is
closed; Crawlee: the request is marked handled, after its page closed).
"""
from __future__ import annotations

import asyncio
import functools
import json
import os
import sys
import time
import traceback

from bench.measure import become_subreaper, install_network_guard

# Each job: navigate, wait for `load`, then this.
EXPR = "() => ({title: document.title, text: document.body ? document.body.innerText.length : 0})"

_out = None


def emit(event: str, **data) -> None:
    _out.write(json.dumps({"event": event, **data}) + "\n")
    _out.flush()


def commands():
    for line in sys.stdin:
        cmd = line.strip()
        if cmd:
            yield cmd


def _value(v):
    if isinstance(v, dict):
        return [v.get("title"), v.get("text")]
    return None


# --- foxden ------------------------------------------------------------------------

def run_foxden(spec: dict) -> None:
    from foxden.client import Client, job_request

    n = spec["concurrency"]
    client = Client(spec["socket"], timeout=spec["timeout_s"] * 4)
    options = {"block": spec["block"]} if spec.get("block") else {}

    def batch(urls: list[str], concurrency: int) -> dict:
        sent: dict[int, float] = {}
        lat: list = [None] * len(urls)
        values: list = [None] * len(urls)
        server_ms: list = [None] * len(urls)
        errors: list[str] = []

        def requests():
            for i, url in enumerate(urls):
                req = job_request(url, eval=EXPR, timeout_s=spec["timeout_s"], **options)
                sent[i] = time.perf_counter()  # submit_many sends right after taking it
                yield req

        t0 = time.perf_counter()
        for index, _req, answer in client.submit_many(requests(), concurrency=concurrency):
            lat[index] = time.perf_counter() - sent[index]
            server_ms[index] = answer.elapsed_ms
            if answer.status == "ok":
                values[index] = _value(answer.result.eval)
            else:
                errors.append(f"{urls[index]}: {answer.status} {answer.error}")
        return {"t_s": time.perf_counter() - t0, "lat": lat, "values": values, "errors": errors,
                "server_ms": server_ms}

    t = time.perf_counter()
    client.ping()
    warm = batch(spec["warm"], n)
    emit("ready", startup_s=time.perf_counter() - t, warm_errors=warm["errors"], pid=os.getpid())
    for cmd in commands():
        if cmd == "go":
            emit("done", **batch(spec["jobs"], n))
        elif cmd == "probe1":
            emit("probe1", **batch(spec["probe"][:1], 1))
        elif cmd == "close":
            t = time.perf_counter()
            client.close()
            emit("closed", close_s=time.perf_counter() - t)
            return


# --- the hand-written asyncio Playwright pool ----------------------------------------

async def _abort_blocked(block: frozenset, route) -> None:
    """A baseline's blocking, as a scraper writes it: abort the request of a blocked type, let the rest go on."""
    if route.request.resource_type in block:
        await route.abort()
    else:
        await route.continue_()


async def run_pwpool(spec: dict) -> None:
    """N browsers, a queue of free ones, one new context + page per job, closed after."""
    from playwright.async_api import async_playwright

    n = spec["concurrency"]
    timeout_ms = spec["timeout_s"] * 1000
    block = frozenset(spec.get("block") or ())
    t = time.perf_counter()
    pw = await async_playwright().start()
    browsers = [await pw.chromium.launch(executable_path=spec["executable_path"], args=spec["args"], headless=True)
                for _ in range(n)]
    free: asyncio.Queue = asyncio.Queue()
    for b in browsers:
        free.put_nowait(b)

    async def job(url: str):
        browser = await free.get()
        t0 = time.perf_counter()
        try:
            context = await browser.new_context()
            try:
                if block:
                    await context.route("**/*", functools.partial(_abort_blocked, block))
                page = await context.new_page()
                await page.goto(url, wait_until="load", timeout=timeout_ms)
                value = await page.evaluate(EXPR)
            finally:
                await context.close()
            return time.perf_counter() - t0, _value(value), None
        except Exception as exc:  # noqa: BLE001 - one answer per job, like the others
            return time.perf_counter() - t0, None, f"{url}: {type(exc).__name__}: {str(exc).splitlines()[0]}"
        finally:
            free.put_nowait(browser)

    async def batch(urls: list[str], concurrency: int) -> dict:
        t0 = time.perf_counter()
        if concurrency == 1:
            out = [await job(u) for u in urls]
        else:
            out = await asyncio.gather(*(job(u) for u in urls))
        return {"t_s": time.perf_counter() - t0, "lat": [o[0] for o in out], "values": [o[1] for o in out],
                "errors": [o[2] for o in out if o[2]]}

    warm = await batch(spec["warm"], n)
    emit("ready", startup_s=time.perf_counter() - t, warm_errors=warm["errors"], pid=os.getpid(),
         engine=f"chromium {browsers[0].version}")
    loop = asyncio.get_running_loop()
    cmds = commands()
    while True:
        cmd = await loop.run_in_executor(None, next, cmds, "close")
        if cmd == "go":
            emit("done", **await batch(spec["jobs"], n))
        elif cmd == "probe1":
            emit("probe1", **await batch(spec["probe"][:1], 1))
        elif cmd == "close":
            t = time.perf_counter()
            for b in browsers:
                await b.close()
            await pw.stop()
            emit("closed", close_s=time.perf_counter() - t)
            return


# --- Crawlee for Python's PlaywrightCrawler -----------------------------------------

def _crawlee_offline(tmpdir: str) -> None:
    """Environment and state that keep Crawlee off the network and off our working tree."""
    os.environ["CRAWLEE_STORAGE_DIR"] = os.path.join(tmpdir, "crawlee-storage")
    os.environ["CRAWLEE_PURGE_ON_START"] = "true"
    os.environ["CRAWLEE_HEADLESS"] = "true"
    # Crawlee's enqueue_links('same-domain') downloads the Public Suffix List on
    # first use (from native code: impit, which the Python audit hook cannot
    # see). We never enqueue links, but seed its rules from the snapshot it
    # ships so that nothing can trigger the download.
    from crawlee._utils import public_suffix as psl

    snapshot = psl.PUBLIC_SUFFIX_LIST_SNAPSHOT.read_text(encoding="utf-8")
    psl.public_suffix_list.__dict__["_rules"] = psl.PublicSuffixList._parse_rules(snapshot)


async def run_crawlee(spec: dict) -> None:
    """A warm, kept-alive PlaywrightCrawler fed the same URLs.

    Configured like the other drivers where Crawlee lets us: the same binary
    and switches, headless, one new context per page (use_incognito_pages),
    min = desired = max concurrency = N, no fingerprint injection (it would
    run a different page: init scripts on every page), no retries (a failure
    must show as an error). Everything else is Crawlee's default, including
    its browser pool (up to 20 pages per browser, so at N <= 20 it runs one
    browser unless pages_per_browser says otherwise), its file-system request
    queue (in a temp dir), sessions, block detection and autoscaling."""
    _crawlee_offline(spec["tmpdir"])
    from datetime import timedelta

    from crawlee import ConcurrencySettings, Request
    from crawlee.crawlers import PlaywrightCrawler, PlaywrightCrawlingContext

    n = spec["concurrency"]
    launch = {"executable_path": spec["executable_path"], "args": list(spec["args"]), "headless": True,
              "chromium_sandbox": False}
    kwargs = dict(
        concurrency_settings=ConcurrencySettings(min_concurrency=n, max_concurrency=n, desired_concurrency=n),
        max_request_retries=0,
        keep_alive=True,
        request_handler_timeout=timedelta(seconds=spec["timeout_s"]),
        navigation_timeout=timedelta(seconds=spec["timeout_s"]),
    )
    ppb = spec.get("pages_per_browser")
    if ppb:
        from crawlee.browsers import BrowserPool, PlaywrightBrowserPlugin

        plugin = PlaywrightBrowserPlugin(browser_type="chromium", browser_launch_options=launch,
                                         use_incognito_pages=True, max_open_pages_per_browser=ppb)
        crawler = PlaywrightCrawler(browser_pool=BrowserPool(plugins=[plugin]), **kwargs)
    else:
        crawler = PlaywrightCrawler(browser_type="chromium", browser_launch_options=launch, headless=True,
                                    use_incognito_pages=True, fingerprint_generator=None, **kwargs)

    started: dict[str, float] = {}
    finished: dict[str, float] = {}
    values: dict[str, object] = {}
    errors: dict[str, str] = {}
    state = {"want": set(), "event": asyncio.Event()}

    block = frozenset(spec.get("block") or ())
    if block:
        @crawler.pre_navigation_hook
        async def blocking(context) -> None:
            await context.page.route("**/*", functools.partial(_abort_blocked, block))

    @crawler.router.default_handler
    async def handler(context: PlaywrightCrawlingContext) -> None:
        values[context.request.unique_key] = _value(await context.page.evaluate(EXPR))

    @crawler.failed_request_handler
    async def failed(context, error: Exception) -> None:
        errors[context.request.unique_key] = f"{context.request.url}: {type(error).__name__}: {error}"

    t = time.perf_counter()
    t_run = asyncio.create_task(crawler.run())
    manager = await crawler.get_request_manager()
    fetch, mark = manager.fetch_next_request, manager.mark_request_as_handled

    async def fetch_next_request(*a, **kw):
        request = await fetch(*a, **kw)
        if request is not None:
            started[request.unique_key] = time.perf_counter()
        return request

    async def mark_request_as_handled(request, *a, **kw):
        out = await mark(request, *a, **kw)
        finished[request.unique_key] = time.perf_counter()
        if state["want"] and state["want"] <= finished.keys():
            state["event"].set()
        return out

    manager.fetch_next_request = fetch_next_request
    manager.mark_request_as_handled = mark_request_as_handled

    async def batch(urls: list[str], concurrency: int, tag: str) -> dict:
        keys = [f"{tag}-{i}" for i in range(len(urls))]
        t0 = time.perf_counter()
        if concurrency == 1:
            for key, url in zip(keys, urls):
                state["want"], state["event"] = {key}, asyncio.Event()
                await crawler.add_requests([Request.from_url(url, unique_key=key)])
                await state["event"].wait()
        else:
            state["want"], state["event"] = set(keys), asyncio.Event()
            await crawler.add_requests([Request.from_url(u, unique_key=k) for k, u in zip(keys, urls)])
            await state["event"].wait()
        return {"t_s": time.perf_counter() - t0,
                "lat": [finished[k] - started[k] if k in started else None for k in keys],
                "values": [values.get(k) for k in keys], "errors": [errors[k] for k in keys if k in errors]}

    probes = 0
    warm = await asyncio.wait_for(batch(spec["warm"], n, "warm"), 120)
    emit("ready", startup_s=time.perf_counter() - t, warm_errors=warm["errors"], pid=os.getpid())
    loop = asyncio.get_running_loop()
    cmds = commands()
    while True:
        cmd = await loop.run_in_executor(None, next, cmds, "close")
        if cmd == "go":
            emit("done", **await batch(spec["jobs"], n, "job"))
        elif cmd == "probe1":
            probes += 1
            emit("probe1", **await batch(spec["probe"][:1], 1, f"probe{probes}"))
        elif cmd == "close":
            t = time.perf_counter()
            crawler.stop()
            await t_run
            emit("closed", close_s=time.perf_counter() - t)
            return


def main() -> int:
    global _out
    # Our events go to the original stdout; whatever libraries print goes to stderr.
    _out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    install_network_guard()
    become_subreaper()
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    try:
        driver = spec["driver"]
        if driver == "foxden":
            run_foxden(spec)
        elif driver == "pwpool":
            asyncio.run(run_pwpool(spec))
        elif driver.startswith("crawlee"):
            asyncio.run(run_crawlee(spec))
        else:
            raise ValueError(f"unknown driver {driver!r}")
    except BaseException as exc:  # the orchestrator shows this and the log tail
        emit("error", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()[-4000:])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
