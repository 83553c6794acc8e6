"""Refused frames: counted once for every process of an instance, logged at a bounded rate."""
from __future__ import annotations

import enum
import fcntl
import logging
import os
import time

__all__ = ["LOG_EVERY_S", "Refusal", "SharedCounters", "counts", "refused", "status", "use"]

LOG_EVERY_S = 10.0  # per process and reason: the first refusal at once, then one summary line at most this often

log = logging.getLogger("foxden.transport")


class Refusal(enum.Enum):
    """Why something that reached an actor port was dropped."""

    MAC = "mac"  # the frame's tag is wrong: not sealed with this instance's key
    FRAME = "frame"  # a length header that is not one, or a frame larger than MAX_FRAME_BYTES
    PICKLE = "pickle"  # sealed, but names a class outside the allow-list (a bug, or a key holder's attack)
    SOURCE_LOADING = "source_loading"  # sealed Thespian source-loading request: foxden never loads sources
    SECOND_INIT = "second_init"  # an actor's init message after the first


class SharedCounters:
    """One 8-byte counter per Refusal in a memfd made before the first fork.

    Every process forked after it (Thespian's admin, its logger, every actor,
    those restarted later) inherits the descriptor, so each adds its own
    refusals to the same numbers and any of them (the admin, for status) reads
    the total. Increments hold a POSIX record lock: the kernel drops it when
    its holder dies, so a process SIGKILLed mid-increment (the watchdog kills
    browser actors) cannot wedge the others, unlike a semaphore. The memfd has
    no path and is close-on-exec: no browser and no other user can reach it."""

    SLOT = 8

    def __init__(self):
        self.fd = os.memfd_create("foxden-refusals", os.MFD_CLOEXEC)
        os.ftruncate(self.fd, self.SLOT * len(Refusal))

    def _offset(self, reason: Refusal) -> int:
        return list(Refusal).index(reason) * self.SLOT

    def add(self, reason: Refusal, n: int = 1) -> None:
        at = self._offset(reason)
        fcntl.lockf(self.fd, fcntl.LOCK_EX, self.SLOT, at)
        try:
            value = int.from_bytes(os.pread(self.fd, self.SLOT, at), "little")
            os.pwrite(self.fd, (value + n).to_bytes(self.SLOT, "little"), at)
        finally:
            fcntl.lockf(self.fd, fcntl.LOCK_UN, self.SLOT, at)

    def read(self) -> dict[str, int]:
        fcntl.lockf(self.fd, fcntl.LOCK_SH)
        try:
            raw = os.pread(self.fd, self.SLOT * len(Refusal), 0)
        finally:
            fcntl.lockf(self.fd, fcntl.LOCK_UN)
        return {r.value: int.from_bytes(raw[i * self.SLOT:(i + 1) * self.SLOT], "little")
                for i, r in enumerate(Refusal)}


class _LocalCounters:
    """The same interface for a process that never installed the transport (unit tests)."""

    def __init__(self):
        self.values = {r.value: 0 for r in Refusal}

    def add(self, reason: Refusal, n: int = 1) -> None:
        self.values[reason.value] += n

    def read(self) -> dict[str, int]:
        return dict(self.values)


_counters: SharedCounters | _LocalCounters = _LocalCounters()
_config = None  # the daemon's config, for the log format
_last_logged: dict[Refusal, float] = {}
_unlogged: dict[Refusal, int] = {}


def use(counters: SharedCounters, config=None) -> None:
    """Count into `counters` from now on (the daemon, before anything is forked)."""
    global _counters, _config
    _counters, _config = counters, config


def counts() -> dict[str, int]:
    """Refusals by reason, summed over every process of this instance."""
    return _counters.read()


def status() -> dict:
    """The `transport` part of `foxden status`: frames refused at the actor ports, and why."""
    by_reason = counts()
    frames = (Refusal.MAC, Refusal.FRAME, Refusal.PICKLE)
    return {"refused_frames": sum(by_reason[r.value] for r in frames),
            "refused_by_reason": by_reason}


def refused(reason: Refusal, detail: str) -> None:
    """Count one refusal and log it, at most one line per LOG_EVERY_S per reason in this process."""
    _counters.add(reason)
    now = time.monotonic()
    last = _last_logged.get(reason)
    if last is not None and now - last < LOG_EVERY_S:
        _unlogged[reason] = _unlogged.get(reason, 0) + 1
        return
    _last_logged[reason] = now
    more = _unlogged.pop(reason, 0)
    suffix = f" ({more} more refused in this process since the last line)" if more else ""
    _write(f"refused on an actor port ({reason.value}): {detail}{suffix}")


def _write(message: str) -> None:
    if _config is None:
        log.warning("%s", message)
        return
    # Straight to stderr (the daemon's log), formatted like every record: in
    # an actor, logging goes through Thespian's transport, and this runs
    # inside that transport's receive path.
    from foxden import logs

    try:
        logs.write_stderr(_config, log, logging.WARNING, "%s", message)
    except (OSError, ValueError):
        pass  # a closed stderr must not turn a refusal into a crash
