"""Chromium driven over CDP directly: no Playwright driver process between the actor and its browser."""
from __future__ import annotations

import base64
import fcntl
import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass, field

from foxden import procs
from foxden.engines import FIXES, EngineUnavailable
from foxden.drivers import results
from foxden.drivers.base import BrowserDied, Driver
from foxden.drivers.cdp import CHILD_READ_FD, CHILD_WRITE_FD, CdpError, CdpPipe, CdpTimeout, PipeClosed
from foxden.drivers.cdp_block import blocks
from foxden.drivers.cdp_outputs import (SELECTOR_MISSING, element_box_expression, element_clip, full_page_clip,
                                        lower_headers, summary_expression)
from foxden.drivers.cdp_page import (auth_response, context_params, effective_options, option_step, page_commands,
                                     viewport_metrics)
from foxden.drivers.cdp_waits import NetworkTally, navigation_done, wait_function_expression
from foxden.protocols.messages import JobSpec, Outcome
from foxden.protocols.options import DEFAULT, JobOptions, WaitUntil

__all__ = ["ChromiumDriver", "from_deep", "LOG_NAME", "LOG_MAX_BYTES"]

log = logging.getLogger("foxden.chromium")

STATE_TIMEOUT_S = 5.0  # reading a session's cookies after its job
LOG_NAME = "chromium.log"  # the browser's stderr, inside its temp dir (removed with it)
_LOG_TAIL = 2000
# Chromium logs a line now and then for as long as it runs; a browser that
# lives for days must not fill the disk with it.
LOG_MAX_BYTES = 1 << 20

# The job's eval, run as Playwright runs a string: evaluated as a global
# script (statements allowed; the last value counts), called if that value is
# a function, awaited if it is a promise. Indirect eval keeps the page's CSP
# out of it: Runtime.evaluate allows eval even where the page forbids it.
_EVAL = "(async () => {{ let v = (0, eval)({src}); if (typeof v === 'function') v = v(); v = await v; return [v, {summary}]; }})()"

# Waits until an element matching the CSS selector is attached and visible
# (Playwright's default state: a non-empty box, not visibility:hidden).
# Rejects at once for a selector that does not parse.
_WAIT_FOR = """new Promise((resolve, reject) => {
  const sel = %s;
  try { document.querySelector(sel); } catch (e) { reject(e); return; }
  const visible = (el) => {
    const style = getComputedStyle(el);
    if (style.visibility === 'hidden') return false;
    const box = el.getBoundingClientRect();
    return box.width > 0 && box.height > 0;
  };
  const check = () => { const el = document.querySelector(sel); return !!el && visible(el); };
  if (check()) { resolve(true); return; }
  const done = () => { observer.disconnect(); clearInterval(timer); resolve(true); };
  const observer = new MutationObserver(() => { if (check()) done(); });
  observer.observe(document, {childList: true, subtree: true, attributes: true});
  const timer = setInterval(() => { if (check()) done(); }, 100);
})"""

_FUNCTION_SOURCE = re.compile(r"^(async)?\s*function(\s|\()")


@dataclass
class _Page:
    """One job's page: its target, CDP session and what its main frame has done (private)."""

    target: str
    session: str
    options: JobOptions = DEFAULT  # the job's effective options (a session's context options included)
    loader: str | None = None  # the main frame's current document
    lifecycle: set = field(default_factory=set)  # (loader, event name) of the main frame's lifecycle events
    doc_headers: dict = field(default_factory=dict)  # loader -> its document's response headers
    tally: NetworkTally | None = None  # requests in flight, for networkidle only
    crashed: bool = False
    detached: bool = False

    def gone(self) -> str | None:
        if self.crashed:
            return "the page crashed"
        if self.detached:
            return "the page was closed"
        return None


class ChromiumDriver(Driver):
    """One Chromium process tree, started by this driver and spoken to over its CDP pipe.

    Every job gets a fresh browser context (a session job: its session's
    context) and a new page in it; the context (or page) is disposed without
    waiting, so the answer does not wait for a renderer to exit."""

    engine = "chromium"

    def __init__(self, command: list[str], *, launch_timeout_s: float, log_dir: str, nice: int = 0):
        super().__init__()
        self._command = command
        self._nice = nice
        self._log_path = os.path.join(log_dir, LOG_NAME)
        self._launch_timeout_s = launch_timeout_s
        self._pid: int | None = None
        self._pipe: CdpPipe | None = None
        self._pages: dict[str, _Page] = {}  # CDP session id -> page
        self._contexts: dict[str, str] = {}  # foxden session -> browser context id
        self._session_options: dict[str, JobOptions] = {}  # foxden session -> its first job's options
        self._user_agent = ""  # the browser's own, for a job that sets a locale but no user agent
        self._exited = False
        self._lent = False  # the pipe was handed to a lease's endpoint (hand_over)

    # --- lifecycle -------------------------------------------------------------

    def launch(self) -> None:
        """Start Chromium with its CDP pipe on fds 3 and 4 and wait for its first answer."""
        binary = self._command[0]
        if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
            raise EngineUnavailable(f"chromium: cannot start {binary}: not an executable file; {FIXES['chromium']}")
        argv = self._command
        # Below the control plane from its first instruction on (every thread
        # and process it starts inherits it): `nice` execs Chromium in place.
        nice_tool = shutil.which("nice") if self._nice else None
        if nice_tool:
            argv = [nice_tool, "-n", str(self._nice), *self._command]
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        # Chromium needs the pipe at exactly fds 3 and 4; move our ends out of
        # the way first, so that no dup2 below can overwrite another.
        fds = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_child_r, to_child_w, from_child_r, from_child_w)]
        for fd in (to_child_r, to_child_w, from_child_r, from_child_w):
            os.close(fd)
        to_child_r, to_child_w, from_child_r, from_child_w = fds
        try:
            self._pid = os.posix_spawn(
                argv[0], argv, dict(os.environ),
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_OPEN, 1, self._log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600),
                    (os.POSIX_SPAWN_DUP2, 1, 2),
                    (os.POSIX_SPAWN_DUP2, to_child_r, CHILD_READ_FD),
                    (os.POSIX_SPAWN_DUP2, from_child_w, CHILD_WRITE_FD),
                ],
                # Its own process group: a Ctrl-C at the terminal reaches the
                # daemon, which drains, instead of killing every browser mid-job.
                setpgroup=0,
            )
        except OSError as exc:
            for fd in fds:
                os.close(fd)
            raise EngineUnavailable(f"chromium: cannot start {self._command[0]}: {exc.strerror or exc};"
                                    f" {FIXES['chromium']}") from None
        os.close(to_child_r)
        os.close(from_child_w)
        if self._nice and not nice_tool:  # no `nice` binary: at once, before Chromium forks its helpers
            procs.renice([self._pid], os.getpriority(os.PRIO_PROCESS, 0) + self._nice)
        self._pipe = CdpPipe(from_child_r, to_child_w, self._on_event)
        deadline = time.monotonic() + self._launch_timeout_s
        try:
            version = self._pipe.send("Browser.getVersion")
            # Downloads would land in the temp dir; a job never needs one.
            self._pipe.discard(self._pipe.send("Browser.setDownloadBehavior", {"behavior": "deny"}))
            reply = self._pipe.result(version, deadline)
            product = reply.get("product", "")
            self._user_agent = reply.get("userAgent", "")
        except (PipeClosed, CdpTimeout, CdpError) as exc:
            raise RuntimeError(f"chromium did not start: {exc}{self._log_tail()}") from None
        self.version = product.split("/", 1)[-1] or product

    def hand_over(self) -> tuple[int, int, bytes]:
        """Give up the CDP pipe to a lease's endpoint: its read fd, write fd and bytes read but not dispatched.

        The driver reads the pipe no more; close() still ends the browser (by
        SIGKILL: no polite close on a pipe another reads). A reply launch()
        did not wait for may still come: the endpoint drops whatever the
        browser sends while no client is connected, as it is before the grant."""
        pipe, self._lent = self._pipe, True
        return pipe._rfd, pipe._wfd, bytes(pipe._buffer)

    def pids(self) -> list[int]:
        """The browser's main process, then its descendants."""
        if not self._pid or not procs.pid_alive(self._pid):
            return []
        return [self._pid, *(p.pid for p in procs.descendants(self._pid))]

    def alive(self) -> bool:
        if self._pipe is None or self._pipe.closed or self._reaped():
            return False
        try:
            self._pipe.poll()  # also notices the pipe's end of file
        except PipeClosed:
            return False
        return not self._pipe.closed

    def close(self, timeout_s: float) -> None:
        """Ask Chromium to close, wait up to timeout_s for it to exit, then SIGKILL it. Idempotent."""
        if self._pipe is None:
            return
        if not self._reaped():
            # A lent pipe is another's to read: no polite close, the kill below ends it.
            deadline = time.monotonic() + (0.0 if self._lent else timeout_s)
            try:
                if not self._lent:
                    self._pipe.call("Browser.close", deadline=deadline)
            except (PipeClosed, CdpTimeout, CdpError):
                pass  # it exits before it answers, or it is frozen: the wait below decides
            while not self._reaped() and time.monotonic() < deadline:
                time.sleep(0.01)
            if not self._reaped():
                procs.kill_pids([self._pid])
                end = time.monotonic() + 2.0
                while not self._reaped() and time.monotonic() < end:
                    time.sleep(0.01)
        self._pipe.close()

    def _reaped(self) -> bool:
        """True once the main process has exited (and been reaped: we are its parent)."""
        if self._exited or not self._pid:
            return self._exited
        try:
            pid, _ = os.waitpid(self._pid, os.WNOHANG)
        except ChildProcessError:
            pid = self._pid  # someone else reaped it; it is gone either way
        if pid == self._pid:
            self._exited = True
        return self._exited

    def _trim_log(self) -> None:
        try:
            if os.stat(self._log_path).st_size > LOG_MAX_BYTES:
                os.truncate(self._log_path, 0)  # Chromium appends (O_APPEND): it goes on at the new end
        except OSError:
            pass

    def _log_tail(self) -> str:
        try:
            with open(self._log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - _LOG_TAIL))
                tail = f.read().decode("utf-8", "replace").strip()
        except OSError:
            return ""
        return f"; its log ends: {tail}" if tail else ""

    # --- events ------------------------------------------------------------------

    def _on_event(self, method: str, params: dict, session: str | None) -> None:
        if method == "Page.javascriptDialogOpening" and session is not None:
            # A dialog blocks the page until answered; dismiss it, as Playwright does.
            self._pipe.discard(self._pipe.send("Page.handleJavaScriptDialog", {"accept": False}, session))
            return
        if method == "Target.detachedFromTarget":
            page = self._pages.get(params.get("sessionId"))
            if page is not None:
                page.detached = True
            return
        page = self._pages.get(session) if session is not None else None
        if page is None:
            return  # a page of an earlier job, already disposed
        if method == "Page.lifecycleEvent":
            if params.get("frameId") == page.target:
                page.lifecycle.add((params.get("loaderId"), params.get("name")))
        elif method == "Page.frameNavigated":
            frame = params.get("frame", {})
            if frame.get("id") == page.target and not frame.get("parentId"):
                page.loader = frame.get("loaderId")
        elif method == "Network.responseReceived":
            if params.get("type") == "Document" and params.get("frameId") == page.target:
                page.doc_headers[params.get("loaderId")] = params.get("response", {}).get("headers")
                if page.tally is None:
                    # All the Network domain was on for (networkidle aside; extra headers
                    # stay set): no event per subresource from here on.
                    self._pipe.discard(self._pipe.send("Network.disable", None, page.session))
        elif page.tally is not None and method in _TALLIED:
            if method == "Network.requestWillBeSent":
                # Not the main frame's document: the load wait covers it, and
                # its loadingFinished is sometimes never sent (a new renderer).
                if params.get("type") != "Document" or params.get("frameId") != page.target:
                    page.tally.started(params.get("requestId"))
            else:
                page.tally.ended(params.get("requestId"), time.monotonic())
        elif method == "Fetch.requestPaused":
            self._paused(page, params)
        elif method == "Fetch.authRequired":
            answer = auth_response(params.get("authChallenge", {}).get("source"), page.options.proxy)
            self._pipe.discard(self._pipe.send("Fetch.continueWithAuth", {
                "requestId": params.get("requestId"), "authChallengeResponse": answer}, page.session))
        elif method == "Inspector.targetCrashed":
            page.crashed = True

    def _paused(self, page: _Page, params: dict) -> None:
        """A request the job's Fetch patterns caught: fail it inside the browser if blocked, else let it go."""
        request = params.get("requestId")
        if blocks(page.options, params.get("request", {}).get("url", ""), params.get("resourceType")):
            command = ("Fetch.failRequest", {"requestId": request, "errorReason": "BlockedByClient"})
        else:
            command = ("Fetch.continueRequest", {"requestId": request})
        self._pipe.discard(self._pipe.send(*command, page.session))

    # --- jobs ------------------------------------------------------------------

    def run(self, job: JobSpec, budget_s: float) -> Outcome:
        deadline = time.monotonic() + budget_s
        attempt = _Attempt()
        try:
            return self._attempt(job, attempt, deadline)
        except CdpTimeout:
            return results.timed_out(attempt.step, f"the attempt's budget of {budget_s:.1f}s ran out")
        except PipeClosed as exc:
            raise BrowserDied(f"browser died during {attempt.step}: {exc}") from None
        except (CdpError, _EvalError) as exc:
            page = attempt.page
            return results.failed(attempt.step, page.gone() if page is not None and page.gone() else str(exc))
        finally:
            self._release(attempt.page, attempt.target, attempt.context, job)
            self._trim_log()

    def _attempt(self, job: JobSpec, attempt: "_Attempt", deadline: float) -> Outcome:
        """One job in a new page (of a new context, or its session's): every step, in order."""
        pipe = self._pipe
        first = self._session_options.get(job.session) if job.session and not job.new_session else None
        options = effective_options(first, job.options)
        attempt.context = self._context_for(job, options, deadline)
        attempt.step = "page"
        attempt.target = pipe.call("Target.createTarget", {"url": "about:blank", "browserContextId": attempt.context},
                                   deadline=deadline)["targetId"]
        session = pipe.call("Target.attachToTarget", {"targetId": attempt.target, "flatten": True},
                            deadline=deadline)["sessionId"]
        page = attempt.page = self._pages[session] = _Page(attempt.target, session, options)
        if options.wait_until is WaitUntil.NETWORKIDLE:
            page.tally = NetworkTally(time.monotonic())
        failure = self._navigate(job, page, attempt, deadline)
        if failure is not None:
            return failure
        if job.wait_for:
            attempt.step = "wait_for"
            self._evaluate(page, _WAIT_FOR % json.dumps(job.wait_for), deadline)
        if options.wait_for_function:
            attempt.step = "wait_for_function"
            self._evaluate(page, wait_function_expression(options.wait_for_function), deadline)
        attempt.step = "eval" if job.eval else "result"
        summary_js = summary_expression(options.html)
        if job.eval:
            # No deadline on purpose: an expression that never settles is
            # ended by the watchdog killing this browser.
            source = job.eval.strip()
            if _FUNCTION_SOURCE.match(source):
                source = f"({source})"
            value, summary = self._evaluate(page, _EVAL.format(src=json.dumps(source), summary=summary_js), None)
        else:
            value, summary = None, self._evaluate(page, summary_js, deadline)
        shot = pdf = None
        if job.screenshot or options.full_page or options.screenshot_selector:
            attempt.step = "screenshot"
            shot = self._screenshot(page, deadline)
        if options.pdf:
            attempt.step = "pdf"
            data = pipe.call("Page.printToPDF", {}, session, deadline, page.gone)["data"]
            pdf = base64.b64decode(data)
        title, length, url, status = summary[:4]
        return results.page_outcome(final_url=url, http_status=status or None, title=title,
                                    content_length=length, value=value, screenshot=shot,
                                    html=summary[4] if options.html else None, pdf=pdf,
                                    response_headers=lower_headers(page.doc_headers.get(page.loader)))

    def _navigate(self, job: JobSpec, page: _Page, attempt: "_Attempt", deadline: float) -> Outcome | None:
        """Set the page up with the job's options, navigate, wait for `wait_until`; an Outcome if that failed."""
        pipe, session, options = self._pipe, page.session, page.options
        # Pipelined: Chromium runs a session's commands in order.
        pipe.discard(pipe.send("Page.enable", None, session))
        pipe.discard(pipe.send("Page.setLifecycleEventsEnabled", {"enabled": True}, session))
        pipe.discard(pipe.send("Network.enable", None, session))  # the main document's response headers
        pipe.discard(pipe.send("Emulation.setDeviceMetricsOverride", viewport_metrics(options.viewport), session))
        sent = [(method, pipe.send(method, params, session))
                for method, params in page_commands(options, job.url, self._user_agent)]
        for method, command in sent:  # all sent first: one round trip for all of them
            attempt.step = option_step(method)
            pipe.result(command, deadline, page.gone)
        attempt.step = "navigate"
        nav = pipe.call("Page.navigate", {"url": job.url}, session, deadline, page.gone)
        if nav.get("errorText"):
            return results.failed(attempt.step, f"{nav['errorText']} at {job.url}")
        if page.loader is None:
            page.loader = nav.get("loaderId")
        pipe.wait_until(lambda: page.gone() is not None or
                        navigation_done(options.wait_until, page.loader, page.lifecycle), deadline, "navigate")
        if page.tally is not None:
            page.tally.loaded(time.monotonic())
            self._wait_idle(page, deadline)
        if page.gone():
            return results.failed(attempt.step, page.gone())
        return None

    def _wait_idle(self, page: _Page, deadline: float) -> None:
        """Until no request of the page has been in flight for IDLE_S (CdpTimeout at the deadline)."""
        while not page.gone():
            idle_at = page.tally.idle_at()
            if idle_at is not None and time.monotonic() >= idle_at:
                return
            stop = deadline if idle_at is None else min(deadline, idle_at)
            try:
                self._pipe.wait_until(lambda: page.gone() is not None or page.tally.idle_at() != idle_at,
                                      stop, "navigate")
            except CdpTimeout:
                if stop >= deadline:
                    raise

    def _screenshot(self, page: _Page, deadline: float) -> bytes:
        """A PNG of the viewport, of the whole page (full_page) or of one element (screenshot_selector)."""
        params: dict = {"format": "png"}
        selector = page.options.screenshot_selector
        if selector:
            box = self._evaluate(page, element_box_expression(selector), deadline)
            if box == SELECTOR_MISSING:
                raise _EvalError(f"no element matches screenshot_selector {selector!r}")
            clip = element_clip(box)
            if clip is None:
                raise _EvalError(f"the element matching screenshot_selector {selector!r} has no area")
            params.update(clip=clip, captureBeyondViewport=True)
        elif page.options.full_page:
            metrics = self._pipe.call("Page.getLayoutMetrics", None, page.session, deadline, page.gone)
            params.update(clip=full_page_clip(metrics), captureBeyondViewport=True)
        data = self._pipe.call("Page.captureScreenshot", params, page.session, deadline, page.gone)["data"]
        return base64.b64decode(data)

    def sessions(self) -> tuple[str, ...]:
        return tuple(self._contexts)

    def end_session(self, session: str) -> bool:
        context = self._contexts.pop(session, None)
        self._session_options.pop(session, None)
        if context is not None:
            try:
                self._dispose(context)
            except PipeClosed as exc:
                raise BrowserDied(f"browser died while ending session {session}: {exc}") from None
        return context is not None

    def _context_for(self, job: JobSpec, options: JobOptions, deadline: float) -> str:
        """The job's browser context: its session's, else a new one (behind the job's proxy, if any)."""
        if job.session and job.new_session and job.session in self._contexts:
            self._dispose(self._contexts.pop(job.session))
        if job.session and job.session in self._contexts:
            return self._contexts[job.session]
        context = self._pipe.call("Target.createBrowserContext", context_params(options.proxy),
                                  deadline=deadline)["browserContextId"]
        if job.session:
            self._contexts[job.session] = context
            self._session_options[job.session] = options
            self._restore_state(job, context, deadline)
        return context

    def _release(self, page: _Page | None, target: str | None, context: str | None, job: JobSpec) -> None:
        """Dispose of the job's context (a session's context lives on: only its page goes)."""
        self._remember_local_storage(page, job)  # issue #14: persistent sessions (foxden.drivers.storage)
        if page is not None:
            self._pages.pop(page.session, None)
        if self._pipe is None or self._pipe.closed:
            return
        try:
            if context is not None and not job.session:
                self._dispose(context)
            elif target is not None:
                self._pipe.discard(self._pipe.send("Target.closeTarget", {"targetId": target}))
        except PipeClosed:
            pass  # noticed by the next heartbeat, or by the caller

    def _dispose(self, context: str) -> None:
        # Not awaited: the answer need not wait for the renderer to exit, and
        # the next command on this pipe runs after the disposal anyway.
        self._pipe.discard(self._pipe.send("Target.disposeBrowserContext", {"browserContextId": context}))

    def _evaluate(self, page: _Page, expression: str, deadline: float | None):
        """Evaluate in the page's main world, awaiting a promise; the value as plain Python."""
        reply = self._pipe.call("Runtime.evaluate", {
            "expression": expression, "awaitPromise": True,
            "serializationOptions": {"serialization": "deep"},
        }, page.session, deadline, page.gone)
        if "exceptionDetails" in reply:
            raise _EvalError(_exception_text(reply["exceptionDetails"]))
        return from_deep(reply.get("result", {}).get("deepSerializedValue", {"type": "undefined"}))

    # --- a session's storage state (issue #14; the CDP work is foxden.drivers.storage) ---

    def storage_state(self, session: str) -> dict | None:
        """The session's cookies and localStorage (Playwright's storage-state shape); None: no such context."""
        context = self._contexts.get(session)
        if context is None or self._pipe is None:
            return None
        store = self._storage_store()
        for gone in [s for s in store.local if s not in self._contexts]:
            store.forget(gone)
        try:
            return store.read(session, context, time.monotonic() + STATE_TIMEOUT_S)
        except PipeClosed as exc:
            raise BrowserDied(f"browser died while reading session {session}'s state: {exc}") from None

    def _restore_state(self, job: JobSpec, context: str, deadline: float) -> None:
        """A new session context: nothing kept of its localStorage yet; made from job.restore when given."""
        store = self._storage_store()
        store.forget(job.session)
        if job.restore is not None:
            store.write(job.session, context, job.restore, deadline)

    def _remember_local_storage(self, page: _Page | None, job: JobSpec) -> None:
        """Before a session's job page closes: keep its origin's localStorage (for storage_state)."""
        if job.session and page is not None and not page.gone() and self._pipe is not None and not self._pipe.closed:
            self._storage_store().remember(job.session, page.session)

    def _storage_store(self):
        from foxden.drivers.storage import CdpStorage

        if getattr(self, "_storage", None) is None:
            self._storage = CdpStorage(self._pipe)
        return self._storage


# The Network events that count a page's requests in flight (networkidle).
_TALLIED = frozenset({"Network.requestWillBeSent", "Network.loadingFinished", "Network.loadingFailed"})


@dataclass
class _Attempt:
    """What one attempt has opened so far (released in any case) and the step it is at (private)."""

    step: str = "context"
    context: str | None = None
    target: str | None = None
    page: _Page | None = None


class _EvalError(Exception):
    """The page's JavaScript threw (or a promise rejected) while we evaluated."""


def _exception_text(details: dict) -> str:
    exc = details.get("exception") or {}
    text = exc.get("description") or details.get("text") or "exception"
    if exc.get("type") == "object" and exc.get("subtype") != "error" and "value" in exc:
        text = f"{details.get('text', 'Uncaught')} {exc['value']}"
    return results.first_line(text)


def from_deep(node: dict):
    """A CDP deep-serialized value as JSON-like Python (what JSON.stringify would keep, roughly).

    NaN, infinities and -0 become None or 0 like elsewhere in foxden's answers
    (msgpack and JSON carry no NaN); dates become ISO strings; maps become
    dicts; sets become lists; functions, symbols, nodes, windows and the
    second sight of an object (a cycle) become None."""
    kind, value = node.get("type"), node.get("value")
    if value is None:
        return None  # undefined, null, a repeated reference (a cycle), and whatever has no value
    if kind == "number":
        if isinstance(value, str):  # "NaN", "Infinity", "-Infinity", "-0"
            return 0 if value == "-0" else None
        return value
    if kind in ("string", "boolean"):
        return value
    if kind == "bigint":
        return int(value)
    if kind == "date":
        return value
    if kind == "regexp":
        return f"/{value.get('pattern', '')}/{value.get('flags', '')}"
    if kind in ("array", "set"):
        return [from_deep(v) for v in value or []]
    if kind in ("object", "map"):
        out = {}
        for key, val in value or []:
            out[key if isinstance(key, str) else str(from_deep(key))] = from_deep(val)
        return out
    return None
