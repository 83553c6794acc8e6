"""Messages the daemon's actors exchange among themselves (never with clients)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from foxden.protocols.wire import ErrorInfo, PageResult

from foxden.protocols.exits import ExitReason
from foxden.protocols.options import DEFAULT as DEFAULT_OPTIONS, JobOptions

# These cross Thespian's transport between our own actor processes only.
# Everything that comes from a client is decoded by foxden.protocols.wire
# (msgpack, strict) before it becomes one of these.


@dataclass(frozen=True)
class JobSpec:
    """What to do in a browser: one attempt of a client's job.

    `key` is the daemon's own unique job key; `id` is what the answer is
    labelled with (the client's id when it gave one, else the key)."""

    key: str
    id: str
    url: str
    eval: str | None = None
    wait_for: str | None = None
    timeout_s: float = 30.0
    session: str | None = None
    new_session: bool = False
    screenshot: bool = False
    # The dispatcher's address: the browser actor sends the attempt's Outcome
    # straight there (JobResult), so a large result is never copied through
    # the supervisor. None: the Outcome rides in JobDone/JobFinished instead.
    answer_to: Any = None
    end_session: bool = False  # not a page: close `session`'s context (see Driver.end_session)
    options: JobOptions = DEFAULT_OPTIONS  # the job's page options (foxden.protocols.options, issue #14)
    # Persistent sessions ([sessions] persist): a storage state (Playwright's
    # shape, foxden.protocols.storage_state) the session's context is made
    # from afresh (on a browser that did not hold it, or after an import);
    # keep_state: take the session's state after the job (JobResult.state).
    restore: dict | None = None
    keep_state: bool = False


@dataclass(frozen=True)
class Outcome:
    """How one attempt ended inside a live browser (the browser survived it).

    The wire types, built by the browser actor's driver and passed on as they
    are up to the client's answer: `result` when status is "ok", else
    `error` (made by foxden.protocols.errors.ErrorCode.error)."""

    status: Literal["ok", "failed", "timeout"]
    result: PageResult | None = None
    error: ErrorInfo | None = None


# --- daemon -> actors: wiring ------------------------------------------------

@dataclass(frozen=True)
class InitSupervisor:
    """Daemon -> supervisor: configuration, the resolved engine, identity, who to report to."""

    config: Any
    engine: Any
    instance: str
    dispatcher: Any
    daemon_pid: int = 0  # the top level: when it is gone, nothing can stop this instance, so it ends itself
    browser_prefix: str = ""  # cluster: a member's incarnation, so no two incarnations share a browser id (temp dir)


@dataclass(frozen=True)
class InitDispatcher:
    """Daemon -> dispatcher: configuration, the supervisor's address and the resolved engine's name."""

    config: Any
    supervisor: Any
    engine: str = ""  # "chromium", "firefox", "camoufox": decides unsupported_option ("" = judge nothing)


@dataclass(frozen=True)
class InitAdmin:
    """Daemon -> admin: where to ask for state."""

    config: Any
    instance: str
    supervisor: Any
    dispatcher: Any


@dataclass(frozen=True)
class InitGateway:
    """Daemon -> gateway: config, and the actors that serve client requests."""

    config: Any
    instance: str
    dispatcher: Any
    admin: Any
    supervisor: Any = None  # for lease requests


@dataclass(frozen=True)
class Initialized:
    """Any actor -> daemon: the Init message was applied (listening, if a gateway)."""

    role: str
    pid: int
    detail: dict = field(default_factory=dict)


@dataclass(frozen=True)
class CloseGateway:
    """Daemon -> gateway: flush every answer, close every socket, reply Initialized."""


# --- gateway <-> dispatcher / admin ------------------------------------------

@dataclass(frozen=True)
class SubmitJob:
    """Gateway -> dispatcher: a client's job. Exactly one JobAnswer follows, to reply_to."""

    request: Any  # foxden.protocols.wire.JobRequest
    tag: Any
    reply_to: Any = None  # None: answer the sender


@dataclass(frozen=True)
class JobAnswer:
    """Dispatcher -> submitter: the one terminal answer of a job (a wire.Answer)."""

    tag: Any
    answer: Any


@dataclass(frozen=True)
class EndSessionRequest:
    """Gateway -> dispatcher: end `session` after its queued jobs. One SessionEndAnswer follows."""

    session: str
    tag: Any


@dataclass(frozen=True)
class SessionEndAnswer:
    """Dispatcher -> gateway: how an EndSessionRequest ended; `error` when it could not run."""

    tag: Any
    session: str
    existed: bool
    error: Any = None  # wire.ErrorInfo


@dataclass(frozen=True)
class CancelRequest:
    """Gateway -> dispatcher: cancel every unanswered job whose answer id is `id`. One CancelAnswer follows."""

    id: str
    tag: Any


@dataclass(frozen=True)
class CancelAnswer:
    """Dispatcher -> gateway: how many jobs a CancelRequest ended (0: none in flight by that id)."""

    tag: Any
    id: str
    count: int


@dataclass(frozen=True)
class SessionStateRequest:
    """Gateway -> dispatcher: export (`state` None) or import a session's storage state. A SessionStateAnswer follows."""

    session: str
    tag: Any
    state: dict | None = None  # import: checked by foxden.protocols.storage_state on the wire


@dataclass(frozen=True)
class SessionStateAnswer:
    """Dispatcher -> gateway: the exported state (None: no such session, or none kept), or an import's `error`."""

    tag: Any
    session: str
    state: dict | None = None
    error: Any = None  # wire.ErrorInfo
    imported: bool = False  # the answer to an import (else to an export)


@dataclass(frozen=True)
class StatusQuery:
    """Anyone -> admin: asks for a full status report (a StatusReport follows)."""

    tag: Any = None


@dataclass(frozen=True)
class StatusReport:
    """Admin -> asker: the status document (plain dict, as `foxden status --json`)."""

    tag: Any
    status: dict


# --- dispatcher <-> supervisor -----------------------------------------------

@dataclass(frozen=True)
class WorkRequest:
    """Supervisor -> dispatcher: browser `browser` is ready and idle; give it a job."""

    browser: str
    engine: str


@dataclass(frozen=True)
class Assign:
    """Dispatcher -> supervisor: run `job` on `browser`; the attempt may take budget_s."""

    browser: str
    job: JobSpec
    budget_s: float


@dataclass(frozen=True)
class AssignRefused:
    """Supervisor -> dispatcher: `browser` was no longer idle; `job` never started.

    `gone` is True when the supervisor has no such browser any more (its
    BrowserGone was already sent), so the dispatcher can forget it."""

    browser: str
    job_key: str
    gone: bool = False


@dataclass(frozen=True)
class JobFinished:
    """Supervisor -> dispatcher: an attempt ended in a live browser.

    `outcome` is the one in JobDone: None when it went straight to the
    dispatcher (JobResult), which then joins the two in either order.
    `available` is False when the browser is being retired (recycled) or
    the pool is stopping: it must not be given more work."""

    browser: str
    job_key: str
    outcome: Outcome | None
    available: bool = True


@dataclass(frozen=True)
class JobResult:
    """Browser actor -> dispatcher (JobSpec.answer_to): how an attempt ended, sent before its JobDone.

    Thespian does not order messages from different senders, so it may
    arrive before or after the supervisor's JobFinished for the attempt, or
    after its BrowserGone; the dispatcher takes it only for the attempt in
    progress (or one that finished and waits for it) and drops it otherwise."""

    browser: str
    job_key: str
    outcome: Outcome
    # JobSpec.keep_state: the session's storage state after the attempt, or
    # why there is none (too large, the driver failed to read it).
    state: dict | None = None
    state_error: str = ""


@dataclass(frozen=True)
class CancelAttempt:
    """Dispatcher -> supervisor: the job of attempt (browser, job_key) was cancelled: end its browser.

    Ignored unless the browser still runs that attempt; the exit reason is
    ExitReason.CANCELLED (not a failure, the job is not retried)."""

    browser: str
    job_key: str


@dataclass(frozen=True)
class Demand:
    """Dispatcher -> supervisor: how many jobs wait for a browser (elastic pools only)."""

    queued: int


@dataclass(frozen=True)
class BrowserGone:
    """Supervisor -> dispatcher: a browser actor is dead and cleaned up.

    Sent from exactly one place, the supervisor's ChildActorExited handler.
    `job_key` is the attempt that died with it (None when it was idle);
    `reason` is why it ended: an ExitReason's value (see `exit`)."""

    browser: str
    job_key: str | None
    reason: str
    detail: str = ""
    sessions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _plain_reason(self)

    @property
    def exit(self) -> ExitReason:
        return ExitReason(self.reason)


@dataclass(frozen=True)
class PoolFailed:
    """Supervisor -> dispatcher: restart intensity exceeded; no browsers will come."""

    error: str


@dataclass(frozen=True)
class StateQuery:
    """Admin -> dispatcher -> supervisor -> admin: a consistent snapshot chain.

    The dispatcher adds its snapshot and forwards to the supervisor, which adds
    its own and sends the query back to the dispatcher, which adds a second
    snapshot and answers the admin. A browser's job in the dispatcher's
    snapshots must equal its job in the supervisor's -- when no message about
    that browser is on its way. Thespian's TCP transport does not keep the
    order of messages between a pair of actors (a send that finds the
    connection busy waits, and a later send can take the connection first:
    the long chaos run saw it), so both actors number the Assign and
    attempt-ending messages of each browser, and the admin compares only
    browsers whose numbers agree across the chain (admin.check_invariants)."""

    tag: Any
    reply_to: Any
    dispatcher_before: dict | None = None
    supervisor: dict | None = None
    dispatcher_after: dict | None = None


@dataclass(frozen=True)
class Drain:
    """Daemon -> dispatcher: stop accepting, finish in-flight within grace_s, stop the pool.

    The dispatcher answers every queued job `rejected`/`shutting_down`, then
    replies Drained once no browser is left."""

    grace_s: float


@dataclass(frozen=True)
class StopPool:
    """Dispatcher -> supervisor: stop every browser now (no restarts); reply PoolStopped."""


@dataclass(frozen=True)
class PoolStopped:
    """Supervisor -> dispatcher: every child has exited and been cleaned up."""


@dataclass(frozen=True)
class Drained:
    """Dispatcher -> daemon: every job has had its answer and the pool is empty."""

    answered_during_drain: int


# --- supervisor <-> browser actor --------------------------------------------

@dataclass(frozen=True)
class StartBrowser:
    """Supervisor -> new browser actor: launch your browser.

    `marker` goes into the environment of every process the actor starts, so
    the supervisor can find them even after they re-parent away."""

    browser: str
    config: Any  # foxden.config.Config
    engine: Any  # foxden.engines.EngineChoice, resolved once by the daemon
    marker: str
    tmpdir: str
    lease: Any = None  # a LeaseSpec: launch for a lease (its endpoint), not for jobs


@dataclass(frozen=True)
class LeaseSpec:
    """Supervisor -> browser actor (in StartBrowser): serve this lease's endpoint on `host`, under `secret`."""

    id: str
    secret: str
    host: str


@dataclass(frozen=True)
class LeaseReady:
    """Browser actor -> supervisor: the leased browser is up and its endpoint listens on `port`."""

    browser: str
    pid: int
    browser_pids: tuple[int, ...]
    engine: str
    version: str
    port: int
    playwright_version: str | None = None


@dataclass(frozen=True)
class LeaseRequest:
    """Gateway -> supervisor: a client asks for a leased browser (wire `lease`); a LeaseAnswer to `tag` follows."""

    tag: Any
    engine: str | None = None
    ttl_s: float | None = None
    idle_s: float | None = None


@dataclass(frozen=True)
class LeaseAnswer:
    """Supervisor -> gateway: the granted lease (`info`: the wire `leased` fields but rid), or `error`."""

    tag: Any
    info: dict | None = None
    error: Any = None  # wire.ErrorInfo


@dataclass(frozen=True)
class EndLeaseRequest:
    """Gateway -> supervisor: end lease `lease` (wire `end_lease`); a LeaseEndAnswer follows once it is gone."""

    tag: Any
    lease: str


@dataclass(frozen=True)
class LeaseEndAnswer:
    """Supervisor -> gateway: the lease's browser is gone (existed) or there was no such lease."""

    tag: Any
    lease: str
    existed: bool


@dataclass(frozen=True)
class BrowserStarted:
    """Browser actor -> supervisor: alive, here is my pid (sent before launching)."""

    browser: str
    pid: int


@dataclass(frozen=True)
class BrowserReady:
    """Browser actor -> supervisor: browser launched and idle."""

    browser: str
    pid: int
    browser_pids: tuple[int, ...]
    engine: str
    version: str


@dataclass(frozen=True)
class RunJob:
    """Supervisor -> browser actor: run one attempt; answer JobDone unless the browser dies."""

    job: JobSpec
    budget_s: float


@dataclass(frozen=True)
class JobDone:
    """Browser actor -> supervisor: the attempt ended and the browser is healthy.

    `outcome` is None when it was sent straight to the dispatcher (JobResult):
    the supervisor only needs to know that the attempt ended."""

    browser: str
    job_key: str
    outcome: Outcome | None
    sessions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Ping:
    """Supervisor -> idle browser actor: heartbeat."""

    seq: int


@dataclass(frozen=True)
class Pong:
    """Browser actor -> supervisor: heartbeat answer; alive is False if its browser died."""

    browser: str
    seq: int
    alive: bool
    clients: int = 0  # a leased browser: clients connected to its endpoint now
    idle_for: float = 0.0  # a leased browser: seconds without a connected client


@dataclass(frozen=True)
class Dying:
    """Browser actor -> supervisor: I am exiting on my own, and why (`reason`: an ExitReason's value)."""

    browser: str
    reason: str
    detail: str = ""

    def __post_init__(self) -> None:
        _plain_reason(self)

    @property
    def exit(self) -> ExitReason:
        return ExitReason(self.reason)


def _plain_reason(msg) -> None:
    """Check `reason` against the vocabulary and keep its plain str value (what the transport may carry)."""
    try:
        object.__setattr__(msg, "reason", ExitReason(msg.reason).value)
    except ValueError:
        raise ValueError(f"{type(msg).__name__}.reason: {msg.reason!r} is not one of "
                         f"{[r.value for r in ExitReason]}") from None


# --- the cluster (issue #16, docs/cluster.md) -----------------------------------
# Every message between the leader's cluster actor and a member's node actor
# carries the node's incarnation: a message of one the leader wrote off (lost,
# replaced, released) is dropped, never answered.

@dataclass(frozen=True)
class InitCluster:
    """Daemon -> the leader's cluster actor."""

    config: Any
    dispatcher: Any
    supervisor: Any  # the leader's own pool, or None ([pool] size = 0)
    address: str  # the leader's Thespian admin, "host:port"


@dataclass(frozen=True)
class InitNode:
    """Cluster actor -> a node actor it placed on a member: who the leader is and what the node is called."""

    node: str
    heartbeat_s: float
    dead_after_s: float


@dataclass(frozen=True)
class NodeJoin:
    """Node actor -> cluster actor: a new incarnation asks to join (sent until welcomed)."""

    node: str
    incarnation: str
    address: str


@dataclass(frozen=True)
class NodeWelcome:
    """Cluster actor -> node actor: the incarnation is up; it may start its browsers."""

    incarnation: str


@dataclass(frozen=True)
class NodeHeartbeat:
    """Node actor -> cluster actor, every heartbeat_s: its supervisor's snapshot and its own invariant check."""

    node: str
    incarnation: str
    report: dict
    violations: tuple[str, ...] = ()


@dataclass(frozen=True)
class HeartbeatAck:
    """Cluster actor -> node actor: the leader heard the heartbeat (the node's proof that it is not fenced)."""

    incarnation: str


@dataclass(frozen=True)
class NodeFence:
    """Cluster actor -> node actor: that incarnation was written off; kill its browsers and join anew."""

    incarnation: str
    reason: str


@dataclass(frozen=True)
class NodeRelease:
    """Cluster actor -> node actor: drained; stop the browsers and leave (the member's daemon stays up)."""

    incarnation: str


@dataclass(frozen=True)
class FromNode:
    """Node actor -> cluster actor: one of its supervisor's (or browsers') messages for the dispatcher."""

    node: str
    incarnation: str
    message: Any


@dataclass(frozen=True)
class ToNode:
    """Cluster actor -> node actor: a message for its supervisor (Assign, Demand, StopPool)."""

    incarnation: str
    message: Any


@dataclass(frozen=True)
class LinkTo:
    """Cluster actor -> the link it made for a node (foxden.cluster.link): forward everything to `node`."""

    node: Any


@dataclass(frozen=True)
class DrainNode:
    """`foxden node drain` -> cluster actor: stop assigning to `node`, release it when its jobs are done."""

    node: str


@dataclass(frozen=True)
class DrainNodeReply:
    """Cluster actor -> the asker: `error` is empty when the node is draining (or was already)."""

    node: str
    state: str
    jobs_in_flight: int = 0
    error: str = ""
