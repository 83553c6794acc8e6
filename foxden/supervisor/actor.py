"""The supervisor actor: parent of every browser actor, its watchdog and its only cleaner (a thin shell)."""
from __future__ import annotations

import gc
import importlib
import logging
import os
import time
from collections import Counter

from thespian.actors import ActorExitRequest, ChildActorExited, WakeupMessage

from foxden import logs, procs
from foxden.actors.base import FoxdenActor, OnFailure, fault_point
from foxden.protocols.exits import ExitReason
from foxden.protocols.messages import (
    Assign,
    AssignRefused,
    BrowserGone,
    BrowserReady,
    BrowserStarted,
    CancelAttempt,
    Demand,
    Dying,
    Initialized,
    InitSupervisor,
    JobDone,
    JobFinished,
    Ping,
    PoolFailed,
    PoolStopped,
    Pong,
    RunJob,
    StartBrowser,
    StateQuery,
    StopPool,
    WorkRequest,
)
from foxden.supervisor import policy, pool, reaper, watchdog
from foxden.supervisor.children import Child, ChildState, Lingering
from foxden.supervisor.leasing import Leasing

__all__ = ["Lingering", "SupervisorActor", "TICK"]

log = logging.getLogger("foxden.supervisor")

TICK = "watchdog-tick"
BROWSER_ACTOR = "foxden.actors.browser.BrowserActor"  # created by name, as Thespian does
BUSY, IDLE, STARTING, STOPPING = ChildState.BUSY, ChildState.IDLE, ChildState.STARTING, ChildState.STOPPING


class SupervisorActor(Leasing, FoxdenActor):
    """Keeps `size` browsers alive under an OTP restart policy.

    Every decision is a pure function of the policy, watchdog, pool and
    children modules; this actor receives, asks them, acts and sends.
    The live count is len(self.children), never a counter. Children leave
    `self.children` in exactly one place, _child_exited (run on Thespian's
    ChildActorExited, or by _missed_exits when Thespian dropped that notice),
    which is also the only place that kills stragglers, removes temp dirs,
    tells the dispatcher about the lost attempt and applies the restart
    policy. Everything else that wants a child gone only kills its processes.

    A handler that raises is repaired (OnFailure.REPAIR, see repair()):
    the dispatcher always learns that a child is gone or that its attempt
    ended, and the pool returns to its target."""

    role = "supervisor"
    on_failure = OnFailure.REPAIR

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.children: dict[str, Child] = {}  # in start order (rest_for_one relies on it)
        self.leased: dict[str, Child] = {}  # leased browsers: out of the pool (see supervisor/leasing.py)
        self.config = self.engine = self.dispatcher = None
        self.limits: watchdog.Limits | None = None
        self.instance = ""
        self.policy: policy.RestartPolicy | None = None
        self.history = policy.RestartHistory()
        self.target = self.slots = self.queued = 0
        self.held_back: str | None = None
        self.pss_cursor = self.generation = 0
        self.next_start_at = 0.0
        self.stopping = False
        self.stop_reply = None
        self.failed: str | None = None
        self.last_launch_error = ""
        self.kills: Counter = Counter()  # by ExitReason value
        self.exits: Counter = Counter()  # by ExitReason value
        self.restarts = self.gones = 0
        self.hang_to_dead_ms: list[float] = []
        self.lingering: dict[int, Lingering] = {}
        self.removed_dirs: dict[str, float] = {}  # temp dirs of recent exits, looked at again (reaper.recheck_dirs)
        # Children out of `children` whose exit the restart policy has not
        # been applied to yet, with the start order at their exit: normally
        # for the span of one _child_exited; longer only if it failed (repair).
        self.exiting: dict[str, tuple[Child, list[str]]] = {}

    # --- wiring --------------------------------------------------------------

    def receiveMsg_InitSupervisor(self, msg: InitSupervisor, sender) -> None:
        self.config, self.engine = msg.config, msg.engine
        self.instance, self.dispatcher = msg.instance, msg.dispatcher
        self.daemon_pid = msg.daemon_pid
        self.browser_prefix = msg.browser_prefix  # "" but on a cluster member (foxden.cluster.node)
        self.daemon_created = procs.create_time(msg.daemon_pid) if msg.daemon_pid else None
        self.policy = policy.RestartPolicy.from_config(self.config.restart)
        self.limits = watchdog.Limits.from_config(self.config)
        self.slots, self.target = self.config.pool.max, self.config.pool.size
        self.tmp_root = procs.browsers_dir(self.config.daemon.state_dir)
        # Thespian forks every browser actor from this process. Imported now,
        # the browser's modules are shared with us instead of imported into
        # each child; frozen now, the objects we have (modules, classes,
        # code) are never visited by a child's garbage collector, so their
        # pages stay shared too (PSS per browser actor 9.5 -> 8.9 MB). Once
        # only: what is frozen is never collected, so nothing later is.
        importlib.import_module(BROWSER_ACTOR.rpartition(".")[0])
        if self.engine.name == "chromium":
            import foxden.drivers.chromium  # noqa: F401
        gc.collect()
        gc.freeze()
        os.makedirs(self.tmp_root, exist_ok=True)
        self._fill()
        self.wakeupAfter(self.config.watchdog.interval_s, payload=TICK)
        self.send(sender, Initialized("supervisor", os.getpid()))

    # --- starting children ---------------------------------------------------

    def _fill(self) -> None:
        """Start children until `target` are up (backoff, launch concurrency and memory permitting)."""
        if self.stopping or self.failed:
            return
        now = time.monotonic()
        kids = self.children.values()
        while pool.active(kids) < self.target and now >= self.next_start_at:
            # Launches are throttled: fifty at once on two cores starved the
            # idle actors' heartbeats (killed as unresponsive, restarts spent
            # the intensity, the pool failed) and fooled memory admission,
            # which cannot see what a launch has not allocated yet.
            if pool.starting(kids) >= self.config.pool.launch_concurrency:
                return  # the next BrowserReady or exit calls us again
            held = pool.memory_hold([c.pss for c in kids if c.pss], pool.starting(kids),
                                    procs.available_memory(), self.config.pool.memory_headroom_mb)
            if held != self.held_back:
                (log.warning if held else log.info)("browser starts %s", held or "resumed: memory is available")
                self.held_back = held
            if held:
                return  # jobs wait in the queue (bounded) rather than the box swapping
            self._start_child()

    def _start_child(self) -> None:
        self.generation += 1
        bid = f"{self.browser_prefix}b{self.generation}"
        addr = self.createActor(BROWSER_ACTOR)
        child = Child(id=bid, addr=addr,
                      marker=f"{self.instance}/{bid}/",  # self-delimiting: b1 must not match b10
                      tmpdir=os.path.join(self.tmp_root, bid), created=time.monotonic(), started_at=time.time())
        self.children[bid] = child
        self.send(addr, StartBrowser(bid, self.config, self.engine, child.marker, child.tmpdir))

    def _rescale(self, now: float) -> None:
        """Set the pool's target from demand; retire the idle browsers it no longer wants."""
        decided = pool.target(self.config.pool, self.slots, list(self.children.values()), self.queued, now)
        self.target = decided.size
        for bid in decided.retire:
            self._retire(self.children[bid], ExitReason.IDLE)

    def _retire(self, child: Child, reason: ExitReason) -> None:
        """Stop a healthy idle browser on purpose (it is replaced unless the pool shrinks)."""
        if child.end(reason):
            with logs.context(browser=child.id):
                log.info("retiring browser %s (%s) after %d jobs", child.id, reason.value, child.jobs_done)
        self._request_stop(child, reason)

    def _any_child(self, bid: str) -> Child | None:
        """A pool child or a leased one."""
        return self.children.get(bid) or self.leased.get(bid)

    def _everyone(self) -> list[Child]:
        """Pool children and leased ones: what the watchdog watches and the cleanup path cleans."""
        return [*self.children.values(), *self.leased.values()]

    def receiveMsg_BrowserStarted(self, msg: BrowserStarted, sender) -> None:
        child = self._any_child(msg.browser)
        if child is not None:
            child.pid = msg.pid
            child.pid_created = procs.create_time(msg.pid)

    def receiveMsg_BrowserReady(self, msg: BrowserReady, sender) -> None:
        child = self.children.get(msg.browser)
        if child is None or child.state is not STARTING:
            return
        if child.pid != msg.pid:
            child.pid_created = procs.create_time(msg.pid)
        child.pid, child.browser_pids = msg.pid, msg.browser_pids
        child.main_created = procs.create_time(msg.browser_pids[0]) if msg.browser_pids else None
        child.engine, child.version = msg.engine, msg.version
        child.move(IDLE)
        child.last_pong = child.idle_since = time.monotonic()
        with logs.context(browser=msg.browser):
            log.info("browser %s ready: %s %s pid=%s browser_pids=%s", msg.browser, msg.engine, msg.version,
                     msg.pid, list(msg.browser_pids))
        if self.stopping:
            self._request_stop(child, ExitReason.SHUTDOWN)
        else:
            self.send(self.dispatcher, WorkRequest(msg.browser, msg.engine))
            self._fill()  # a launch slot is free

    def receiveMsg_Dying(self, msg: Dying, sender) -> None:
        child = self._any_child(msg.browser)
        if child is None:
            return
        child.end(msg.exit, msg.detail)
        if child.state is not STOPPING:
            child.move(STOPPING)
            child.stop_by = watchdog.stop_deadline(time.monotonic(), self.limits)

    # --- jobs ----------------------------------------------------------------

    def receiveMsg_Assign(self, msg: Assign, sender) -> None:
        child = self.children.get(msg.browser)
        if child is None:
            self.send(sender, AssignRefused(msg.browser, msg.job.key, gone=True))
            return
        child.assigns += 1
        if child.state is not IDLE or self.stopping:
            child.ends += 1
            self.send(sender, AssignRefused(msg.browser, msg.job.key))
            return
        now = time.monotonic()
        child.move(BUSY)
        child.job, child.job_started, child.deadline = msg.job, now, now + msg.budget_s
        self.send(child.addr, RunJob(msg.job, msg.budget_s))

    def receiveMsg_JobDone(self, msg: JobDone, sender) -> None:
        child = self.children.get(msg.browser)
        if child is None or child.job is None or child.job.key != msg.job_key or child.state is not BUSY:
            return  # a late answer from a child we already gave up on
        now = time.monotonic()
        child.durations.append(now - child.job_started)
        child.move(IDLE)
        child.job, child.sessions = None, msg.sessions
        child.jobs_done += 1
        child.last_pong = child.idle_since = now
        retire = None if self.stopping else pool.recycle_reason(child, self.children.values(),
                                                                self.config.recycle, now)
        fault_point("supervisor.job_done", child.id)
        self.send(self.dispatcher, JobFinished(msg.browser, msg.job_key, msg.outcome,
                                               not self.stopping and retire is None))
        child.ends += 1  # once it is sent: until then repair() sees the attempt end as owed
        if self.stopping:
            self._request_stop(child, ExitReason.SHUTDOWN)
        elif retire:
            self._retire(child, retire)

    def receiveMsg_CancelAttempt(self, msg: CancelAttempt, sender) -> None:
        """A client cancelled the job this child runs: kill it (the one cleanup path replaces it)."""
        child = self.children.get(msg.browser)
        if child is None or child.state is not BUSY or child.job is None or child.job.key != msg.job_key:
            return  # that attempt is over already (its JobFinished or BrowserGone answers for it)
        self._kill(child, ExitReason.CANCELLED, f"its job {child.job.id} was cancelled")

    def receiveMsg_Demand(self, msg: Demand, sender) -> None:
        self.queued = msg.queued
        self._rescale(time.monotonic())
        self._fill()

    # --- watchdog ------------------------------------------------------------

    def receiveMsg_WakeupMessage(self, msg: WakeupMessage, sender) -> None:
        if msg.payload == TICK:
            try:
                self._tick()
            finally:  # a failed tick must not end the watchdog
                self.wakeupAfter(self.config.watchdog.interval_s, payload=TICK)
        else:
            self._fill()

    def _tick(self) -> None:
        if self.daemon_pid and not procs.pid_alive(self.daemon_pid, self.daemon_created):
            self._orphaned()
        now = time.monotonic()
        for child in self._everyone():
            main = procs.process_state(child.browser_pids[0]) if child.browser_pids else None
            child.stopped_ticks = watchdog.count_stopped(child.stopped_ticks, main)
            decided = watchdog.verdict(child, main, now, self.limits)
            if isinstance(decided, watchdog.Kill):
                self._kill(child, decided.reason, decided.detail)
            elif isinstance(decided, watchdog.SendPing):
                child.ping_sent = decided.seq
                self.send(child.addr, Ping(decided.seq))
        self._missed_exits(now)
        self._recheck_lingering(now)
        if not self.stopping:
            self._maintain(now)
        self._fill()

    def _maintain(self, now: float) -> None:
        """Measure, recycle and rescale: the pool's upkeep on every tick."""
        if self.config.recycle.max_pss_mb or self.config.pool.min != self.config.pool.max:
            # Only max_pss_mb and elastic admission use it, and reading smaps
            # was most of the supervisor's CPU in the benchmarks.
            self._sample_pss()
        for child in [c for c in self.children.values() if c.state is IDLE]:
            reason = pool.recycle_reason(child, self.children.values(), self.config.recycle, now)
            if reason:
                self._retire(child, reason)
        self._rescale(now)

    def _sample_pss(self) -> None:
        """Measure one child's PSS per tick, round robin (reading smaps is not free)."""
        child = pool.pss_pick(self.children.values(), self.pss_cursor)
        if child is not None:
            self.pss_cursor += 1
            child.pss = procs.pss_bytes([child.pid, *(p.pid for p in procs.descendants(child.pid))])

    def _recheck_lingering(self, now: float) -> None:
        reaper.recheck_lingering(self.lingering, now)
        reaper.recheck_dirs(self.removed_dirs, now)

    def _orphaned(self) -> None:
        """The daemon is gone (SIGKILL, an OOM kill): end its whole instance, then this process.

        Nothing could stop what is left: `foxden stop` finds no daemon, the
        daemon's watch over the control plane died with it (a supervisor
        dying now would leave its browsers unsupervised), and its pid-file
        lock is released, so the next start would reap a still-serving
        instance anyway. Clients see their connection close, as when the
        daemon dies with everything. Never returns."""
        try:
            left = procs.end_instance(self.instance + "/", self.config.daemon.state_dir)
            # Thespian's logger process was among the killed (and an actor's
            # root logger takes no handler): write the line on stderr ourselves.
            logs.write_stderr(self.config, log, logging.ERROR,
                              "daemon (pid %d) is gone: killed the rest of instance %s and exiting%s",
                              self.daemon_pid, self.instance,
                              f"; {len(left)} processes survived SIGKILL" if left else "")
        finally:
            os._exit(1)  # even if the above failed: a supervisor of nobody must not go on restarting browsers

    def receiveMsg_Pong(self, msg: Pong, sender) -> None:
        child = self._any_child(msg.browser)
        if child is not None and msg.alive:
            child.pong_seen = max(child.pong_seen, msg.seq)
            child.last_pong = time.monotonic()
            if child.lease is not None:
                child.lease.clients, child.lease.idle_for = msg.clients, msg.idle_for
                child.lease.idle_seen = child.last_pong

    # --- ending children -------------------------------------------------------

    def _kill(self, child: Child, reason: ExitReason, detail: str = "") -> None:
        """SIGKILL a child's actor process and its browser's main process.

        Nothing else: the rest of its processes (found by marker), the wait for
        them to be gone and its files are the one cleanup path's, run on the
        ChildActorExited that Thespian delivers a few ms after the actor dies.
        Killing the browser's main here too stops a hung page at once."""
        child.end(reason, detail)
        if child.kill_at is None:
            self.kills[reason.value] += 1
            with logs.context(browser=child.id, job=child.job.id if child.job else None,
                              session=child.job.session if child.job else None):
                log.warning("watchdog: killing browser %s (%s) %s", child.id, reason.value, detail)
        if child.state is not STOPPING:
            child.move(STOPPING)
        child.kill_at = time.monotonic()
        pids = ([p.pid for p in reaper.known_processes(child)] if child.pid
                else reaper.unclaimed_pids(self._everyone()))
        procs.kill_pids(pids)

    def _request_stop(self, child: Child, reason: ExitReason) -> None:
        """Ask a child to exit (kill it if it is busy: its job cannot be interrupted otherwise)."""
        child.end(reason)
        if child.state is BUSY:
            self._kill(child, reason, f"busy when stopped ({reason.value})")
        elif child.state is not STOPPING:
            child.move(STOPPING)
            child.stop_by = watchdog.stop_deadline(time.monotonic(), self.limits)
            self.send(child.addr, ActorExitRequest())

    # --- the one cleanup path --------------------------------------------------

    def receiveMsg_ChildActorExited(self, msg: ChildActorExited, sender) -> None:
        child = next((c for c in self._everyone() if c.addr == msg.childAddress), None)
        if child is not None:
            # A failure up to here leaves the child in the record: _missed_exits cleans it up.
            fault_point("supervisor.exit_notice", child.id)
            self._child_exited(child)

    def _missed_exits(self, now: float) -> None:
        """Children whose actor process is dead but whose ChildActorExited never came (see watchdog.missed_exit)."""
        for child in self._everyone():
            # With its create time: once Thespian has reaped a child whose
            # notice it dropped, its pid may already name another process.
            gone = (child.pid is not None and not procs.pid_alive(child.pid, child.pid_created)) or \
                (child.pid is None and child.kill_at is not None)
            child.dead_since, clean_up = watchdog.missed_exit(child.dead_since, gone, now)
            if clean_up:
                log.warning("browser %s: no exit notice from Thespian; cleaning up", child.id)
                self._child_exited(child)

    def _child_exited(self, child: Child) -> None:
        """The one cleanup path for a child whose actor is gone.

        A failure before the child leaves `children` heals itself: its actor
        process is dead, so _missed_exits runs this again on a later tick.
        After it has left, the dispatcher must learn of it whatever fails
        (BrowserGone, in the finally: the job it ran gets its one answer);
        the restart policy is applied as a step of its own, which repair()
        completes if anything here raised. A leased child is cleaned up
        here too, without any of the pool's bookkeeping (Leasing._lease_exited)."""
        if child.id in self.leased:
            self._lease_exited(child)
            return
        self.exiting[child.id] = (child, list(self.children))  # start order, for the group restarts
        del self.children[child.id]
        reason = child.exit_reason or ExitReason.CRASH
        try:
            self._count_exit(child, reason)
            fault_point("supervisor.child_exited", child.id)
            self._sweep(child)
        finally:
            self.gones += 1  # sequence number of BrowserGone messages (see Child.assigns)
            self.send(self.dispatcher, BrowserGone(child.id, child.job.key if child.job else None, reason.value,
                                                   child.exit_detail, child.sessions))
        self._after_exit(child.id)

    def _sweep(self, child: Child) -> None:
        """Kill what is left of a dead child and remove its files (idempotent)."""
        now = time.monotonic()
        for proc in reaper.sweep(child, now):
            self.lingering[proc.pid] = proc
        self.removed_dirs[child.tmpdir] = now

    def _after_exit(self, bid: str) -> None:
        """Apply the restart policy to one exit (once: it leaves `exiting` first)."""
        child, order = self.exiting.pop(bid)
        now = time.monotonic()
        if self.stopping:
            self._maybe_stopped()
        elif not self.failed:
            reason = child.exit_reason or ExitReason.CRASH
            self._carry_out(policy.on_exit(self.policy, self.history, reason, now, order, child.id), now)

    def _count_exit(self, child: Child, reason: ExitReason) -> None:
        """Count and log one exit."""
        if reason is ExitReason.TIMEOUT:
            self.hang_to_dead_ms.append((time.monotonic() - child.deadline) * 1000.0)  # the sweep included
            del self.hang_to_dead_ms[:-1000]
        if reason is ExitReason.LAUNCH_FAILED and child.exit_detail:
            self.last_launch_error = child.exit_detail
        self.exits[reason.value] += 1
        with logs.context(browser=child.id, job=child.job.id if child.job else None):
            log.info("browser %s exited (%s) after %d jobs; %d live", child.id, reason.value, child.jobs_done,
                     len(self.children))

    def _carry_out(self, plan: policy.ExitPlan, now: float) -> None:
        """Act on the restart policy's plan for one exit."""
        self.history = plan.history
        if plan.action == "give_up":
            self._give_up(plan.reason)
            return
        self.slots = max(0, self.slots - plan.drop)  # temporary children that are not started again
        if plan.action == "restart":
            self.restarts += 1  # once, whatever the strategy stops with it
            if plan.stop:
                log.info("%s restart: stopping %s (%s)", self.policy.strategy, list(plan.stop), plan.reason)
            sibling = ExitReason.sibling_stop(self.policy.strategy) if plan.stop else None
            for sid in plan.stop:
                if sid in self.children:
                    self._stop_sibling(self.children[sid], sibling)
            if plan.delay_s > 0:
                self.next_start_at = max(self.next_start_at, now + plan.delay_s)
                self.wakeupAfter(plan.delay_s, payload="fill")
        self._rescale(now)
        self._fill()  # what the plan relaunches: the pool's target is back up

    def _stop_sibling(self, child: Child, reason: ExitReason) -> None:
        """Stop a child as part of another's group restart: its exit is the group's, whatever it was.

        As OTP's terminate_children, which consumes a sibling's own pending
        exit: a sibling that was already dying (its own crash, a watchdog
        kill) is relaunched by this restart, not restarted a second time."""
        child.exit_reason, child.exit_detail = reason, f"stopped with the group of a {self.policy.strategy} restart"
        self._request_stop(child, reason)

    def _give_up(self, why: str) -> None:
        error = f"restart intensity exceeded ({why})"
        if self.last_launch_error:
            error += f"; last launch error: {self.last_launch_error}"
        self.failed = error
        log.error("supervisor gives up: %s", error)
        for other in list(self.children.values()):
            self._request_stop(other, ExitReason.SHUTDOWN)
        self.send(self.dispatcher, PoolFailed(error))

    # --- after a failed handler ------------------------------------------------

    def repair(self, msg) -> None:
        """Finish what a failed handler left half-done; idempotent (base.OnFailure.REPAIR).

        An exit cut short is swept again and its restart policy applied (its
        BrowserGone went out in _child_exited's finally). An attempt whose
        JobDone handler failed before its JobFinished gets that JobFinished
        now, with available=False, and its browser is retired: neither the
        dispatcher nor this actor is left with a browser that is busy
        forever. Then the pool is brought back to its target. Raising here
        crashes the supervisor; the daemon's watch then stops the instance."""
        for bid in list(self.exiting):
            self._sweep(self.exiting[bid][0])
            self._after_exit(bid)
        if isinstance(msg, JobDone):
            self._repair_job_done(msg)
        if self.stopping:
            self._maybe_stopped()
        elif not self.failed:
            self._rescale(time.monotonic())
            self._fill()

    def _repair_job_done(self, msg: JobDone) -> None:
        child = self.children.get(msg.browser)
        if child is None or child.assigns <= child.ends:
            return  # gone (its BrowserGone answers for it), or its JobFinished went out
        if child.job is not None and child.job.key != msg.job_key:
            return  # the JobDone of an attempt given up on, not the one in flight
        if child.state is BUSY:
            child.move(IDLE)  # its job did end: a retirement asks it to exit, never kills it
        child.job = None
        child.ends += 1
        self.send(self.dispatcher, JobFinished(msg.browser, msg.job_key, msg.outcome, available=False))
        self._retire(child, ExitReason.REPAIRED)

    # --- stopping --------------------------------------------------------------

    def receiveMsg_StopPool(self, msg: StopPool, sender) -> None:
        self.stopping = True
        self.stop_reply = sender
        for child in self._everyone():
            self._request_stop(child, ExitReason.SHUTDOWN)
        self._maybe_stopped()

    def _maybe_stopped(self) -> None:
        if self.stopping and not self.children and not self.leased and self.stop_reply is not None:
            self.send(self.stop_reply, PoolStopped())
            self.stop_reply = None

    # --- state -----------------------------------------------------------------

    def receiveMsg_StateQuery(self, msg: StateQuery, sender) -> None:
        self.send(sender, StateQuery(msg.tag, msg.reply_to, msg.dispatcher_before, self.snapshot()))

    def snapshot(self) -> dict:
        """Plain data only (it crosses the transport): reasons and states as their string values."""
        now = time.monotonic()
        engine = self.engine.name if self.engine else None
        return {
            "pid": os.getpid(),
            "live": len(self.children),
            "target": self.target,
            "min": min(self.config.pool.min, self.slots) if self.config else 0,
            "max": min(self.config.pool.max, self.slots) if self.config else 0,
            "held_back": self.held_back,
            "state": "failed" if self.failed else ("stopping" if self.stopping else "ok"),
            "error": self.failed,
            "engine": engine,
            "children": [c.row(now, engine or "") for c in self.children.values()],
            "leases": [c.lease_row() for c in self.leased.values()],
            "kills": dict(self.kills),
            "exits": dict(self.exits),
            "restarts": self.restarts,
            "gones": self.gones,
            "hang_to_dead_ms": list(self.hang_to_dead_ms[-200:]),
            "lingering": [{"pid": p.pid, "browser": p.browser, "for_s": round(now - p.since, 3)}
                          for p in self.lingering.values()],
        }
