"""The browser actor: one actor, one browser, sole owner of the browser's processes."""
from __future__ import annotations

import datetime as _dt
import logging
import math
import os
import threading
import time

import msgpack
from thespian.actors import ActorExitRequest

from foxden.actors.base import FoxdenActor
from foxden import logs, procs
from foxden.protocols.messages import (
    BrowserReady,
    BrowserStarted,
    Dying,
    JobDone,
    Outcome,
    Ping,
    Pong,
    RunJob,
    StartBrowser,
)

log = logging.getLogger("foxden.browser")

# An answer must fit the client's frame limit (wire.MAX_REPLY_FRAME, 64 MiB)
# with room for the envelope; a page's eval value can be arbitrarily large.
MAX_RESULT_BYTES = 48 << 20
# V8 flags for the Playwright driver of every browser actor (see StartBrowser).
DRIVER_NODE_OPTIONS = "--max-semi-space-size=1"

# Playwright is imported lazily: the supervisor forks this actor, and the
# supervisor itself should not pay for importing Playwright.


class BrowserActor(FoxdenActor):
    role = "browser"

    """Launches its browser on StartBrowser, runs one job at a time, closes on exit.

    While a job runs, this actor is blocked inside Playwright and answers
    nothing: that is by design. It is the supervisor's watchdog that ends an
    attempt that overruns, by killing this actor and its processes; this actor
    never tries to cancel itself. A job answer (JobDone) is sent only when the
    browser survived the attempt; if the browser died, the actor exits and the
    supervisor's ChildActorExited handler answers for the job."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._id: str | None = None
        self._supervisor = None
        self._marker: str | None = None
        self._tmpdir: str | None = None
        self._close_timeout_s = 5.0
        self._pw = None
        self._browser = None
        self._browser_pid: int | None = None
        self._sessions: dict = {}
        self._closed = False
        self._dying = False

    # --- lifecycle -----------------------------------------------------------

    def receiveMsg_StartBrowser(self, msg: StartBrowser, sender) -> None:
        self._id, self._supervisor, self._marker = msg.browser, sender, msg.marker
        self._tmpdir = msg.tmpdir.rstrip("/") + "/"
        logs.set_context(browser=msg.browser)
        self._close_timeout_s = msg.config.watchdog.close_timeout_s
        # Inherited by the Playwright driver and, through it, by every browser
        # process: the marker lets the supervisor find them all; TMPDIR keeps
        # their profile and temp dirs inside a directory it removes.
        os.environ[procs.MARKER_ENV] = msg.marker
        os.makedirs(msg.tmpdir, exist_ok=True)
        for var in ("TMPDIR", "TMP", "TEMP"):
            os.environ[var] = msg.tmpdir
        # Each browser actor runs its own Playwright driver (node). Its young
        # generation defaults to 16 MB semi-spaces it rarely needs: capping
        # them cut the driver's PSS from ~169 to ~120 MB for ~2 ms more node
        # CPU per job (measured, 120 jobs). A user's own NODE_OPTIONS wins.
        os.environ.setdefault("NODE_OPTIONS", DRIVER_NODE_OPTIONS)
        self.send(sender, BrowserStarted(msg.browser, os.getpid()))
        try:
            from playwright.sync_api import sync_playwright

            from foxden import engines

            self._pw = sync_playwright().start()
            self._browser = engines.launch(
                self._pw, msg.engine, headless=msg.config.pool.headless, extra_args=msg.config.pool.args
            )
            version = engines.engine_version(self._browser)
        except Exception as exc:  # any launch failure ends this actor; the policy decides what next
            self._die("launch_failed", f"{type(exc).__name__}: {exc}".strip())
            return
        pids = procs.browser_pids(os.getpid())
        self._browser_pid = pids[0] if pids else None
        self.send(sender, BrowserReady(msg.browser, os.getpid(), tuple(pids), msg.engine.name, version))

    def receiveMsg_ActorExitRequest(self, msg: ActorExitRequest, sender) -> None:
        self.close()

    def close(self) -> None:
        """Close the browser; idempotent; escalates to SIGKILL of our processes.

        A graceful close can hang (a frozen browser never answers), and this
        actor cannot time out its own blocking call, so a timer thread kills
        the processes after close_timeout_s, which makes the call return."""
        if self._closed:
            return
        self._closed = True
        timer = threading.Timer(self._close_timeout_s, self._kill_processes)
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
            self._kill_processes()

    def _kill_processes(self) -> None:
        left = procs.descendants(os.getpid())
        if self._marker:
            left += procs.find_marked(self._marker, exclude=[p.pid for p in left], path=self._tmpdir)
        procs.kill_and_wait(left, timeout=2.0)

    def _die(self, reason: str, detail: str = "") -> None:
        """Tell the supervisor why, then exit (the supervisor cleans up after us)."""
        if self._dying:
            return
        self._dying = True
        log.warning("browser %s exiting: %s %s", self._id, reason, detail)
        if self._supervisor is not None:
            self.send(self._supervisor, Dying(self._id, reason, detail[:2000]))
        self.send(self.myAddress, ActorExitRequest())

    def _browser_alive(self) -> bool:
        if self._browser is None or not procs.pid_alive(self._browser_pid):
            return False
        try:
            return self._browser.is_connected()
        except Exception:
            return False

    # --- heartbeat -----------------------------------------------------------

    def receiveMsg_Ping(self, msg: Ping, sender) -> None:
        alive = self._browser_alive()
        self.send(sender, Pong(self._id, msg.seq, alive))
        if not alive and not self._closed:
            self._die("crash", "browser process is gone")

    # --- jobs ----------------------------------------------------------------

    def receiveMsg_RunJob(self, msg: RunJob, sender) -> None:
        if self._browser is None or self._dying:
            return  # we are exiting; the supervisor answers for the job on our exit
        with logs.context(job=msg.job.id, session=msg.job.session):
            outcome = self._run(msg)
        if outcome is None:
            return
        self.send(sender, JobDone(self._id, msg.job.key, outcome, tuple(self._sessions)))

    def _run(self, msg: RunJob) -> Outcome | None:
        from playwright.sync_api import Error as PWError
        from playwright.sync_api import TimeoutError as PWTimeout

        job = msg.job
        deadline = time.monotonic() + msg.budget_s

        def remaining_ms() -> float:
            return max(1.0, (deadline - time.monotonic()) * 1000.0)

        page = None
        context = None
        step = "context"
        try:
            context = self._context_for(job)
            step = "page"
            page = context.new_page()
            step = "navigate"
            response = page.goto(job.url, timeout=remaining_ms(), wait_until="load")
            if job.wait_for:
                step = "wait_for"
                page.wait_for_selector(job.wait_for, timeout=remaining_ms())
            value = None
            if job.eval:
                step = "eval"
                # No timeout here on purpose: an expression that never settles
                # is ended by the watchdog killing this browser.
                value = _jsonable(page.evaluate(job.eval))
            shot = None
            if job.screenshot:
                step = "screenshot"
                shot = page.screenshot(timeout=remaining_ms(), full_page=False)
            step = "result"
            # One round trip for both facts: each extra call to the driver
            # costs ~1-2 ms of IPC per job (measured with py-spy).
            title, content_length = _summary(page.evaluate(_SUMMARY_JS))
            result = {
                "final_url": page.url,
                "http_status": response.status if response is not None else None,
                "title": title,
                "content_length": content_length,
                "eval": value,
                "screenshot": shot,
            }
            size = len(msgpack.packb(result, use_bin_type=True))
            if size > MAX_RESULT_BYTES:
                return Outcome("failed", error=("result_too_large",
                                                f"the result is {size} bytes; at most {MAX_RESULT_BYTES} fit an answer"))
            return Outcome("ok", result=result)
        except PWTimeout as exc:
            return Outcome("timeout", error=("timeout", f"{step}: {_first_line(exc)}"))
        except PWError as exc:
            if not self._browser_alive():
                self._die("crash", f"browser died during {step}: {_first_line(exc)}")
                return None
            return Outcome("failed", error=(_error_code(step, str(exc)), f"{step}: {_first_line(exc)}"))
        except Exception as exc:  # a bug of ours, not the page's: still one answer
            log.exception("job %s failed unexpectedly", job.key)
            return Outcome("failed", error=("internal_error", f"{type(exc).__name__}: {exc}"))
        finally:
            self._release(page, context, job)

    def _context_for(self, job):
        if not job.session:
            return self._browser.new_context()
        if job.new_session and job.session in self._sessions:
            old = self._sessions.pop(job.session)
            try:
                old.close()
            except Exception:
                pass
        ctx = self._sessions.get(job.session)
        if ctx is None:
            ctx = self._sessions[job.session] = self._browser.new_context()
        return ctx

    def _release(self, page, context, job) -> None:
        try:
            if context is not None and not job.session:
                context.close()  # closes its page too: one call, not two
            elif page is not None:
                page.close()  # a session's context lives on; only its page goes
        except Exception:
            pass  # a dead browser is noticed by the caller or the next heartbeat


# document.title is what page.title() reads; the length is of the serialised DOM.
_SUMMARY_JS = ("() => [document.title || '', "
               "document.documentElement ? document.documentElement.outerHTML.length : 0]")


def _summary(value) -> tuple[str, int]:
    """(title, length) from _SUMMARY_JS, whatever the page did to its globals."""
    if isinstance(value, list) and len(value) == 2:
        title, length = value
        return (title if isinstance(title, str) else str(title),
                length if isinstance(length, int) else 0)
    return "", 0


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _error_code(step: str, message: str) -> str:
    if step == "navigate":
        return "navigation_failed"
    if step == "eval":
        return "eval_error"
    if step == "wait_for":
        return "bad_selector" if "selector" in message.lower() else "wait_failed"
    return "page_error"


def _jsonable(value):
    """Make an evaluate() result safe for msgpack and JSON (dates, NaN, odd keys)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
