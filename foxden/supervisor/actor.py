"""The supervisor actor: parent of every browser actor, its watchdog and its only cleaner."""
from __future__ import annotations

import logging
import os
import shutil
import time
from collections import Counter
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
    details: dict = field(default_factory=dict)


class SupervisorActor(FoxdenActor):
    role = "supervisor"

    """Keeps `size` browsers alive under an OTP restart policy.

    The live count is len(self.children), never a counter. Children leave
    `self.children` in exactly one place, receiveMsg_ChildActorExited, which
    is also the only place that kills stragglers, removes temp dirs, tells
    the dispatcher about the lost attempt and applies the restart policy.
    Everything else that wants a child gone only kills its processes."""

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
        self.next_start_at = 0.0
        self.generation = 0
        self.stopping = False
        self.stop_reply = None
        self.failed: str | None = None
        self.last_launch_error = ""
        self.kills: Counter = Counter()
        self.exits: Counter = Counter()
        self.restarts = 0
        self.hang_to_dead_ms: list[float] = []
        self.order: list[str] = []

    # --- wiring --------------------------------------------------------------

    def receiveMsg_InitSupervisor(self, msg: InitSupervisor, sender) -> None:
        self.config, self.engine = msg.config, msg.engine
        self.instance, self.dispatcher = msg.instance, msg.dispatcher
        self.policy = policy.RestartPolicy.from_config(self.config.restart)
        self.target = self.config.pool.size
        self.tmp_root = os.path.join(str(self.config.daemon.state_dir), "browsers")
        os.makedirs(self.tmp_root, exist_ok=True)
        self._fill()
        self.wakeupAfter(self.config.watchdog.interval_s, payload=TICK)
        self.send(sender, Initialized("supervisor", os.getpid()))

    # --- starting children ---------------------------------------------------

    def _fill(self) -> None:
        """Start children until the pool has `target` of them (backoff permitting)."""
        if self.stopping or self.failed:
            return
        now = time.monotonic()
        while len(self.children) < self.target and now >= self.next_start_at:
            self._start_child()

    def _start_child(self) -> None:
        self.generation += 1
        bid = f"b{self.generation}"
        addr = self.createActor("foxden.actors.browser.BrowserActor")
        child = Child(
            id=bid,
            addr=addr,
            marker=f"{self.instance}/{bid}",
            tmpdir=os.path.join(self.tmp_root, bid),
            created=time.monotonic(),
            started_at=time.time(),
        )
        self.children[bid] = child
        self.order.append(bid)
        self.send(addr, StartBrowser(bid, self.config, self.engine, child.marker, child.tmpdir))

    def receiveMsg_BrowserStarted(self, msg: BrowserStarted, sender) -> None:
        child = self.children.get(msg.browser)
        if child is not None:
            child.pid = msg.pid

    def receiveMsg_BrowserReady(self, msg: BrowserReady, sender) -> None:
        child = self.children.get(msg.browser)
        if child is None or child.state != "starting":
            return
        child.pid, child.browser_pids = msg.pid, msg.browser_pids
        child.engine, child.version = msg.engine, msg.version
        child.state, child.last_pong = "idle", time.monotonic()
        with logs.context(browser=msg.browser):
            log.info("browser %s ready: %s %s pid=%s browser_pids=%s", msg.browser, msg.engine, msg.version,
                     msg.pid, list(msg.browser_pids))
        if self.stopping:
            self._request_stop(child)
        else:
            self.send(self.dispatcher, WorkRequest(msg.browser, msg.engine))

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
        if child is None or child.state != "idle" or self.stopping:
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
        child.job, child.state = None, "idle"
        child.jobs_done += 1
        child.sessions = msg.sessions
        child.last_pong = time.monotonic()
        self.send(self.dispatcher, JobFinished(msg.browser, msg.job_key, msg.outcome))
        if self.stopping:
            self._request_stop(child)

    # --- watchdog ------------------------------------------------------------

    def receiveMsg_WakeupMessage(self, msg: WakeupMessage, sender) -> None:
        if msg.payload == TICK:
            self._tick()
            self.wakeupAfter(self.config.watchdog.interval_s, payload=TICK)
        else:
            self._fill()

    def _tick(self) -> None:
        now = time.monotonic()
        wd = self.config.watchdog
        for child in list(self.children.values()):
            if child.state in ("idle", "busy") and child.browser_pids and not procs.pid_alive(child.browser_pids[0]):
                # Playwright may not notice for seconds (the browser's other
                # processes keep its pipe open), so check the process itself.
                self._kill(child, "crash", f"browser process {child.browser_pids[0]} is gone")
            elif child.state == "busy" and now > child.deadline + wd.kill_grace_s:
                self._kill(child, "timeout", f"job {child.job.id} exceeded its {child.deadline - child.job_started:.1f}s budget")
            elif child.state == "starting" and now - child.created > self.config.pool.launch_timeout_s:
                self._kill(child, "launch_timeout", f"not ready after {self.config.pool.launch_timeout_s:.0f}s")
            elif child.state == "idle":
                if child.ping_sent > child.pong_seen and now - child.last_pong > wd.heartbeat_timeout_s:
                    self._kill(child, "unresponsive", f"no heartbeat for {now - child.last_pong:.1f}s")
                else:
                    child.ping_sent += 1
                    self.send(child.addr, Ping(child.ping_sent))
            elif child.state == "stopping" and child.kill_at is None and now > child.stop_by:
                self._kill(child, child.exit_reason or "stop_timeout", "did not exit in time")
        self._fill()

    def receiveMsg_Pong(self, msg: Pong, sender) -> None:
        child = self.children.get(msg.browser)
        if child is not None and msg.alive:
            child.pong_seen = max(child.pong_seen, msg.seq)
            child.last_pong = time.monotonic()

    def _kill(self, child: Child, reason: str, detail: str = "") -> None:
        """SIGKILL a child's actor process and every process carrying its marker.

        Bookkeeping is left to ChildActorExited, which Thespian delivers a few
        ms after the actor process dies."""
        if child.exit_reason is None:
            child.exit_reason, child.exit_detail = reason, detail
        if child.kill_at is None:
            self.kills[reason] += 1
            with logs.context(browser=child.id, job=child.job.id if child.job else None,
                              session=child.job.session if child.job else None):
                log.warning("watchdog: killing browser %s (%s) %s", child.id, reason, detail)
        child.state, child.kill_at = "stopping", time.monotonic()
        pids = [child.pid] if child.pid else self._unclaimed_pids()
        procs.kill_pids(pids)
        procs.kill_and_wait(procs.find_marked(child.marker), timeout=0.5)

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
        if child is None:
            return
        del self.children[child.id]
        self.order.remove(child.id)
        now = time.monotonic()
        # Confirm that nothing of it survives: its own process, and every
        # process carrying its marker (crashpad included), then its files.
        leftovers = procs.find_marked(child.marker)
        if child.pid and procs.pid_alive(child.pid):
            leftovers += procs.processes([child.pid])
        survivors = procs.kill_and_wait(leftovers, timeout=2.0)
        if survivors:
            log.error("browser %s: processes survived SIGKILL: %s", child.id, [p.pid for p in survivors])
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
        self.send(self.dispatcher, BrowserGone(child.id, job_key, reason, child.exit_detail, child.sessions))
        if self.stopping:
            self._maybe_stopped()
            return
        self._apply_policy(child, reason, now)

    def _apply_policy(self, child: Child, reason: str, now: float) -> None:
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
            self.target = max(0, self.target - 1)
            return
        self.restarts += 1
        siblings = policy.children_to_restart(self.policy.strategy, self.order + [child.id], child.id)
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
                    "jobs_done": c.jobs_done,
                    "started_at": c.started_at,
                    "age_s": round(now - c.created, 3),
                    "sessions": list(c.sessions),
                }
                for c in self.children.values()
            ],
            "kills": dict(self.kills),
            "exits": dict(self.exits),
            "restarts": self.restarts,
            "hang_to_dead_ms": list(self.hang_to_dead_ms[-200:]),
        }
