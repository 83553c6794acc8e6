"""The supervisor's record of one browser actor, and its states with their allowed transitions."""
from __future__ import annotations

import logging
import os
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

from foxden.protocols.exits import ExitReason
from foxden.protocols.messages import JobSpec

__all__ = ["Child", "ChildState", "IllegalTransition", "LeaseRecord", "Lingering", "RECENT_JOBS", "STRICT_ENV",
           "TRANSITIONS"]

log = logging.getLogger("foxden.supervisor")

RECENT_JOBS = 50  # job durations kept per child, for the degraded check

# An illegal transition is a bug of the supervisor's. With this variable set
# to 1 (the tests set it) it raises; in production it is logged as an error
# and the transition is made anyway: the state a handler asks for is the one
# the rest of that handler relies on, and a pool whose browsers are all still
# watched and cleaned up is worth more than one that stops at a wrong label.
STRICT_ENV = "FOXDEN_STRICT_STATES"


class ChildState(StrEnum):
    """Where a browser actor is in its life (status reports the value)."""

    STARTING = "starting"  # created; its browser is launching
    IDLE = "idle"  # ready, and offered to the dispatcher
    BUSY = "busy"  # running one job
    LEASED = "leased"  # a leased browser: a client's own, never in the job pool
    STOPPING = "stopping"  # asked to exit, killed or dying; it leaves the record on its exit notice


# After supervisord's states.py: the only moves a child makes. STOPPING is
# final: a child leaves it only by leaving the supervisor's children.
TRANSITIONS: dict[ChildState, frozenset[ChildState]] = {
    ChildState.STARTING: frozenset({ChildState.IDLE, ChildState.LEASED, ChildState.STOPPING}),
    ChildState.IDLE: frozenset({ChildState.BUSY, ChildState.STOPPING}),
    ChildState.BUSY: frozenset({ChildState.IDLE, ChildState.STOPPING}),
    ChildState.LEASED: frozenset({ChildState.STOPPING}),  # never reused: a lease's browser only ends
    ChildState.STOPPING: frozenset(),
}


class IllegalTransition(RuntimeError):
    """A child was asked to move between states that TRANSITIONS does not connect."""


@dataclass(frozen=True)
class Lingering:
    """A process of a dead child that outlived the cleanup's wait after SIGKILL (uninterruptible sleep)."""

    pid: int
    created: float | None  # its create_time(): a reused pid is not it
    browser: str
    tmpdir: str
    since: float  # monotonic


@dataclass
class LeaseRecord:
    """What the supervisor knows of a leased child's lease (the secret only until the grant is sent)."""

    id: str
    secret: str
    ttl_s: float
    idle_s: float
    reply_to: object = None  # the gateway awaiting the grant, with its tag (None once answered)
    tag: object = None
    expires: float = 0.0  # monotonic
    expires_at: float = 0.0  # wall clock, for the client and status
    clients: int = 0  # from the browser actor's last Pong
    idle_for: float = 0.0  # likewise, seconds without a client then
    idle_seen: float = 0.0  # monotonic: when idle_for was read
    end_waiters: list = field(default_factory=list)  # (gateway, tag) of end requests, answered once it is gone

    def idle_now(self, now: float) -> float:
        """Seconds without a client at `now`, from the last reading (0 while one is connected)."""
        return 0.0 if self.clients else self.idle_for + max(0.0, now - self.idle_seen)


@dataclass
class Child:
    """The supervisor's record of one live browser actor (mutable, private to it)."""

    id: str
    addr: object
    marker: str
    tmpdir: str
    created: float  # monotonic
    started_at: float  # wall clock, for status
    state: ChildState = ChildState.STARTING
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
    exit_reason: ExitReason | None = None
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
    lease: LeaseRecord | None = None  # a leased browser's lease; None for a pool browser

    def move(self, to: ChildState, *, strict: bool | None = None) -> None:
        """Change state if TRANSITIONS allows it (see STRICT_ENV for what happens if not)."""
        if to not in TRANSITIONS[self.state]:
            error = f"browser {self.id}: illegal transition {self.state.value} -> {to.value}"
            if strict if strict is not None else os.environ.get(STRICT_ENV) == "1":
                raise IllegalTransition(error)
            log.error("%s (a supervisor bug; made anyway)", error)
        self.state = to

    def end(self, reason: ExitReason, detail: str = "") -> bool:
        """Record why it ends (the first reason given wins); True if this was the first."""
        if self.exit_reason is not None:
            return False
        self.exit_reason, self.exit_detail = reason, detail
        return True

    @property
    def alive_state(self) -> bool:
        """Idle or busy: its browser is up and should answer."""
        return self.state in (ChildState.IDLE, ChildState.BUSY, ChildState.LEASED)

    def lease_row(self) -> dict:
        """Its line in status `leases` (never the endpoint: it carries the secret)."""
        return {"id": self.lease.id, "browser": self.id, "pid": self.pid, "browser_pids": list(self.browser_pids),
                "engine": self.engine, "state": self.state.value, "started_at": self.started_at,
                "expires_at": self.lease.expires_at or None, "connected": self.lease.clients > 0}

    def row(self, now: float, default_engine: str) -> dict:
        """Its line in the supervisor's snapshot (plain data; the admin and the tests read these keys)."""
        return {
            "id": self.id,
            "pid": self.pid,
            "browser_pids": list(self.browser_pids),
            "engine": self.engine or default_engine,
            "version": self.version,
            "state": self.state.value,
            "job": self.job.id if self.job else None,
            "job_key": self.job.key if self.job else None,
            "assigns": self.assigns,
            "ends": self.ends,
            "jobs_done": self.jobs_done,
            "started_at": self.started_at,
            "age_s": round(now - self.created, 3),
            "sessions": list(self.sessions),
            "pss_sampled": self.pss,
        }
