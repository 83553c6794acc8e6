"""The fault injector: per-second faults at their rates, the signal faults as one table."""
from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass
from enum import Enum

import psutil

from foxden import procs
from foxden.chaos import badframe
from foxden.chaos.context import Context
from foxden.chaos.faults import PER_SECOND, Fault
from foxden.chaos.load import Load

__all__ = ["Target", "SignalFault", "SIGNAL_FAULTS", "Injector", "candidates"]

LIVE = ("idle", "busy")


class Target(Enum):
    """Which process of a browser a signal fault hits (the pids come from a status sample)."""

    MAIN = "main"  # the browser's main process: children[].browser_pids[0]
    ACTOR = "actor"  # the browser actor: children[].pid
    CHILD = "child"  # a zygote, renderer, GPU or utility process: children[].browser_pids[1:]


@dataclass(frozen=True)
class SignalFault:
    """A fault that signals one process of a random browser."""

    sig: signal.Signals
    target: Target
    states: tuple[str, ...] | None  # the browser states it may hit (None: any but "stopping")
    skip_frozen: bool  # pass over processes this run has already SIGSTOPped


SIGNAL_FAULTS = {
    "kill_browser": SignalFault(signal.SIGKILL, Target.MAIN, LIVE, skip_frozen=False),
    "kill_actor": SignalFault(signal.SIGKILL, Target.ACTOR, None, skip_frozen=True),
    "stop_actor": SignalFault(signal.SIGSTOP, Target.ACTOR, LIVE, skip_frozen=True),
    "stop_browser": SignalFault(signal.SIGSTOP, Target.MAIN, LIVE, skip_frozen=True),
    "stop_child": SignalFault(signal.SIGSTOP, Target.CHILD, LIVE, skip_frozen=True),
}


def candidates(fault: SignalFault, child: dict, frozen) -> list[int]:
    """The pids of one browser (a status child) that `fault` may signal."""
    if fault.states is None and child["state"] == "stopping":
        return []
    if fault.states is not None and child["state"] not in fault.states:
        return []
    if fault.target is Target.ACTOR:
        pids = [child["pid"]] if child["pid"] else []
    elif fault.target is Target.MAIN:
        pids = child["browser_pids"][:1]
    else:
        pids = child["browser_pids"][1:]
    return [p for p in pids if p not in frozen] if fault.skip_frozen else pids


class Injector:
    """Fires each per-second fault at its rate (and each at least once with min_each) until the load ends."""

    def __init__(self, ctx: Context, load: Load):
        self.ctx = ctx
        self.load = load
        self.rngs = {k: random.Random(f"{ctx.seed}:fault:{k}") for k in PER_SECOND}
        self.bad_frames: Counter = Counter()

    def loop(self, progress) -> None:
        """Every 0.1 s, per kind: fire with probability rate * 0.1; `progress()` past 0.3 forces the unfired."""
        ctx, dt = self.ctx, 0.1
        while not ctx.stop_threads.wait(dt):
            if ctx.submitting_done.is_set() and not ctx.any_driver_alive():
                return
            force = ctx.o.min_each and progress() >= 0.3
            for kind in PER_SECOND:
                rate = ctx.o.rates[kind]
                if rate <= 0:
                    continue
                fire = self.rngs[kind].random() < rate * dt
                if not fire and force and ctx.faults[kind] == 0:
                    fire = True
                if fire:
                    try:
                        self.inject(kind)
                    except Exception as exc:  # a fault that could not be injected is not a daemon bug
                        ctx.event("inject_error", fault=kind, detail=f"{type(exc).__name__}: {exc}")

    def inject(self, kind: str) -> None:
        rng = self.rngs[kind]
        if kind == Fault.BAD_FRAME:
            variant = rng.choice(badframe.VARIANTS)
            if badframe.send_bad_frame(self.ctx, variant, rng):
                with self.ctx.lock:
                    self.bad_frames[variant] += 1
                self.ctx.count(Fault.BAD_FRAME)
                self.ctx.event(Fault.BAD_FRAME, variant=variant)
        elif kind == Fault.BURST:
            self.load.start_burst()
        else:
            self._signal(kind, SIGNAL_FAULTS[kind], rng)

    def _signal(self, kind: str, fault: SignalFault, rng: random.Random) -> None:
        ctx = self.ctx
        st = ctx.latest
        if st is None:
            return
        children = sorted(st["children"], key=lambda c: c["id"])
        cands = [c for c in children if candidates(fault, c, ctx.stopped_pids)]
        if not cands:
            return
        c = rng.choice(cands)
        pids = candidates(fault, c, ctx.stopped_pids)
        pid = rng.choice(pids) if fault.target is Target.CHILD else pids[0]
        if not self._ours(pid, fault.target, f"{ctx.daemon.state_prefix}{st['instance']}/"):
            return
        os.kill(pid, fault.sig)
        if fault.sig == signal.SIGSTOP:
            with ctx.lock:
                ctx.stopped_pids[pid] = (time.monotonic(), kind, procs.create_time(pid))
        ctx.count(kind)
        ctx.event(kind, pid=pid, browser=c["id"], state=c["state"], job=c["job"])

    def _ours(self, pid: int, target: Target, instance: str) -> bool:
        """Only ever signal a process of this daemon instance (a pid from a stale sample may be reused)."""
        try:
            p = psutil.Process(pid)
            if target is Target.CHILD:
                # Chromium's children carry no readable marker; their command line names the profile.
                return self.ctx.state_dir in " ".join(p.cmdline())
            marker = p.environ().get(procs.MARKER_ENV, "")
            if not marker.startswith(instance) or not procs.alive(p):
                return False
            if target is Target.ACTOR:
                sup = (self.ctx.latest or {}).get("pids", {}).get("supervisor")
                return marker.endswith("/daemon") and (sup is None or p.ppid() == sup)
            return not marker.endswith("/daemon")
        except (psutil.Error, OSError):
            return False
