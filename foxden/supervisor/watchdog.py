"""The watchdog's verdict on one child at one tick, from plain data (no clock, no process, no message)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from foxden.leases.terms import lease_verdict
from foxden.protocols.exits import EXIT_NOTICE_GRACE_S, ExitReason
from foxden.supervisor.children import Child, ChildState

__all__ = ["STOP_SLACK_S", "Kill", "Limits", "SendPing", "count_stopped", "missed_exit", "stop_deadline",
           "verdict"]

# A child asked to exit closes its browser within close_timeout_s (its driver
# escalates to SIGKILL by then), then needs a moment to kill what is left and
# exit: past close_timeout_s + this, the watchdog kills it.
STOP_SLACK_S = 2.0


@dataclass(frozen=True)
class Limits:
    """The watchdog's settings, as the verdicts need them."""

    heartbeat_timeout_s: float
    kill_grace_s: float
    launch_timeout_s: float
    close_timeout_s: float
    # Pings a silent idle child must have missed (besides heartbeat_timeout_s
    # of wall-clock silence) before it is judged unresponsive.
    missed_pings_limit: int

    @classmethod
    def from_config(cls, config: Any) -> Limits:
        wd = config.watchdog
        return cls(heartbeat_timeout_s=wd.heartbeat_timeout_s, kill_grace_s=wd.kill_grace_s,
                   launch_timeout_s=config.pool.launch_timeout_s, close_timeout_s=wd.close_timeout_s,
                   missed_pings_limit=max(2, math.ceil(wd.heartbeat_timeout_s / wd.interval_s)))


@dataclass(frozen=True)
class Kill:
    """Kill the child's processes; `reason` is recorded unless it already has one."""

    reason: ExitReason
    detail: str


@dataclass(frozen=True)
class SendPing:
    """Send the child heartbeat number `seq`."""

    seq: int


def count_stopped(ticks: int, main_state: str | None) -> int:
    """Consecutive ticks on which the browser's main process was seen stopped (SIGSTOP, a frozen cgroup)."""
    return ticks + 1 if main_state == "stopped" else 0


def stop_deadline(now: float, limits: Limits) -> float:
    """When a child asked to exit now must be gone."""
    return now + limits.close_timeout_s + STOP_SLACK_S


def verdict(child: Child, main_state: str | None, now: float, limits: Limits) -> Kill | SendPing | None:
    """What the watchdog does about `child` at `now`.

    `main_state` is procs.process_state of its browser's main process (None
    before it is known); `child.stopped_ticks` must already count this tick."""
    main = child.browser_pids[0] if child.browser_pids else None
    if child.alive_state and main_state == "gone":
        # Playwright may not notice for seconds (the browser's other
        # processes keep its pipe open), so the process itself is checked.
        return Kill(ExitReason.CRASH, f"browser process {main} is gone")
    if child.alive_state and child.stopped_ticks >= 2:
        # Stopped on two ticks in a row: it answers nothing, and an idle one
        # would never be noticed otherwise.
        return Kill(ExitReason.UNRESPONSIVE, f"browser process {main} is stopped")
    if child.state is ChildState.BUSY and now > child.deadline + limits.kill_grace_s:
        budget = child.deadline - child.job_started
        return Kill(ExitReason.TIMEOUT, f"job {child.job.id if child.job else '?'} exceeded its {budget:.1f}s budget")
    if child.state is ChildState.STARTING and now - child.created > limits.launch_timeout_s:
        # A launch that never completed is a failed launch.
        return Kill(ExitReason.LAUNCH_FAILED, f"not ready after {limits.launch_timeout_s:.0f}s")
    if child.state is ChildState.IDLE:
        return _heartbeat(child, now, limits)
    if child.state is ChildState.LEASED:
        lease = child.lease
        ends = lease_verdict(now, lease.expires, lease.idle_now(now), lease.idle_s)
        if ends is not None:
            return Kill(ends, f"lease {lease.id}: " + ("its ttl passed" if ends is ExitReason.LEASE_EXPIRED
                                                       else f"no client for {lease.idle_s:g}s"))
        return _heartbeat(child, now, limits)
    if child.state is ChildState.STOPPING and child.kill_at is None and now > child.stop_by:
        return Kill(child.exit_reason or ExitReason.CRASH, "did not exit in time")
    return None


def _heartbeat(child: Child, now: float, limits: Limits) -> Kill | SendPing:
    # Silent for heartbeat_timeout_s *and* for that many of our own ticks:
    # when the supervisor is starved (50 browsers rendering on 2 cores) its
    # ticks come late and the pongs wait in its mailbox behind them, and
    # wall-clock silence alone killed every healthy idle browser at once.
    missed = child.ping_sent - child.pong_seen
    silent = now - child.last_pong
    if missed >= limits.missed_pings_limit and silent > limits.heartbeat_timeout_s:
        return Kill(ExitReason.UNRESPONSIVE, f"no heartbeat for {silent:.1f}s")
    return SendPing(child.ping_sent + 1)


def missed_exit(dead_since: float | None, gone: bool, now: float,
                grace_s: float = EXIT_NOTICE_GRACE_S) -> tuple[float | None, bool]:
    """Track a child whose actor process is gone but whose exit notice has not come.

    Thespian 4.0.1 can drop ChildActorExited for a second child that dies
    close to another one (found by the chaos harness). Returns the new
    `dead_since` and whether to clean up without the notice: once the
    process has been seen gone for longer than `grace_s`."""
    if not gone:
        return None, False
    if dead_since is None:
        return now, False
    return dead_since, now - dead_since > grace_s
