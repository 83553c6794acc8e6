"""The pool's size decisions from plain data: target size, memory admission, recycling, PSS sampling."""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from foxden.protocols.exits import ExitReason
from foxden.supervisor.children import Child, ChildState

__all__ = ["DEFAULT_BROWSER_PSS", "Target", "active", "memory_hold", "pss_pick", "recycle_reason", "starting",
           "target"]

DEFAULT_BROWSER_PSS = 400 << 20  # a launch's cost until one has been measured


def active(children: Iterable[Child]) -> int:
    """Children that hold a place in the pool: what the target is compared with.

    A child stopped on purpose (retired, or stopped by a group restart) gives
    up its place at once, so that its replacement can start while it closes.
    A failed one keeps it until its exit has been through the restart policy:
    what replaces it is that policy's to decide (a restart, with its backoff
    and strategy, or none for a temporary child), and a replacement started
    earlier would be stopped again by its own group restart."""
    return sum(1 for c in children
               if c.state is not ChildState.STOPPING or c.exit_reason is None or not c.exit_reason.is_normal)


def starting(children: Iterable[Child]) -> int:
    return sum(1 for c in children if c.state is ChildState.STARTING)


@dataclass(frozen=True)
class Target:
    """How many browsers the pool wants, and which idle ones to retire to get there (oldest idle first)."""

    size: int
    retire: tuple[str, ...] = ()


def target(pool: Any, slots: int, children: Sequence[Child], queued: int, now: float) -> Target:
    """Derive the pool's target from demand, and the browsers idle past idle_shrink_s to retire.

    A fixed pool (min == max) always targets its size. An elastic one wants
    every busy browser, one per queued job and `prewarm` spares, within
    [min, max]; idle browsers beyond that are kept until they have been idle
    for idle_shrink_s. `slots` caps max (temporary children not replaced)."""
    hi = min(pool.max, slots)
    lo = min(pool.min, hi)
    if pool.min == pool.max:
        return Target(hi)
    busy = sum(1 for c in children if c.state is ChildState.BUSY)
    want = max(lo, min(hi, busy + queued + pool.prewarm))
    idle = sorted((c for c in children if c.state is ChildState.IDLE), key=lambda c: c.idle_since)
    recent = [c for c in idle if now - c.idle_since < pool.idle_shrink_s]
    size = max(want, min(hi, busy + starting(children) + len(recent)))
    serving, retire = active(children), []
    for child in idle:
        if serving <= size:
            break
        if child not in recent:
            retire.append(child.id)
            serving -= 1
    return Target(size, tuple(retire))


def memory_hold(measured_pss: Sequence[int], launching: int, available: int, headroom_mb: int) -> str | None:
    """Why one more browser must not start now, or None if it may.

    `measured_pss` are the sampled PSS of live browsers (bytes), `launching`
    how many are still starting, `available` the box's available memory."""
    need = int(statistics.median(measured_pss)) if measured_pss else DEFAULT_BROWSER_PSS
    headroom = headroom_mb << 20
    # Browsers still launching will take their share of what is available now.
    left = available - launching * need
    if left - headroom < need:
        return (f"held back: {left >> 20} MiB available, {headroom >> 20} MiB headroom, "
                f"a browser needs ~{need >> 20} MiB")
    return None


def recycle_reason(child: Child, children: Iterable[Child], recycle: Any, now: float) -> ExitReason | None:
    """Why this idle browser should be replaced now, if at all (`children`: the whole pool, for `degraded`)."""
    if recycle.max_jobs and child.jobs_done >= recycle.max_jobs:
        return ExitReason.RECYCLED_JOBS
    if recycle.max_age_s and now - child.created >= recycle.max_age_s:
        return ExitReason.RECYCLED_AGE
    if recycle.max_pss_mb and child.pss > recycle.max_pss_mb << 20:
        return ExitReason.RECYCLED_MEMORY
    if recycle.degrade_factor and len(child.durations) >= recycle.degrade_min_jobs:
        others = [d for c in children if c is not child for d in c.durations]
        if len(others) >= recycle.degrade_min_jobs:
            if statistics.median(child.durations) > recycle.degrade_factor * statistics.median(others):
                return ExitReason.DEGRADED
    return None


def pss_pick(children: Iterable[Child], cursor: int) -> Child | None:
    """The child whose PSS to measure at this tick: round robin over live, known ones (smaps is not free)."""
    kids = [c for c in children if c.pid and c.alive_state]
    return kids[cursor % len(kids)] if kids else None
