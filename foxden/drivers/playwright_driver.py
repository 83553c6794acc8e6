"""A browser driven through Playwright's sync API: Firefox (BiDi), Camoufox (Juggler), or Chromium on request."""
from __future__ import annotations

import functools
import os
import threading
import time

from foxden import procs
from foxden.drivers import pwoptions, results
from foxden.drivers.base import BrowserDied, Driver
from foxden.protocols.messages import JobSpec, Outcome

# V8 flags for the Playwright driver (node) of every browser actor. Its young
# generation defaults to 16 MB semi-spaces it rarely needs: capping them cut
# the driver's PSS from ~169 to ~120 MB for ~2 ms more node CPU per job
# (measured, 120 jobs). A user's own NODE_OPTIONS wins.
DRIVER_NODE_OPTIONS = "--max-semi-space-size=1"

# document.title is what page.title() reads; the length is of the serialised DOM.
_SUMMARY_JS = ("() => [document.title || '', "
               "document.documentElement ? document.documentElement.outerHTML.length : 0]")


class PlaywrightDriver(Driver):
    """One browser behind its own Playwright driver process (node), which this actor starts and owns."""

    def __init__(self, choice, *, headless: bool, extra_args=(), nice: int = 0, proxy: str | None = None):
        super().__init__()
        self._proxy = proxy  # the egress proxy every connection goes through, if any
        self._choice = choice
        self._nice = nice
        self._headless = headless
        self._extra_args = tuple(extra_args)
        self.engine = choice.name
        self._pw = None
        self._browser = None
        self._main_pid: int | None = None
        self._contexts: dict = {}  # foxden session -> BrowserContext
        self._closed = False

    def launch(self) -> None:
        # Imported here: a Chromium actor on the CDP driver never needs Playwright.
        from playwright.sync_api import sync_playwright

        from foxden import engines

        os.environ.setdefault("NODE_OPTIONS", DRIVER_NODE_OPTIONS)
        self._pw = sync_playwright().start()
        self._browser = engines.launch(self._pw, self._choice, headless=self._headless, extra_args=self._extra_args,
                                      proxy=self._proxy)
        self.version = engines.engine_version(self._browser).split(" ", 1)[-1]
        pids = procs.browser_pids(os.getpid())
        self._main_pid = pids[0] if pids else None
        if self._nice:
            # Playwright starts the driver and the browser itself, so they are
            # moved below the control plane once up; the browser's later
            # processes inherit it from its main process.
            procs.renice([p.pid for p in procs.descendants(os.getpid())],
                         os.getpriority(os.PRIO_PROCESS, 0) + self._nice)

    def pids(self) -> list[int]:
        if not self._main_pid or not procs.pid_alive(self._main_pid):
            return []
        return [self._main_pid, *(p.pid for p in procs.descendants(self._main_pid))]

    def alive(self) -> bool:
        if self._browser is None or not procs.pid_alive(self._main_pid):
            return False
        try:
            return self._browser.is_connected()
        except Exception:
            return False

    def sessions(self) -> tuple[str, ...]:
        return tuple(self._contexts)

    def end_session(self, session: str) -> bool:
        context = self._contexts.pop(session, None)
        if context is not None:
            try:
                context.close()
            except Exception:
                if not self.alive():
                    raise BrowserDied(f"browser died while ending session {session}") from None
        return context is not None

    def close(self, timeout_s: float) -> None:
        """Close the browser and stop the driver; a timer thread kills our processes after timeout_s.

        A graceful close can hang (a frozen browser never answers) and a sync
        Playwright call cannot be timed out from the inside, so the timer's
        SIGKILL is what makes the call return."""
        if self._closed:
            return
        self._closed = True
        timer = threading.Timer(timeout_s, lambda: procs.kill_pids(p.pid for p in procs.descendants(os.getpid())))
        timer.daemon = True
        timer.start()
        try:
            if self._browser is not None:
                self._browser.close()
        except Exception:
            pass
        try:
            if self._pw is not None:
                self._pw.stop()
        except Exception:
            pass
        finally:
            timer.cancel()

    def run(self, job: JobSpec, budget_s: float) -> Outcome:
        from playwright.sync_api import Error as PWError
        from playwright.sync_api import TimeoutError as PWTimeout

        deadline = time.monotonic() + budget_s

        def remaining_ms() -> float:
            return max(1.0, (deadline - time.monotonic()) * 1000.0)

        page = None
        context = None
        progress = ["context"]  # the step under way, for the error's code and message
        try:
            context = self._context_for(job)
            progress[0] = "page"
            page = self._page_for(context, job)
            return self._attempt(page, job, remaining_ms, progress)
        except PWTimeout as exc:
            return results.timed_out(progress[0], exc)
        except PWError as exc:
            if not self.alive():
                raise BrowserDied(f"browser died during {progress[0]}: {results.first_line(exc)}") from None
            return results.failed(progress[0], exc)
        finally:
            self._release(page, context, job)

    def _attempt(self, page, job: JobSpec, remaining_ms, progress: list) -> Outcome:
        """Navigate, wait, evaluate and collect the outputs the job asked for; progress[0] names the step."""
        options = job.options
        progress[0] = "navigate"
        response = page.goto(job.url, timeout=remaining_ms(), wait_until=options.wait_until.value)
        if job.wait_for:
            progress[0] = "wait_for"
            page.wait_for_selector(job.wait_for, timeout=remaining_ms())
        if options.wait_for_function:
            progress[0] = "wait_for_function"
            page.wait_for_function(options.wait_for_function, timeout=remaining_ms())
        value = None
        if job.eval:
            progress[0] = "eval"
            # No timeout here on purpose: an expression that never settles is
            # ended by the watchdog killing this browser.
            value = page.evaluate(job.eval)
        shot = None
        if job.screenshot:
            progress[0] = "screenshot"
            shot = _screenshot(page, options, remaining_ms())
        html = pdf = None
        if options.html:
            progress[0] = "html"
            html = page.content()
        if options.pdf:
            progress[0] = "pdf"
            pdf = page.pdf()
        progress[0] = "result"
        # One round trip for both facts: each extra call to the driver
        # costs ~1-2 ms of IPC per job (measured with py-spy).
        title, length = _summary(page.evaluate(_SUMMARY_JS))
        return results.page_outcome(final_url=page.url, http_status=response.status if response else None,
                                    title=title, content_length=length, value=value, screenshot=shot,
                                    html=html, pdf=pdf, response_headers=_headers_of(response))

    def _page_for(self, context, job: JobSpec):
        """A new page of `context` with the job's cookies, blocking, and (in a session) viewport and headers."""
        options = job.options
        if options.cookies:
            context.add_cookies(pwoptions.cookie_params(options.cookies, job.url))
        page = context.new_page()
        if job.session:
            if options.viewport is not None:
                page.set_viewport_size({"width": options.viewport.width, "height": options.viewport.height})
            if options.headers:
                page.set_extra_http_headers(dict(options.headers))
        if options.block_types or options.block_patterns:
            page.route("**/*", functools.partial(_route, options))
        return page

    def _context_for(self, job: JobSpec):
        kwargs = pwoptions.context_kwargs(job.options, session=bool(job.session))
        if not job.session:
            return self._browser.new_context(**kwargs)
        if job.new_session and job.session in self._contexts:
            old = self._contexts.pop(job.session)
            try:
                old.close()
            except Exception:
                pass
        ctx = self._contexts.get(job.session)
        if ctx is None:
            # A session's context keeps the proxy and identity of the job that opened it.
            ctx = self._contexts[job.session] = self._browser.new_context(**kwargs)
            self._restore_state(job, ctx)
        return ctx

    def _release(self, page, context, job: JobSpec) -> None:
        self._remember_local_storage(page, job)  # issue #14: persistent sessions (foxden.drivers.storage)
        try:
            if context is not None and not job.session:
                context.close()  # closes its page too: one call, not two
            elif page is not None:
                page.close()  # a session's context lives on; only its page goes
        except Exception:
            pass  # a dead browser is noticed by the caller or the next heartbeat


    # --- a session's storage state (issue #14) ----------------------------------------

    def storage_state(self, session: str) -> dict | None:
        """The session's cookies now and the localStorage its job pages had (Playwright's storage-state shape).

        Not context.storage_state(): with no page open it opens one per origin
        to read localStorage (seconds on Firefox); the job's page is read
        instead, just before it closes (_remember_local_storage)."""
        context = self._contexts.get(session)
        if context is None:
            return None
        for gone in [s for s in self._local_storage() if s not in self._contexts]:
            del self._local[gone]
        try:
            cookies = context.cookies()
        except Exception as exc:
            if not self.alive():
                raise BrowserDied(f"browser died while reading session {session}'s state") from None
            raise RuntimeError(results.first_line(exc)) from None
        from foxden.drivers.storage import playwright_state

        return playwright_state(cookies, self._local_storage().get(session, {}))

    def _restore_state(self, job: JobSpec, context) -> None:
        """A new session context: nothing kept of its localStorage yet; made from job.restore when given."""
        from foxden.drivers.storage import playwright_apply

        self._local_storage()[job.session] = {}
        if job.restore is not None:
            self._local[job.session] = playwright_apply(context, job.restore)

    def _remember_local_storage(self, page, job: JobSpec) -> None:
        """Before a session's job page closes: keep its origin's localStorage (for storage_state)."""
        if not job.session or page is None:
            return
        from foxden.drivers.storage import READ_PAGE

        try:
            value = page.evaluate(READ_PAGE)
        except Exception:
            return  # a page that cannot answer keeps what was kept
        if isinstance(value, list) and len(value) == 2 and str(value[0]).startswith(("http://", "https://")):
            self._local_storage().setdefault(job.session, {})[value[0]] = value[1]

    def _local_storage(self) -> dict:
        if getattr(self, "_local", None) is None:
            self._local: dict[str, dict[str, list]] = {}  # session -> origin -> [{name, value}]
        return self._local


def _screenshot(page, options, timeout_ms: float) -> bytes:
    if options.screenshot_selector:
        return page.locator(options.screenshot_selector).first.screenshot(timeout=timeout_ms)
    return page.screenshot(timeout=timeout_ms, full_page=options.full_page)


def _headers_of(response) -> dict | None:
    """The main document's response headers, names in lower case (None without a response)."""
    if response is None:
        return None
    return {name.lower(): value for name, value in response.headers.items()}


def _route(options, route) -> None:
    """Abort a request the job blocks (it never leaves the browser), let the others go on."""
    request = route.request
    try:
        if pwoptions.blocks(options, request.url, request.resource_type):
            route.abort("blockedbyclient")
        else:
            route.fallback()
    except Exception:
        pass  # the page or its browser went away mid-request: the job's own steps notice


def _summary(value) -> tuple[str, int]:
    """(title, length) from _SUMMARY_JS, whatever the page did to its globals."""
    if isinstance(value, list) and len(value) == 2:
        return value[0], value[1]
    return "", 0
