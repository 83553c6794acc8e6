"""The supervisor actor: parent of every browser actor, its watchdog and its only cleaner."""
from __future__ import annotations

import gc
import logging
import math
import os
import shutil
import time
from collections import Counter
import statistics
from collections import deque
from dataclasses import dataclass, field

import psutil
from thespian.actors import ActorExitRequest, ChildActorExited, WakeupMessage

from foxden.actors.base import FoxdenActor

from foxden import logs, procs
from foxden.protocols.messages import (
    Assign,
    AssignRefused,
    BrowserGone,
    BrowserReady,
    BrowserStarted,
    Demand,
    Dying,
    Initialized,
    InitSupervisor,
    JobDone,
    JobFinished,
    JobSpec,
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
from foxden.supervisor import policy

log = logging.getLogger("foxden.supervisor")

TICK = "watchdog-tick"
RECENT_JOBS = 50
EXIT_NOTICE_GRACE_S = 1.0
DEFAULT_BROWSER_PSS = 400 << 20  # a launch's cost until one has been measured
# Exits the supervisor chose to replace a healthy browser (or shrink the
# pool): they are not failures, so the restart policy is not consulted.
RETIREMENTS = frozenset({"recycled_jobs", "recycled_age", "recycled_memory", "degraded", "idle"})


@dataclass(frozen=True)
class Lingering:
    """A process of a dead child that outlived the cleanup's wait after SIGKILL (uninterruptible sleep)."""

    pid: int
    created: float | None  # its create_time(): a reused pid is not it
    browser: str
    tmpdir: str
    since: float  # monotonic


@dataclass
class Child:
    """The supervisor's record of one live browser actor (mutable, private to it)."""

    id: str
    addr: object
    marker: str
    tmpdir: str
    created: float  # monotonic
    started_at: float  # wall clock, for status
    state: str = "starting"  # starting | idle | busy | stopping
    pid: int | None = None
    browser_pids: tuple[int, ...] = ()
    engine: str = ""
    version: str = ""
    job: JobSpec | None = None
    job_started: float = 0.0
    deadline: float = 0.0
    jobs_done: int = 0
    ping_sent: int = 0
    pong_seen: int = 0
    last_pong: float = 0.0
    stop_by: float = 0.0
    exit_reason: str | None = None
    exit_detail: str = ""
    sessions: tuple[str, ...] = ()
    kill_at: float | None = None
    idle_since: float = 0.0
    durations: deque = field(default_factory=lambda: deque(maxlen=RECENT_JOBS))
    pss: int = 0
    stopped_ticks: int = 0
    dead_since: float | None = None
    pid_created: float | None = None  # create_time() of pid: tells a reused pid apart
    main_created: float | None = None  # create_time() of browser_pids[0], likewise
    # Sequence numbers of this browser's job messages, not state: Assigns
    # received and attempt ends sent (JobFinished, AssignRefused). The admin
    # compares them with the dispatcher's to see a message still in transit.
    assigns: int = 0
    ends: int = 0


class SupervisorActor(FoxdenActor):
    """Keeps `size` browsers alive under an OTP restart policy.

    The live count is len(self.children), never a counter. Children leave
    `self.children` in exactly one place, _child_exited (run on Thespian's
    ChildActorExited, or by _missed_exits when Thespian dropped that notice),
    which is also the only place that kills stragglers, removes temp dirs,
    tells the dispatcher about the lost attempt and applies the restart
    policy. Everything else that wants a child gone only kills its processes."""

    role = "supervisor"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.children: dict[str, Child] = {}
        self.config = None
        self.engine = None
        self.dispatcher = None
        self.instance = ""
        self.policy: policy.RestartPolicy | None = None
        self.history = policy.RestartHistory()
        self.target = 0
        self.slots = 0
        self.queued = 0
        self.held_back: str | None = None
        self.pss_cursor = 0
        self.next_start_at = 0.0
        self.generation = 0
        self.stopping = False
        self.stop_reply = None
        self.failed: str | None = None
        self.last_launch_error = ""
        self.kills: Counter = Counter()
        self.exits: Counter = Counter()
        self.restarts = 0
        self.gones = 0
        self.hang_to_dead_ms: list[float] = []
        self.lingering: dict[int, Lingering] = {}

    # --- wiring --------------------------------------------------------------

    def receiveMsg_InitSupervisor(self, msg: InitSupervisor, sender) -> None:
        self.config, self.engine = msg.config, msg.engine
        self.instance, self.dispatcher = msg.instance, msg.dispatcher
        self.daemon_pid = msg.daemon_pid
        self.daemon_created = procs.create_time(msg.daemon_pid) if msg.daemon_pid else None
        self.policy = policy.RestartPolicy.from_config(self.config.restart)
        wd = self.config.watchdog
        self.missed_pings_limit = max(2, math.ceil(wd.heartbeat_timeout_s / wd.interval_s))
        self.slots = self.config.pool.max
        self.target = self.config.pool.size
        self.tmp_root = procs.browsers_dir(self.config.daemon.state_dir)
        # Thespian forks every browser actor from this process. Imported now,
        # the browser's modules are shared with us instead of imported into
        # each child; frozen now, the objects we have (modules, classes,
        # code) are never visited by a child's garbage collector, so their
        # pages stay shared too (PSS per browser actor 9.5 -> 8.9 MB). Once
        # only: what is frozen is never collected, so nothing later is.
        import foxden.actors.browser  # noqa: F401
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
        """Start children until `target` are up (backoff and memory permitting)."""
        if self.stopping or self.failed:
            return
        now = time.monotonic()
        while self._active() < self.target and now >= self.next_start_at:
            # Launches are throttled: fifty at once on two cores starved the
            # idle actors' heartbeats (killed as unresponsive, restarts spent
            # the intensity, the pool failed) and fooled memory admission,
            # which cannot see what a launch has not allocated yet.
            if self._starting() >= self.config.pool.launch_concurrency:
                return  # the next BrowserReady or exit calls us again
            held = self._memory_hold()
            if held != self.held_back:
                (log.warning if held else log.info)("browser starts %s", held or "resumed: memory is available")
                self.held_back = held
            if held:
                return  # jobs wait in the queue (bounded) rather than the box swapping
            self._start_child()

    def _active(self) -> int:
        return sum(1 for c in self.children.values() if c.state != "stopping")

    def _starting(self) -> int:
        return sum(1 for c in self.children.values() if c.state == "starting")

    def _memory_hold(self) -> str | None:
        """Why one more browser must not start now, or None if it may."""
        measured = [c.pss for c in self.children.values() if c.pss]
        need = statistics.median(measured) if measured else DEFAULT_BROWSER_PSS
        headroom = self.config.pool.memory_headroom_mb << 20
        # Browsers still launching will take their share of what is available now.
        available = procs.available_memory() - self._starting() * need
        if available - headroom < need:
            return (f"held back: {available >> 20} MiB available, {headroom >> 20} MiB headroom, "
                    f"a browser needs ~{int(need) >> 20} MiB")
        return None

    def _rescale(self, now: float) -> None:
        """Derive the pool's target from demand, and retire browsers idle past idle_shrink_s.

        A fixed pool (min == max) always targets its size. An elastic one
        wants every busy browser, one per queued job and `prewarm` spares,
        within [min, max]; idle browsers beyond that are kept until they have
        been idle for idle_shrink_s."""
        pool = self.config.pool
        hi = min(pool.max, self.slots)
        lo = min(pool.min, hi)
        if pool.min == pool.max:
            self.target = hi
            return
        busy = sum(1 for c in self.children.values() if c.state == "busy")
        starting = sum(1 for c in self.children.values() if c.state == "starting")
        want = max(lo, min(hi, busy + self.queued + pool.prewarm))
        idle = sorted((c for c in self.children.values() if c.state == "idle"), key=lambda c: c.idle_since)
        recent = [c for c in idle if now - c.idle_since < pool.idle_shrink_s]
        self.target = max(want, min(hi, busy + starting + len(recent)))
        for child in idle:
            if self._active() <= self.target:
                break
            if child not in recent:
                self._retire(child, "idle")

    def _retire(self, child: Child, reason: str) -> None:
        """Stop a healthy idle browser on purpose (it is replaced unless the pool shrinks)."""
        if child.exit_reason is None:
            child.exit_reason = reason
            with logs.context(browser=child.id):
                log.info("retiring browser %s (%s) after %d jobs", child.id, reason, child.jobs_done)
        self._request_stop(child)

    def _recycle_reason(self, child: Child, now: float) -> str | None:
        """Why this idle browser should be replaced now, if at all."""
        r = self.config.recycle
        if r.max_jobs and child.jobs_done >= r.max_jobs:
            return "recycled_jobs"
        if r.max_age_s and now - child.created >= r.max_age_s:
            return "recycled_age"
        if r.max_pss_mb and child.pss > r.max_pss_mb << 20:
            return "recycled_memory"
        if r.degrade_factor and len(child.durations) >= r.degrade_min_jobs:
            others = [d for c in self.children.values() if c is not child for d in c.durations]
            if len(others) >= r.degrade_min_jobs:
                mine, pool = statistics.median(child.durations), statistics.median(others)
                if mine > r.degrade_factor * pool:
                    return "degraded"
        return None

    def _sample_pss(self) -> None:
        """Measure one child's PSS per tick, round robin (reading smaps is not free)."""
        kids = [c for c in self.children.values() if c.pid and c.state in ("idle", "busy")]
        if not kids:
            return
        child = kids[self.pss_cursor % len(kids)]
        self.pss_cursor += 1
        child.pss = procs.pss_bytes([child.pid, *(p.pid for p in procs.descendants(child.pid))])

    def _start_child(self) -> None:
        self.generation += 1
        bid = f"b{self.generation}"
        addr = self.createActor("foxden.actors.browser.BrowserActor")
        child = Child(
            id=bid,
            addr=addr,
            marker=f"{self.instance}/{bid}/",  # self-delimiting: b1 must not match b10
            tmpdir=os.path.join(self.tmp_root, bid),
            created=time.monotonic(),
            started_at=time.time(),
        )
        self.children[bid] = child
        self.send(addr, StartBrowser(bid, self.config, self.engine, child.marker, child.tmpdir))

    def receiveMsg_BrowserStarted(self, msg: BrowserStarted, sender) -> None:
        child = self.children.get(msg.browser)
        if child is not None:
            child.pid = msg.pid
            child.pid_created = procs.create_time(msg.pid)

    def receiveMsg_BrowserReady(self, msg: BrowserReady, sender) -> None:
        child = self.children.get(msg.browser)
        if child is None or child.state != "starting":
            return
        if child.pid != msg.pid:
            child.pid_created = procs.create_time(msg.pid)
        child.pid, child.browser_pids = msg.pid, msg.browser_pids
        child.main_created = procs.create_time(msg.browser_pids[0]) if msg.browser_pids else None
        child.engine, child.version = msg.engine, msg.version
        child.state, child.last_pong = "idle", time.monotonic()
        child.idle_since = child.last_pong
        with logs.context(browser=msg.browser):
            log.info("browser %s ready: %s %s pid=%s browser_pids=%s", msg.browser, msg.engine, msg.version,
                     msg.pid, list(msg.browser_pids))
        if self.stopping:
            self._request_stop(child)
        else:
            self.send(self.dispatcher, WorkRequest(msg.browser, msg.engine))
            self._fill()  # a launch slot is free

    def receiveMsg_Dying(self, msg: Dying, sender) -> None:
        child = self.children.get(msg.browser)
        if child is None:
            return
        if child.exit_reason is None:
            child.exit_reason, child.exit_detail = msg.reason, msg.detail
        if msg.reason == "launch_failed":
            self.last_launch_error = msg.detail
        child.state = "stopping"
        child.stop_by = time.monotonic() + self.config.watchdog.close_timeout_s + 2.0

    # --- jobs ----------------------------------------------------------------

    def receiveMsg_Assign(self, msg: Assign, sender) -> None:
        child = self.children.get(msg.browser)
        if child is None:
            self.send(sender, AssignRefused(msg.browser, msg.job.key, gone=True))
            return
        child.assigns += 1
        if child.state != "idle" or self.stopping:
            child.ends += 1
            self.send(sender, AssignRefused(msg.browser, msg.job.key))
            return
        now = time.monotonic()
        child.state, child.job = "busy", msg.job
        child.job_started = now
        child.deadline = now + msg.budget_s
        self.send(child.addr, RunJob(msg.job, msg.budget_s))

    def receiveMsg_JobDone(self, msg: JobDone, sender) -> None:
        child = self.children.get(msg.browser)
        if child is None or child.job is None or child.job.key != msg.job_key or child.state != "busy":
            return  # a late answer from a child we already gave up on
        now = time.monotonic()
        child.durations.append(now - child.job_started)
        child.job, child.state = None, "idle"
        child.jobs_done += 1
        child.sessions = msg.sessions
        child.last_pong = child.idle_since = now
        retire = None if self.stopping else self._recycle_reason(child, now)
        available = not self.stopping and retire is None
        child.ends += 1
        self.send(self.dispatcher, JobFinished(msg.browser, msg.job_key, msg.outcome, available))
        if self.stopping:
            self._request_stop(child)
        elif retire:
            self._retire(child, retire)

    def receiveMsg_Demand(self, msg: Demand, sender) -> None:
        self.queued = msg.queued
        self._rescale(time.monotonic())
        self._fill()

    # --- watchdog ------------------------------------------------------------

    def receiveMsg_WakeupMessage(self, msg: WakeupMessage, sender) -> None:
        if msg.payload == TICK:
            self._tick()
            self.wakeupAfter(self.config.watchdog.interval_s, payload=TICK)
        else:
            self._fill()

    def _tick(self) -> None:
        if self.daemon_pid and not procs.pid_alive(self.daemon_pid, self.daemon_created):
            self._orphaned()
        now = time.monotonic()
        wd = self.config.watchdog
        for child in list(self.children.values()):
            main = procs.process_state(child.browser_pids[0]) if child.browser_pids else None
            child.stopped_ticks = child.stopped_ticks + 1 if main == "stopped" else 0
            if child.state in ("idle", "busy") and main == "gone":
                # Playwright may not notice for seconds (the browser's other
                # processes keep its pipe open), so check the process itself.
                self._kill(child, "crash", f"browser process {child.browser_pids[0]} is gone")
            elif child.state in ("idle", "busy") and child.stopped_ticks >= 2:
                # Stopped (SIGSTOP, a frozen cgroup) on two ticks in a row: it
                # answers nothing, and an idle one would never be noticed.
                self._kill(child, "unresponsive", f"browser process {child.browser_pids[0]} is stopped")
            elif child.state == "busy" and now > child.deadline + wd.kill_grace_s:
                self._kill(child, "timeout", f"job {child.job.id} exceeded its {child.deadline - child.job_started:.1f}s budget")
            elif child.state == "starting" and now - child.created > self.config.pool.launch_timeout_s:
                self._kill(child, "launch_timeout", f"not ready after {self.config.pool.launch_timeout_s:.0f}s")
            elif child.state == "idle":
                # Silent for heartbeat_timeout_s *and* for that many of our
                # own ticks: when this supervisor is starved (50 browsers
                # rendering on 2 cores) its ticks come late and the pongs
                # wait in its mailbox behind them, and wall-clock silence
                # alone killed every healthy idle browser at once.
                missed = child.ping_sent - child.pong_seen
                if missed >= self.missed_pings_limit and now - child.last_pong > wd.heartbeat_timeout_s:
                    self._kill(child, "unresponsive", f"no heartbeat for {now - child.last_pong:.1f}s")
                else:
                    child.ping_sent += 1
                    self.send(child.addr, Ping(child.ping_sent))
            elif child.state == "stopping" and child.kill_at is None and now > child.stop_by:
                self._kill(child, child.exit_reason or "stop_timeout", "did not exit in time")
        self._missed_exits(now)
        self._recheck_lingering(now)
        if not self.stopping and (self.config.recycle.max_pss_mb or self.config.pool.min != self.config.pool.max):
            # Only max_pss_mb and elastic admission use it, and reading smaps
            # was most of the supervisor's CPU in the benchmarks.
            self._sample_pss()
        if not self.stopping:
            for child in [c for c in self.children.values() if c.state == "idle"]:
                reason = self._recycle_reason(child, now)
                if reason:
                    self._retire(child, reason)
            self._rescale(now)
        self._fill()

    def _recheck_lingering(self, now: float) -> None:
        """Kill again what outlived a cleanup's SIGKILL, and forget it (and its files) once it is gone."""
        for pid, proc in list(self.lingering.items()):
            if procs.pid_alive(pid, proc.created):
                procs.kill_pids([pid])
                continue
            del self.lingering[pid]
            shutil.rmtree(proc.tmpdir, ignore_errors=True)  # anything it wrote while it lingered
            log.warning("browser %s: process %d is gone %.1fs after the cleanup gave up waiting for it",
                        proc.browser, pid, now - proc.since)

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
        child = self.children.get(msg.browser)
        if child is not None and msg.alive:
            child.pong_seen = max(child.pong_seen, msg.seq)
            child.last_pong = time.monotonic()

    def _kill(self, child: Child, reason: str, detail: str = "") -> None:
        """SIGKILL a child's actor process and its browser's main process.

        Nothing else: the rest of its processes (found by marker), the wait for
        them to be gone and its files are the one cleanup path's, run on the
        ChildActorExited that Thespian delivers a few ms after the actor dies.
        Killing the browser's main here too stops a hung page at once."""
        if child.exit_reason is None:
            child.exit_reason, child.exit_detail = reason, detail
        if child.kill_at is None:
            self.kills[reason] += 1
            with logs.context(browser=child.id, job=child.job.id if child.job else None,
                              session=child.job.session if child.job else None):
                log.warning("watchdog: killing browser %s (%s) %s", child.id, reason, detail)
        child.state, child.kill_at = "stopping", time.monotonic()
        pids = [p.pid for p in self._known_processes(child)] if child.pid else self._unclaimed_pids()
        procs.kill_pids(pids)

    def _known_processes(self, child: Child) -> list[psutil.Process]:
        """The child's actor and its browser's main process, by the pids they reported.

        Killed by pid as well as by marker. The marker scan reads every
        process's environment and command line and passes over one it cannot
        read; a long chaos run on an overloaded box found a browser's main
        process alive and marked 1.3 s after the cleanup's scans had found
        nothing left, and it had recreated its profile dir. Why the scans
        missed it is not known; a kill by the pid it reported does not depend
        on them. A create time that differs means the pid now names another
        process: that one is left alone."""
        known = [(child.pid, child.pid_created)]
        if child.browser_pids and child.main_created is not None:
            known.append((child.browser_pids[0], child.main_created))
        return procs.processes(pid for pid, created in known if procs.pid_alive(pid, created))

    def _unclaimed_pids(self) -> list[int]:
        """Our child processes that no child record has claimed (killed before handshake)."""
        claimed = {c.pid for c in self.children.values() if c.pid}
        try:
            kids = psutil.Process().children()
        except psutil.Error:
            return []
        return [p.pid for p in kids if p.pid not in claimed and procs.alive(p)]

    def _request_stop(self, child: Child) -> None:
        if child.exit_reason is None:
            child.exit_reason = "shutdown"
        if child.state == "busy":
            self._kill(child, "shutdown", "still busy at shutdown")
            return
        if child.state != "stopping":
            child.state = "stopping"
            child.stop_by = time.monotonic() + self.config.watchdog.close_timeout_s + 2.0
            self.send(child.addr, ActorExitRequest())

    # --- the one cleanup path --------------------------------------------------

    def receiveMsg_ChildActorExited(self, msg: ChildActorExited, sender) -> None:
        child = next((c for c in self.children.values() if c.addr == msg.childAddress), None)
        if child is not None:
            self._child_exited(child)

    def _missed_exits(self, now: float) -> None:
        """Children whose actor process is dead but whose ChildActorExited never came.

        Thespian 4.0.1 can drop the notice for a second child that dies close
        to another one (found by the chaos harness). Such a child goes through
        the same single cleanup, _child_exited, once its process has been
        seen dead for EXIT_NOTICE_GRACE_S (normally the notice takes 5-9 ms)."""
        for child in list(self.children.values()):
            # With its create time: once Thespian has reaped a child whose
            # notice it dropped, its pid may already name another process.
            gone = (child.pid is not None and not procs.pid_alive(child.pid, child.pid_created)) or \
                (child.pid is None and child.kill_at is not None)
            if not gone:
                child.dead_since = None
            elif child.dead_since is None:
                child.dead_since = now
            elif now - child.dead_since > EXIT_NOTICE_GRACE_S:
                log.warning("browser %s: no exit notice from Thespian; cleaning up", child.id)
                self._child_exited(child)

    def _child_exited(self, child: Child) -> None:
        """The one cleanup path for a child whose actor is gone."""
        order = list(self.children)  # start order (dicts keep it), for rest_for_one
        del self.children[child.id]
        now = time.monotonic()
        # Confirm that nothing of it survives: its own process, and every
        # process carrying its marker (crashpad included), then its files.
        survivors = procs.kill_marked(child.marker, path=child.tmpdir + "/", also=self._known_processes(child))
        if survivors:
            # A SIGKILLed process in uninterruptible sleep dies when it leaves
            # the kernel; every tick checks again (_recheck_lingering), so that
            # status says what is still alive instead of the log only.
            log.error("browser %s: processes survived SIGKILL: %s", child.id, [p.pid for p in survivors])
            for p in survivors:
                self.lingering[p.pid] = Lingering(p.pid, procs.create_time(p.pid), child.id, child.tmpdir, now)
        shutil.rmtree(child.tmpdir, ignore_errors=True)
        reason = child.exit_reason or "crash"
        if reason == "timeout":
            self.hang_to_dead_ms.append((time.monotonic() - child.deadline) * 1000.0)
            del self.hang_to_dead_ms[:-1000]
        self.exits[reason] += 1
        with logs.context(browser=child.id, job=child.job.id if child.job else None):
            log.info("browser %s exited (%s) after %d jobs; %d live", child.id, reason, child.jobs_done,
                     len(self.children))
        job_key = child.job.key if child.job is not None else None
        self.gones += 1  # sequence number of BrowserGone messages (see Child.assigns)
        self.send(self.dispatcher, BrowserGone(child.id, job_key, reason, child.exit_detail, child.sessions))
        if self.stopping:
            self._maybe_stopped()
            return
        if reason in RETIREMENTS:
            self._rescale(now)
            self._fill()  # a replacement, not a restart: the policy is for failures
            return
        self._apply_policy(child, reason, now, order)

    def _apply_policy(self, child: Child, reason: str, now: float, order: list[str]) -> None:
        if self.failed:
            return
        decision = policy.decide(self.policy, self.history, reason, now)
        self.history = decision.history
        if decision.action == "give_up":
            error = f"restart intensity exceeded ({decision.reason})"
            if self.last_launch_error:
                error += f"; last launch error: {self.last_launch_error}"
            self.failed = error
            log.error("supervisor gives up: %s", error)
            for other in list(self.children.values()):
                self._request_stop(other)
            self.send(self.dispatcher, PoolFailed(error))
            return
        if decision.action == "ignore":
            # A temporary (or normally exiting transient) child is not
            # replaced: the pool has one slot fewer from now on.
            self.slots = max(0, self.slots - 1)
            self._rescale(now)
            return
        self.restarts += 1
        siblings = policy.children_to_restart(self.policy.strategy, order, child.id)
        for sid in siblings:
            if sid in self.children:
                self._request_stop(self.children[sid])
        if decision.delay_s > 0:
            self.next_start_at = max(self.next_start_at, now + decision.delay_s)
            self.wakeupAfter(decision.delay_s, payload="fill")
        self._fill()

    # --- stopping --------------------------------------------------------------

    def receiveMsg_StopPool(self, msg: StopPool, sender) -> None:
        self.stopping = True
        self.stop_reply = sender
        for child in list(self.children.values()):
            self._request_stop(child)
        self._maybe_stopped()

    def _maybe_stopped(self) -> None:
        if self.stopping and not self.children and self.stop_reply is not None:
            self.send(self.stop_reply, PoolStopped())
            self.stop_reply = None

    # --- state -----------------------------------------------------------------

    def receiveMsg_StateQuery(self, msg: StateQuery, sender) -> None:
        self.send(sender, StateQuery(msg.tag, msg.reply_to, msg.dispatcher_before, self.snapshot()))

    def snapshot(self) -> dict:
        now = time.monotonic()
        return {
            "pid": os.getpid(),
            "live": len(self.children),
            "target": self.target,
            "min": min(self.config.pool.min, self.slots) if self.config else 0,
            "max": min(self.config.pool.max, self.slots) if self.config else 0,
            "held_back": self.held_back,
            "state": "failed" if self.failed else ("stopping" if self.stopping else "ok"),
            "error": self.failed,
            "engine": self.engine.name if self.engine else None,
            "children": [
                {
                    "id": c.id,
                    "pid": c.pid,
                    "browser_pids": list(c.browser_pids),
                    "engine": c.engine or (self.engine.name if self.engine else ""),
                    "version": c.version,
                    "state": c.state,
                    "job": c.job.id if c.job else None,
                    "job_key": c.job.key if c.job else None,
                    "assigns": c.assigns,
                    "ends": c.ends,
                    "jobs_done": c.jobs_done,
                    "started_at": c.started_at,
                    "age_s": round(now - c.created, 3),
                    "sessions": list(c.sessions),
                    "pss_sampled": c.pss,
                }
                for c in self.children.values()
            ],
            "kills": dict(self.kills),
            "exits": dict(self.exits),
            "restarts": self.restarts,
            "gones": self.gones,
            "hang_to_dead_ms": list(self.hang_to_dead_ms[-200:]),
            "lingering": [{"pid": p.pid, "browser": p.browser, "for_s": round(now - p.since, 3)}
                          for p in self.lingering.values()],
        }
