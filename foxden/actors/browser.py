"""The browser actor: one actor, one browser, sole owner of the browser's processes."""
from __future__ import annotations

import logging
import os

from thespian.actors import ActorExitRequest

from foxden import logs, procs
from foxden.actors.base import FoxdenActor, OnFailure, fault_point
from foxden.drivers import BrowserDied, open_driver, results
from foxden.protocols.errors import ErrorCode
from foxden.protocols.exits import ExitReason
from foxden.protocols import storage_state
from foxden.protocols.messages import (
    BrowserReady,
    BrowserStarted,
    Dying,
    JobDone,
    JobResult,
    LeaseReady,
    Outcome,
    Ping,
    Pong,
    RunJob,
    StartBrowser,
)

log = logging.getLogger("foxden.browser")


class BrowserActor(FoxdenActor):
    """Launches its browser on StartBrowser, runs one job at a time, closes on exit.

    While a job runs, this actor is blocked inside its driver and answers
    nothing: that is by design. It is the supervisor's watchdog that ends an
    attempt that overruns, by killing this actor and its processes; this actor
    never tries to cancel itself. A job answer (JobDone) is sent only when the
    browser survived the attempt; if the browser died, the actor exits and the
    supervisor's ChildActorExited handler answers for the job."""

    role = "browser"
    # A browser actor is disposable: one whose handler failed ends itself,
    # and the supervisor's one cleanup path answers for its job (retry or
    # browser_crashed) and replaces it.
    on_failure = OnFailure.CRASH

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._id: str | None = None
        self._supervisor = None
        self._marker: str | None = None
        self._tmpdir: str | None = None
        self._close_timeout_s = 5.0
        self._max_result_bytes = 16 << 20
        self._driver = None
        self._closed = False
        self._dying = False
        self._lease = None  # lease mode: a foxden.leases.LeaseHost, and no jobs

    # --- lifecycle -----------------------------------------------------------

    def receiveMsg_StartBrowser(self, msg: StartBrowser, sender) -> None:
        self._id, self._supervisor, self._marker = msg.browser, sender, msg.marker
        self._tmpdir = msg.tmpdir.rstrip("/") + "/"
        logs.set_context(browser=msg.browser)
        self._close_timeout_s = msg.config.watchdog.close_timeout_s
        self._max_result_bytes = int(msg.config.jobs.max_result_mb * (1 << 20))
        # Inherited by every process the driver starts: the marker lets the
        # supervisor find them all; TMPDIR keeps their profile and temp dirs
        # inside a directory it removes.
        os.environ[procs.MARKER_ENV] = msg.marker
        os.makedirs(msg.tmpdir, exist_ok=True)
        for var in ("TMPDIR", "TMP", "TEMP"):
            os.environ[var] = msg.tmpdir
        self.send(sender, BrowserStarted(msg.browser, os.getpid()))
        if msg.lease is not None:
            self._start_lease(msg, sender)
            return
        try:
            self._driver = open_driver(msg.engine, msg.config.pool, msg.tmpdir, msg.config.jobs)
            self._driver.launch()
        except Exception as exc:  # any launch failure ends this actor; the policy decides what next
            self._die(ExitReason.LAUNCH_FAILED, f"{type(exc).__name__}: {exc}".strip())
            return
        version = f"{msg.engine.name} {self._driver.version}"
        self.send(sender, BrowserReady(msg.browser, os.getpid(), tuple(self._driver.pids()), msg.engine.name, version))

    def _start_lease(self, msg: StartBrowser, sender) -> None:
        """Lease mode: a browser for one client's own Playwright, behind the lease's endpoint."""
        from foxden.leases.host import LeaseHost

        self._lease = LeaseHost(msg.engine, msg.config, msg.tmpdir, msg.lease)
        try:
            self._lease.launch()
        except Exception as exc:  # the supervisor answers the lease request with this
            self._die(ExitReason.LAUNCH_FAILED, f"{type(exc).__name__}: {exc}".strip())
            return
        self.send(sender, LeaseReady(msg.browser, os.getpid(), tuple(self._lease.pids()), msg.engine.name,
                                     f"{msg.engine.name} {self._lease.version}", self._lease.port,
                                     self._lease.playwright_version))

    def receiveMsg_ActorExitRequest(self, msg: ActorExitRequest, sender) -> None:
        self.close()

    def close(self) -> None:
        """Close the browser; idempotent; escalates to SIGKILL of our processes.

        The driver's close returns within about close_timeout_s whatever the
        browser does; whatever of ours is still alive then is killed."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._lease is not None:
                self._lease.close(self._close_timeout_s)
            if self._driver is not None:
                self._driver.close(self._close_timeout_s)
        except Exception:
            log.exception("browser %s: close failed", self._id)
        finally:
            self._kill_processes()

    def _kill_processes(self) -> None:
        left = procs.descendants(os.getpid())
        if self._marker:
            left += procs.find_marked(self._marker, exclude=[p.pid for p in left])
        procs.kill_and_wait(left, timeout=2.0)

    def _die(self, reason: ExitReason, detail: str = "") -> None:
        """Tell the supervisor why, then exit (the supervisor cleans up after us)."""
        if self._dying:
            return
        self._dying = True
        log.warning("browser %s exiting: %s %s", self._id, reason, detail)
        if self._supervisor is not None:
            self.send(self._supervisor, Dying(self._id, reason, detail[:2000]))
        self.send(self.myAddress, ActorExitRequest())

    def crash(self, detail: str) -> None:
        """An orderly exit (Dying, then close the browser) rather than the base's os._exit."""
        self._die(ExitReason.CRASH, detail)

    def _browser_alive(self) -> bool:
        if self._lease is not None:
            return self._lease.alive()
        return self._driver is not None and self._driver.alive()

    # --- heartbeat -----------------------------------------------------------

    def receiveMsg_Ping(self, msg: Ping, sender) -> None:
        alive = self._browser_alive()
        if self._lease is not None:
            self.send(sender, Pong(self._id, msg.seq, alive, self._lease.clients, self._lease.idle_for))
        else:
            self.send(sender, Pong(self._id, msg.seq, alive))
        if not alive and not self._closed:
            self._die(ExitReason.CRASH, "browser process is gone")

    # --- jobs ----------------------------------------------------------------

    def receiveMsg_RunJob(self, msg: RunJob, sender) -> None:
        if self._driver is None or self._dying or self._closed:
            return  # we are exiting; the supervisor answers for the job on our exit
        with logs.context(job=msg.job.id, session=msg.job.session):
            try:
                if msg.job.end_session:
                    closed = self._driver.end_session(msg.job.session)
                    outcome = Outcome("ok") if closed else Outcome(
                        "failed", error=ErrorCode.UNKNOWN_SESSION.error(f"no context of session {msg.job.session}"))
                else:
                    # Capped here, before the result is copied to any other process.
                    outcome = results.capped(self._driver.run(msg.job, msg.budget_s), self._max_result_bytes)
            except BrowserDied as exc:
                self._die(ExitReason.CRASH, str(exc))
                return
            except Exception as exc:  # a bug of ours, not the page's: still one answer
                log.exception("job %s failed unexpectedly", msg.job.key)
                outcome = Outcome("failed", error=ErrorCode.INTERNAL_ERROR.error(f"{type(exc).__name__}: {exc}"))
            fault_point("browser.job_done", msg.job.id)
        if msg.job.answer_to is not None:
            # Straight to the dispatcher, first: the supervisor gets a small
            # notice, so a large result is unpickled in one process only.
            state, state_error = self._session_state(msg.job) if msg.job.keep_state else (None, "")
            self.send(msg.job.answer_to, JobResult(self._id, msg.job.key, outcome, state, state_error))
            outcome = None
        self.send(sender, JobDone(self._id, msg.job.key, outcome, self._driver.sessions()))

    def _session_state(self, job) -> tuple[dict | None, str]:
        """The session's storage state after its job, or why there is none (the dispatcher keeps the latest)."""
        try:
            state = self._driver.storage_state(job.session)
        except Exception as exc:  # the session then falls back to session_lost semantics; the job's answer stands
            log.warning("session %s: could not read its storage state: %s: %s", job.session, type(exc).__name__, exc)
            return None, f"reading it failed: {type(exc).__name__}"
        if state is None:
            return None, ""
        big = storage_state.too_large(state)
        return (None, big) if big else (state, "")
