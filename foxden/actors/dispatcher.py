"""The dispatcher actor: job queue, assignment, retries, sessions, exactly one answer."""
from __future__ import annotations

import bisect
import itertools
import logging
import os
import random
import time
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field

from thespian.actors import WakeupMessage

from foxden import logs
from foxden.actors.base import FoxdenActor, OnFailure, fault_point
from foxden.actors.sessionbook import cancel_matches, with_context_options
from foxden.protocols import jobcheck, storage_state, wire
from foxden.protocols.errors import ErrorCode
from foxden.protocols.messages import (
    Assign,
    AssignRefused,
    BrowserGone,
    CancelAnswer,
    CancelAttempt,
    CancelRequest,
    Demand,
    Drain,
    Drained,
    EndSessionRequest,
    Initialized,
    InitDispatcher,
    JobAnswer,
    JobFinished,
    JobResult,
    JobSpec,
    PoolFailed,
    PoolStopped,
    SessionEndAnswer,
    SessionStateAnswer,
    SessionStateRequest,
    StateQuery,
    StopPool,
    SubmitJob,
    WorkRequest,
)
from foxden.protocols.options import DEFAULT as DEFAULT_OPTIONS, JobOptions
from foxden.protocols.urls import check_url

log = logging.getLogger("foxden.dispatcher")

TICK = "dispatcher-tick"
DRAIN_DEADLINE = "drain-deadline"
LOST_SESSIONS_KEPT = 10_000
# How an end-session job ended without an error for its client: the session is
# gone either way (closed, or lost with its browser, or never held).
SESSION_GONE = frozenset(c.value for c in (ErrorCode.BROWSER_CRASHED, ErrorCode.TIMEOUT, ErrorCode.SESSION_LOST,
                                            ErrorCode.UNKNOWN_SESSION))
# Upper bounds (seconds) of the job duration histogram, Prometheus-style.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


@dataclass
class Job:
    """An accepted job that has not had its answer yet (private to the dispatcher)."""

    key: str
    request: wire.JobRequest
    tag: object
    reply_to: object
    submitted: float  # monotonic
    tries: list[str] = field(default_factory=list)  # browsers of started attempts
    queued_at: float = 0.0
    end: bool = False  # not a page: end the session's context (an end_session request, or its idle expiry)
    options: JobOptions = DEFAULT_OPTIONS  # its page options, as validated at intake
    restored: dict | None = None  # the state its last attempt was sent to restore (put back if refused)

    @property
    def session(self) -> str | None:
        return self.request.session


class DispatcherActor(FoxdenActor):
    """Owns every accepted job until its one answer.

    `jobs` holds each accepted, unanswered job; answering removes it, so a
    second answer for the same job is structurally impossible (it finds
    nothing to answer). A job is either in `queue` or in `running` (browser ->
    job key), never both. `idle` holds browsers that asked for work. Jobs of
    one session run one at a time, in order, on the browser that holds the
    session's context: the browser actor is the session's lock."""

    role = "dispatcher"
    # A failed handler must not leave a job without its answer or a browser
    # neither idle, running nor gone: repair() restores both (see there).
    on_failure = OnFailure.REPAIR

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.config = None
        self.supervisor = None
        self.engine = ""
        self.jobs: dict[str, Job] = {}
        self.queue: deque[str] = deque()
        self.running: dict[str, str] = {}
        self.idle: OrderedDict[str, None] = OrderedDict()  # an ordered set
        # Sequence numbers, not state: per browser [Assigns sent, attempt ends
        # received], and BrowserGone messages received. The admin compares
        # them with the supervisor's to tell a message still in transit from
        # a broken invariant (see StateQuery). A browser's entry goes with
        # its BrowserGone (or a refusal that says it is gone).
        self.channel: dict[str, list[int]] = {}
        self.gones = 0
        # Attempts the supervisor said ended (JobFinished) before their
        # JobResult came: (browser, job key). Their jobs are neither queued
        # nor running; the JobResult or the browser's BrowserGone settles them.
        self.awaiting: set[tuple[str, str]] = set()
        self.session_home: dict[str, str] = {}
        self.lost_sessions: OrderedDict[str, str] = OrderedDict()
        # A session is live from its first accepted job while it has a home
        # (a context in a browser) or unanswered jobs; live ones count toward
        # [sessions] max, and one unused for [sessions] idle_s is ended.
        self.session_used: dict[str, float] = {}  # live session -> last submit or answer (monotonic)
        self.session_jobs: Counter = Counter()  # live session -> its unanswered jobs
        # Persistent sessions ([sessions] persist): a session's storage state
        # after its last answered job (present: the session can be restored on
        # any browser, so it is never lost), the sessions whose next job must
        # make its context afresh from that state (its browser ended, or a
        # state was imported), and the context options it started with.
        self.persist = True
        self.snapshots: dict[str, dict] = {}
        self.restore_next: set[str] = set()
        self.session_context: dict[str, tuple] = {}
        self.pool_error: str | None = None
        self.draining = False
        self.drain_reply = None
        self.drain_answered = 0
        self.pool_stop_sent = False
        self.elastic = False
        self.demand_sent = 0
        self.totals: Counter = Counter()
        self.duration_counts = [0] * (len(DURATION_BUCKETS) + 1)  # the last one is +Inf
        self.duration_sum = 0.0
        self.errors: Counter = Counter()
        self.seq = itertools.count(1)
        self.prefix = f"j{os.getpid():x}-"
        self.random = random.Random()

    def receiveMsg_InitDispatcher(self, msg: InitDispatcher, sender) -> None:
        self.config, self.supervisor, self.engine = msg.config, msg.supervisor, msg.engine
        self.persist = self.config.sessions.persist
        self.elastic = self.config.pool.min != self.config.pool.max
        self.wakeupAfter(self.config.watchdog.interval_s, payload=TICK)
        self.send(sender, Initialized("dispatcher", os.getpid()))

    # --- intake ----------------------------------------------------------------

    def receiveMsg_SubmitJob(self, msg: SubmitJob, sender) -> None:
        req: wire.JobRequest = msg.request
        key = f"{self.prefix}{next(self.seq)}"
        job = Job(key, req, msg.tag, msg.reply_to or sender, time.monotonic())
        self.jobs[key] = job
        self.totals["submitted"] += 1
        refusal = self._refusal(req)
        if refusal is not None:
            status, error = refusal
            self._answer(job, status, error=error)
            return
        job.options = jobcheck.options_of(req)  # valid: _refusal checked them
        self._enqueue(job)

    def _enqueue(self, job: Job) -> None:
        if job.session is not None:
            self.session_used[job.session] = job.submitted
            self.session_jobs[job.session] += 1
        job.queued_at = job.submitted
        self.queue.append(job.key)
        self._pump()

    def receiveMsg_EndSessionRequest(self, msg: EndSessionRequest, sender) -> None:
        if self.draining:
            self.send(sender, SessionEndAnswer(msg.tag, msg.session, False,
                                               ErrorCode.SHUTTING_DOWN.error("the daemon is shutting down")))
        elif msg.session not in self.session_used:
            self.send(sender, SessionEndAnswer(msg.tag, msg.session, False))
        else:
            self._end_session(msg.session, msg.tag, sender)

    # --- cancel and session state (issue #14) --------------------------------------------

    def receiveMsg_CancelRequest(self, msg: CancelRequest, sender) -> None:
        keys = cancel_matches(((k, j.request.id, j.end) for k, j in self.jobs.items()), msg.id)
        for key in keys:
            self._cancel(self.jobs[key])
        self.send(sender, CancelAnswer(msg.tag, msg.id, len(keys)))

    def _cancel(self, job: Job) -> None:
        """Answer a job failed/cancelled now; a running attempt's browser is ended (CancelAttempt).

        Its browser stays in `running` until the supervisor's BrowserGone (or
        JobFinished, if the attempt ended before the cancel reached it): no
        other job is given to it meanwhile, and the attempt's late JobResult
        finds no job to answer."""
        browser = next((b for b, k in self.running.items() if k == job.key), None)
        if job.key in self.queue:
            self.queue.remove(job.key)
        elif browser is not None:
            self.send(self.supervisor, CancelAttempt(browser, job.key))
        where = "queued" if browser is None else f"running on browser {browser}, which is replaced"
        with logs.context(job=job.request.id or job.key, session=job.session, browser=browser):
            log.info("job %s: cancelled (%s)", job.key, where)
        self._answer(job, "failed", browser=browser,
                     error=ErrorCode.CANCELLED.error(f"cancelled by a client's request while {where}"))

    def receiveMsg_SessionStateRequest(self, msg: SessionStateRequest, sender) -> None:
        if msg.state is None:  # export: the state after the session's last answered job
            self.send(sender, SessionStateAnswer(msg.tag, msg.session, self.snapshots.get(msg.session)))
            return
        error = self._import_refusal(msg.session, msg.state)
        if error is None:
            self.snapshots[msg.session] = msg.state
            self.restore_next.add(msg.session)
            self.lost_sessions.pop(msg.session, None)
            self.session_used[msg.session] = time.monotonic()  # live: counted, and ended when unused
            log.info("session %s: imported a storage state (%d cookies, %d origins)", msg.session,
                     storage_state.cookie_count(msg.state), len(msg.state.get("origins", ())))
        self.send(sender, SessionStateAnswer(msg.tag, msg.session, error=error, imported=True))

    def _import_refusal(self, session: str, state: dict) -> wire.ErrorInfo | None:
        if self.draining:
            return ErrorCode.SHUTTING_DOWN.error("the daemon is shutting down")
        most = self.config.sessions.max
        if session not in self.session_used and len(self.session_used) >= most:
            return ErrorCode.TOO_MANY_SESSIONS.error(f"{len(self.session_used)} sessions are open "
                                                     f"([sessions] max = {most})")
        big = storage_state.too_large(state)
        return None if big is None else ErrorCode.BAD_INPUT.error(f"state: {big}")

    def _end_session(self, session: str, tag, reply_to) -> None:
        """Queue the end of a session behind its jobs: it runs on the browser that holds the session
        (the session's lock) like a job, and closes its context. reply_to None: an idle expiry."""
        key = f"{self.prefix}{next(self.seq)}"
        timeout = self.config.watchdog.close_timeout_s
        self.jobs[key] = Job(key, wire.JobRequest(url="about:blank", session=session, timeout_s=timeout), tag,
                             reply_to, time.monotonic(), end=True)
        self._enqueue(self.jobs[key])

    def _refusal(self, req: wire.JobRequest) -> tuple[str, wire.ErrorInfo] | None:
        if self.draining:
            return "rejected", ErrorCode.SHUTTING_DOWN.error("the daemon is shutting down")
        limit = self.config.jobs.max_timeout_s
        if req.timeout_s is not None and req.timeout_s > limit:
            return ("rejected", ErrorCode.BAD_INPUT.error(
                    f"job.timeout_s: {req.timeout_s:g} exceeds the daemon's limit of {limit:g}s ([jobs] max_timeout_s)"))
        most = self.config.sessions.max
        if req.session is not None and req.session not in self.session_used and len(self.session_used) >= most:
            return ("rejected", ErrorCode.TOO_MANY_SESSIONS.error(
                    f"{len(self.session_used)} sessions are open ([sessions] max = {most}); end one "
                    "(end_session) or let one expire ([sessions] idle_s)"))
        bad = check_url(req.url, self.config.jobs)
        if bad is not None:
            return "rejected", bad
        bad = jobcheck.refusal(req, self.engine, self.config.jobs)  # the page options (#14)
        if bad is not None:
            return "rejected", bad
        if self.pool_error is not None:
            return "failed", ErrorCode.NO_BROWSERS.error(self.pool_error)
        if len(self.queue) >= self.config.jobs.max_queue:
            return "rejected", ErrorCode.QUEUE_FULL.error(f"{len(self.queue)} jobs already queued ([jobs] max_queue)")
        return None

    # --- assignment --------------------------------------------------------------

    def receiveMsg_WorkRequest(self, msg: WorkRequest, sender) -> None:
        self.idle[msg.browser] = None
        self._pump()

    def _pump(self) -> None:
        """Hand queued jobs to idle browsers, oldest job first, sessions respected."""
        self._assign_queued()
        if self.elastic and len(self.queue) != self.demand_sent and not self.draining:
            # Only elastic pools care, and only when the number changes.
            self.demand_sent = len(self.queue)
            self.send(self.supervisor, Demand(self.demand_sent))

    def _assign_queued(self) -> None:
        if not self.idle or not self.queue or self.draining:
            return
        # A running attempt's job may be answered already (its JobResult came
        # before the supervisor's JobFinished): its browser is still busy.
        busy_sessions = {self.jobs[k].session for k in self.running.values() if k in self.jobs}
        kept: deque[str] = deque()
        while self.queue and self.idle:
            key = self.queue.popleft()
            job = self.jobs[key]
            session = job.session
            if session is None:
                self._assign(job, next(iter(self.idle)))
                continue
            if session in self.lost_sessions and not job.request.new_session:
                self._answer(job, "failed", error=ErrorCode.SESSION_LOST.error(self._lost_message(session)))
                continue
            home = self.session_home.get(session)
            if job.end and home is None and session not in busy_sessions:
                if session in self.snapshots:  # persisted, its context in no browser: ending it forgets it
                    self._answer(job, "ok")
                else:
                    self._answer(job, "failed",
                                 error=ErrorCode.UNKNOWN_SESSION.error(f"no browser holds session {session}"))
                continue
            if session in busy_sessions or (home is not None and home not in self.idle):
                # Its predecessor still runs, or its browser is busy with
                # another job: wait, and keep later jobs of it behind it.
                busy_sessions.add(session)
                kept.append(key)
                continue
            if home is None:
                home = next(iter(self.idle))
                self.lost_sessions.pop(session, None)
            busy_sessions.add(session)
            self.session_home[session] = home
            self._assign(job, home)
        kept.extend(self.queue)
        self.queue = kept

    def _assign(self, job: Job, browser: str) -> None:
        del self.idle[browser]
        self.running[browser] = job.key
        self.channel.setdefault(browser, [0, 0])[0] += 1
        job.tries.append(browser)
        req = job.request
        timeout = req.timeout_s or self.config.jobs.timeout_s
        # Random jitter per attempt: a burst of jobs that all hang must not
        # time out (and kill their browsers) in the same instant (seed, 7.3).
        budget = timeout + self.random.uniform(0.0, self.config.jobs.jitter_s)
        new_session = req.new_session and len(job.tries) == 1
        options, restore = self._session_options(job, new_session)
        spec = JobSpec(
            key=job.key, id=req.id or job.key, url=req.url, eval=req.eval, wait_for=req.wait_for,
            # A context made from a state replaces any the browser holds for the session.
            timeout_s=timeout, session=req.session, new_session=new_session or restore is not None,
            screenshot=req.screenshot, answer_to=self.myAddress, end_session=job.end, options=options,
            restore=restore, keep_state=self.persist and job.session is not None and not job.end,
        )
        self.send(self.supervisor, Assign(browser, spec, budget))

    def _session_options(self, job: Job, new_session: bool) -> tuple[JobOptions, dict | None]:
        """The options an attempt runs with and the state its session's context is made from (if afresh).

        A session's first job (or a new_session one) fixes its context options
        and, persisted, starts it from the empty state; a later job gets the
        session's context options, and the kept state when its context must be
        made afresh (restore_next)."""
        session = job.session
        if session is None or job.end:
            return job.options, None
        if new_session or session not in self.session_context:
            self.session_context[session] = job.options.context_options
            if new_session:
                self.restore_next.discard(session)
                self.snapshots.pop(session, None)
            if self.persist:
                self.snapshots.setdefault(session, storage_state.EMPTY)
        restore = None
        if session in self.restore_next:
            self.restore_next.discard(session)
            restore = self.snapshots.get(session)
            if not self.persist:
                self.snapshots.pop(session, None)  # an import, used once: nothing keeps it up to date
        job.restored = restore
        return with_context_options(job.options, self.session_context[session]), restore

    def receiveMsg_AssignRefused(self, msg: AssignRefused, sender) -> None:
        self._attempt_ended(msg.browser, forget=msg.gone)
        if self.running.get(msg.browser) == msg.job_key:
            del self.running[msg.browser]
        job = self.jobs.get(msg.job_key)
        if job is not None:
            if job.tries and job.tries[-1] == msg.browser:
                job.tries.pop()  # it never started: not an attempt
            if job.restored is not None:  # its context was to be made from this state: still to be
                self.restore_next.add(job.session)
                self.snapshots.setdefault(job.session, job.restored)
            self.queue.appendleft(job.key)
        self._pump()

    def _attempt_ended(self, browser: str, forget: bool = False) -> None:
        """Number an attempt-ending message from the supervisor (see self.channel)."""
        if forget:
            self.channel.pop(browser, None)
        elif browser in self.channel:  # not one already forgotten: a late message must not revive it
            self.channel[browser][1] += 1

    # --- outcomes ------------------------------------------------------------------

    def receiveMsg_JobFinished(self, msg: JobFinished, sender) -> None:
        self._attempt_ended(msg.browser)
        if self.running.get(msg.browser) == msg.job_key:
            del self.running[msg.browser]
        job = self.jobs.get(msg.job_key)
        if job is not None:
            if msg.outcome is not None:
                self._answer_outcome(job, msg.outcome, msg.browser)
            else:
                self.awaiting.add((msg.browser, msg.job_key))  # its JobResult is on its way
        if self.draining:
            self._maybe_stop_pool()
        else:
            if msg.available:
                self.idle[msg.browser] = None
            self._pump()

    def receiveMsg_JobResult(self, msg: JobResult, sender) -> None:
        job = self.jobs.get(msg.job_key)
        attempt = (msg.browser, msg.job_key)
        if attempt in self.awaiting:
            self.awaiting.discard(attempt)
        elif self.running.get(msg.browser) != msg.job_key:
            # Its attempt was settled without it (its browser's BrowserGone
            # came first: the job was retried or answered): one answer only.
            log.info("job %s: dropped a late result from browser %s", msg.job_key, msg.browser)
            return
        if job is not None:
            self._keep_state(job, msg)
            self._answer_outcome(job, msg.outcome, msg.browser)
        self._maybe_stop_pool()

    def _keep_state(self, job: Job, msg: JobResult) -> None:
        """Keep the session's storage state the attempt brought (persisted sessions only)."""
        session = job.session
        if not self.persist or session is None or job.end or session in self.restore_next:
            return  # restore_next: a state imported meanwhile wins over the one this job left
        if msg.state is not None:
            self.snapshots[session] = msg.state
        elif msg.state_error and self.snapshots.pop(session, None) is not None:
            with logs.context(job=job.request.id or job.key, session=session):
                log.warning("session %s: its snapshot is dropped (%s); it is lost if its browser ends",
                            session, msg.state_error)

    def _answer_outcome(self, job: Job, outcome, browser: str) -> None:
        fault_point("dispatcher.answer_outcome", job.request.id)
        self._answer(job, outcome.status, error=outcome.error, result=outcome.result, browser=browser)

    def receiveMsg_BrowserGone(self, msg: BrowserGone, sender) -> None:
        self.gones += 1
        self.channel.pop(msg.browser, None)
        self.idle.pop(msg.browser, None)
        if msg.job_key is not None and self.running.get(msg.browser) == msg.job_key:
            del self.running[msg.browser]
        for session, home in list(self.session_home.items()):
            if home == msg.browser:
                del self.session_home[session]
                if session in self.snapshots:  # persisted: its next job is restored on another browser
                    self.restore_next.add(session)
                    continue
                self.lost_sessions[session] = f"browser {msg.browser} ended ({msg.reason})"
                self._forget_if_dead(session)
        while len(self.lost_sessions) > LOST_SESSIONS_KEPT:
            self.lost_sessions.popitem(last=False)
        job = self.jobs.get(msg.job_key) if msg.job_key else None
        if job is not None:
            self._attempt_died(job, msg)
        for attempt in [a for a in self.awaiting if a[0] == msg.browser]:
            # Its JobResult did not come before the browser ended: it may
            # never come, so the attempt counts as died with its browser.
            self.awaiting.discard(attempt)
            if attempt[1] in self.jobs:
                self._attempt_died(self.jobs[attempt[1]], msg)
        if self.draining:
            self._maybe_stop_pool()
        else:
            self._pump()

    def _attempt_died(self, job: Job, msg: BrowserGone) -> None:
        where = f"browser {msg.browser} {msg.reason}" + (f": {msg.detail}" if msg.detail else "")
        # Classified by the reason's properties only: not retried and a
        # failure = the job overran its time; not retried and normal = shutdown.
        if not msg.exit.retries_job and not msg.exit.is_normal:
            self._answer(job, "timeout", browser=msg.browser,
                         error=ErrorCode.TIMEOUT.error(f"no answer within the attempt's budget; {where}"))
        elif not msg.exit.retries_job or self.draining:
            self._answer(job, "failed", browser=msg.browser,
                         error=ErrorCode.SHUTTING_DOWN.error(f"the daemon stopped during the job; {where}"))
        elif job.session is not None and not job.request.new_session and job.session not in self.snapshots:
            self._answer(job, "failed", browser=msg.browser,
                         error=ErrorCode.BROWSER_CRASHED.error(f"{where}; session {job.session} was lost with it"))
        elif len(job.tries) <= self.config.jobs.retries and self.pool_error is None:
            self.totals["retried"] += 1
            with logs.context(browser=msg.browser, job=job.request.id or job.key, session=job.session):
                log.info("job %s: retrying after %s", job.key, where)
            self.queue.appendleft(job.key)
        else:
            code = ErrorCode.NO_BROWSERS if self.pool_error else ErrorCode.BROWSER_CRASHED
            if msg.exit.node_lost:  # cluster (issue #16): the node went, not the browser
                code = ErrorCode.NODE_LOST
            self._answer(job, "failed", error=code.error(where), browser=msg.browser)

    def receiveMsg_PoolFailed(self, msg: PoolFailed, sender) -> None:
        self.pool_error = msg.error
        while self.queue:
            job = self.jobs[self.queue.popleft()]
            self._answer(job, "failed", error=ErrorCode.NO_BROWSERS.error(msg.error))

    def _lost_message(self, session: str) -> str:
        return (f"session {session} is gone ({self.lost_sessions[session]}); "
                "submit with new_session to start it afresh")

    # --- after a failed handler ----------------------------------------------------------

    def repair(self, msg) -> None:
        """Restore what a failed handler may have left half-done; idempotent.

        Between handlers every unanswered job is queued, running or
        awaiting its JobResult, and a browser that ended an attempt is idle
        (if still available), running another job or gone. The attempt `msg`
        ended is over whatever the handler did; any job that is then in none
        of those places lost its way and is answered internal_error, exactly
        once (answering removes it). Raising here crashes the dispatcher
        (base.OnFailure): the daemon's watch then stops the instance."""
        browser, job_key = getattr(msg, "browser", None), getattr(msg, "job_key", None)
        if job_key is not None and self.running.get(browser) == job_key:
            del self.running[browser]
        if isinstance(msg, BrowserGone):
            self.idle.pop(browser, None)
            self.channel.pop(browser, None)
        elif isinstance(msg, JobFinished) and msg.available and not self.draining and browser in self.channel \
                and browser not in self.running:
            self.idle[browser] = None  # it lives on: not forgotten by the dispatcher while the supervisor keeps it
        placed = set(self.queue) | set(self.running.values()) | {key for _, key in self.awaiting}
        for job in [j for key, j in self.jobs.items() if key not in placed]:
            self._answer(job, "failed", browser=job.tries[-1] if job.tries else None,
                         error=ErrorCode.INTERNAL_ERROR.error(
                             f"the dispatcher failed while handling {type(msg).__name__}; see the daemon's log"))
        if self.draining:
            self._maybe_stop_pool()
        else:
            self._pump()

    # --- the one answer ----------------------------------------------------------------

    def _answer(self, job: Job, status: str, *, error: wire.ErrorInfo | None = None,
                result: wire.PageResult | None = None, browser: str | None = None) -> None:
        if job.key not in self.jobs:
            log.error("job %s: a second answer (%s) was suppressed", job.key, status)
            return
        if job.end:  # an end-session job: its answer is a SessionEndAnswer, not a job's
            del self.jobs[job.key]
            self._session_answered(job, status)
            self._answer_end(job, status, error)
            return
        elapsed = time.monotonic() - job.submitted
        # Built before the job is forgotten: if building fails, the job is
        # still here for the failure policy (repair) to answer.
        answer = wire.Answer(
            id=job.request.id or job.key,
            status=status,
            error=error,
            result=result,
            attempts=len(job.tries),
            browser=browser,
            elapsed_ms=round(elapsed * 1000.0, 3),
        )
        del self.jobs[job.key]
        # queued_at is set once a job is accepted (_enqueue): a job refused at intake was never counted.
        if job.session is not None and job.queued_at:
            self._session_answered(job, status)
        self.totals[status] += 1
        self.duration_counts[bisect.bisect_left(DURATION_BUCKETS, elapsed)] += 1
        self.duration_sum += elapsed
        if error is not None:
            self.errors[error.code] += 1
        if self.draining:
            self.drain_answered += 1
        self.send(job.reply_to, JobAnswer(job.tag, answer))

    # --- sessions ----------------------------------------------------------------------

    def _session_answered(self, job: Job, status: str) -> bool:
        """Account for an answered job of a session; True if it was an end-session job."""
        session = job.session
        self.session_jobs[session] -= 1
        if self.session_jobs[session] <= 0:
            del self.session_jobs[session]
        if session in self.session_used:
            self.session_used[session] = time.monotonic()
        if job.end and status == "ok":
            self.session_home.pop(session, None)  # its context is closed (had its browser died, so had its home)
            self.snapshots.pop(session, None)
        self._forget_if_dead(session)
        return job.end

    def _forget_if_dead(self, session: str) -> None:
        """Forget a session that has no context, no unanswered job and no kept state."""
        if session not in self.session_jobs and session not in self.session_home and session not in self.snapshots:
            self.session_used.pop(session, None)
            self.session_context.pop(session, None)
            self.restore_next.discard(session)

    def _answer_end(self, job: Job, status: str, error) -> None:
        gone = status == "ok" or (error is not None and error.code in SESSION_GONE)
        if job.reply_to is None:
            log.info("session %s: ended after %gs unused ([sessions] idle_s)%s", job.session,
                     self.config.sessions.idle_s, "" if gone else f"; the end failed: {error}")
            return
        existed = status == "ok" or (gone and bool(job.tries) and error.code != ErrorCode.SESSION_LOST.value)
        self.send(job.reply_to, SessionEndAnswer(job.tag, job.session, existed, None if gone else error))

    def _expire_sessions(self, now: float) -> None:
        """End each session unused for [sessions] idle_s (queued behind nothing: it has no jobs)."""
        idle = self.config.sessions.idle_s
        for session, used in list(self.session_used.items()):
            if now - used > idle and session not in self.session_jobs:
                self._end_session(session, None, None)

    # --- time ------------------------------------------------------------------------

    def receiveMsg_WakeupMessage(self, msg: WakeupMessage, sender) -> None:
        if msg.payload == TICK:
            self._expire_queued()
            if not self.draining:
                self._expire_sessions(time.monotonic())
            self.wakeupAfter(self.config.watchdog.interval_s, payload=TICK)
        elif msg.payload == DRAIN_DEADLINE and self.draining:
            self._stop_pool()

    def _expire_queued(self) -> None:
        limit = self.config.jobs.queue_timeout_s
        now = time.monotonic()
        if not self.queue or now - self.jobs[self.queue[0]].queued_at <= limit:
            return
        for key in [k for k in self.queue if now - self.jobs[k].queued_at > limit]:
            self.queue.remove(key)
            self._answer(self.jobs[key], "timeout",
                         error=ErrorCode.QUEUE_TIMEOUT.error(
                             f"no browser became free within {limit:g}s ([jobs] queue_timeout_s)"))

    # --- shutdown --------------------------------------------------------------------

    def receiveMsg_Drain(self, msg: Drain, sender) -> None:
        if self.draining:
            return
        self.draining, self.drain_reply = True, sender
        log.info("draining: %d queued rejected, %d in flight get %.1fs", len(self.queue), len(self.running),
                 msg.grace_s)
        while self.queue:
            job = self.jobs[self.queue.popleft()]
            self._answer(job, "rejected", error=ErrorCode.SHUTTING_DOWN.error("the daemon is shutting down"))
        self.idle.clear()
        if self.running:
            self.wakeupAfter(msg.grace_s, payload=DRAIN_DEADLINE)
        self._maybe_stop_pool()

    def _maybe_stop_pool(self) -> None:
        if self.draining and not self.running and not self.queue and not self.awaiting:
            self._stop_pool()

    def _stop_pool(self) -> None:
        if not self.pool_stop_sent:
            self.pool_stop_sent = True
            self.send(self.supervisor, StopPool())

    def receiveMsg_PoolStopped(self, msg: PoolStopped, sender) -> None:
        # Every BrowserGone was delivered before this (same sender, in order),
        # so anything still here was queued for a retry after its browser died.
        for job in list(self.jobs.values()):
            self._answer(job, "failed",
                         error=ErrorCode.SHUTTING_DOWN.error("the daemon stopped before the job could run"))
        self.queue.clear()
        self.awaiting.clear()
        if self.drain_reply is not None:
            self.send(self.drain_reply, Drained(self.drain_answered))

    # --- state -----------------------------------------------------------------------

    def receiveMsg_StateQuery(self, msg: StateQuery, sender) -> None:
        if msg.supervisor is None:
            self.send(self.supervisor, StateQuery(msg.tag, msg.reply_to, self.snapshot()))
        else:
            self.send(msg.reply_to, StateQuery(msg.tag, msg.reply_to, msg.dispatcher_before, msg.supervisor,
                                               self.snapshot()))

    def snapshot(self) -> dict:
        return {
            "pid": os.getpid(),
            "queue_depth": len(self.queue),
            "running": dict(self.running),
            "channel": {b: list(n) for b, n in self.channel.items()},
            "gones": self.gones,
            "running_ids": {b: (self.jobs[k].request.id or k) for b, k in self.running.items() if k in self.jobs},
            "unanswered": len(self.jobs),
            "awaiting_results": len(self.awaiting),
            "idle": list(self.idle),
            "sessions": dict(self.session_home),
            "totals": {k: self.totals.get(k, 0) for k in ("submitted", "ok", "failed", "timeout", "rejected", "retried")},
            "errors": dict(self.errors),
            "durations": {"buckets": list(DURATION_BUCKETS), "counts": list(self.duration_counts),
                          "sum_s": round(self.duration_sum, 6)},
            "pool_error": self.pool_error,
            "draining": self.draining,
        }
