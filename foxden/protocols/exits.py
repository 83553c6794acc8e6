"""Why a browser actor ended: the one closed vocabulary of exit reasons, and what each implies."""
from __future__ import annotations

from enum import StrEnum

__all__ = ["EXIT_NOTICE_GRACE_S", "ExitReason"]

# Here, under protocols/, rather than beside the restart policy in
# foxden/supervisor/: the browser actor emits these, the dispatcher answers
# jobs by them and the admin reports them, and foxden/actors must not import
# foxden/supervisor (nor the other way round). Messages carry the value (a
# plain str: the transport's unpickler admits no class from this module);
# status reports it as is. Every question about a reason is one of the
# properties below; nothing else compares reasons.

# How long the supervisor waits, once a child's actor process is seen dead,
# for Thespian's ChildActorExited before cleaning up without it (the notice
# normally takes 5-9 ms). The admin waits as long before it trusts a sample.
EXIT_NOTICE_GRACE_S = 1.0


class ExitReason(StrEnum):
    """Why a browser actor ended (the supervisor's record of it, and BrowserGone's `reason`)."""

    # Failures: the browser ended without the supervisor asking it to.
    CRASH = "crash"  # the browser or its actor died (its main process gone, a driver error)
    TIMEOUT = "timeout"  # watchdog: its job overran the attempt's deadline plus kill_grace_s
    UNRESPONSIVE = "unresponsive"  # watchdog: no heartbeat, or its main process stopped (SIGSTOP)
    LAUNCH_FAILED = "launch_failed"  # the launch raised, or was not ready within launch_timeout_s
    NODE_LOST = "node_lost"  # cluster: its node stopped heartbeating; the leader wrote its browsers off
    # Retirements: the supervisor replaces (or drops) a healthy idle browser.
    RECYCLED_JOBS = "recycled_jobs"
    RECYCLED_AGE = "recycled_age"
    RECYCLED_MEMORY = "recycled_memory"
    DEGRADED = "degraded"  # its jobs got much slower than the rest of the pool's
    IDLE = "idle"  # an elastic pool shrinking
    REPAIRED = "repaired"  # the supervisor's handler for its job's end failed: replaced, never left half-known
    # Killed mid-job on purpose, and replaced like a retirement: not the browser's fault.
    CANCELLED = "cancelled"  # its job was cancelled by a client (CancelAttempt); the job is not retried
    # Sibling stops: stopped as part of another child's group restart.
    SIBLING_ONE_FOR_ALL = "sibling_one_for_all"
    SIBLING_REST_FOR_ONE = "sibling_rest_for_one"
    SHUTDOWN = "shutdown"  # the pool is stopping, or has given up
    # Lease ends: a leased browser (never in the pool) is killed and never
    # reused; nothing is retried, restarted or charged to the intensity.
    LEASE_EXPIRED = "lease_expired"  # watchdog: its ttl passed
    LEASE_IDLE = "lease_idle"  # watchdog: no client connected for its idle seconds
    LEASE_ENDED = "lease_ended"  # its holder ended it (`foxden lease end`, end_lease)

    @property
    def is_normal(self) -> bool:
        """Not a failure: the supervisor ended it on purpose (OTP's shutdown / {shutdown, _})."""
        return self not in _FAILURES

    @property
    def counts_toward_intensity(self) -> bool:
        """A restart for it is charged to the restart intensity (and backed off).

        A deliberate deviation from OTP, where every restart counts: a
        browser killed because its job's page hung is the page's fault, not
        the browser's, and one slow site must not exhaust the pool's restart
        budget. Normal exits are never restarted for themselves."""
        return self in _FAILURES and self is not ExitReason.TIMEOUT

    @property
    def retries_job(self) -> bool:
        """The job it interrupted may run again on another browser (if it has tries left).

        Not after a timeout (the job had its time), at shutdown (nothing
        will run it) nor after a cancel (its client wants no more of it); a
        sibling stop or a crash is not the job's doing."""
        return (self not in (ExitReason.TIMEOUT, ExitReason.SHUTDOWN, ExitReason.CANCELLED)
                and self not in _LEASE_ENDS)

    @property
    def ends_lease(self) -> bool:
        """A lease's normal end (ttl, idle, or on request): its browser goes, nothing replaces it."""
        return self in _LEASE_ENDS

    @property
    def node_lost(self) -> bool:
        """Its whole node was written off (cluster): a job it ran that cannot be retried is answered node_lost."""
        return self is ExitReason.NODE_LOST

    @property
    def is_retirement(self) -> bool:
        """The supervisor retired a healthy browser: it is replaced, the restart policy is not consulted."""
        return self in _RETIREMENTS

    @property
    def strategy(self) -> str | None:
        """For a sibling stop, the restart strategy that stopped it; else None."""
        return _SIBLING_STRATEGIES.get(self)

    @classmethod
    def sibling_stop(cls, strategy: str) -> ExitReason:
        """The reason for a child stopped by another's group restart under `strategy`."""
        for reason, name in _SIBLING_STRATEGIES.items():
            if name == strategy:
                return reason
        raise ValueError(f"strategy {strategy!r} stops no siblings")


_FAILURES = frozenset({ExitReason.CRASH, ExitReason.TIMEOUT, ExitReason.UNRESPONSIVE, ExitReason.LAUNCH_FAILED,
                       ExitReason.NODE_LOST})
_RETIREMENTS = frozenset({ExitReason.RECYCLED_JOBS, ExitReason.RECYCLED_AGE, ExitReason.RECYCLED_MEMORY,
                          ExitReason.DEGRADED, ExitReason.IDLE, ExitReason.REPAIRED, ExitReason.CANCELLED})
_LEASE_ENDS = frozenset({ExitReason.LEASE_EXPIRED, ExitReason.LEASE_IDLE, ExitReason.LEASE_ENDED})
_SIBLING_STRATEGIES = {ExitReason.SIBLING_ONE_FOR_ALL: "one_for_all", ExitReason.SIBLING_REST_FOR_ONE: "rest_for_one"}
