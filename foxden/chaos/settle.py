"""Waiting for the den to settle after the load: nothing queued, every job answered, the pool full and idle."""
from __future__ import annotations

import time

from foxden import procs
from foxden.chaos.context import Context
from foxden.chaos.sampler import Sampler
from foxden.client import Client, ClientError

__all__ = ["STUCK_S", "why_unsettled", "settle"]

STUCK_S = 45.0  # settling gives up early when the den shows no change at all for this long


def why_unsettled(st: dict, frozen: list[int]) -> list[str]:
    """What keeps one status from being settled (empty: settled); frozen: SIGSTOPped pids still alive."""
    t = st["totals"]
    unanswered = t["submitted"] - (t["ok"] + t["failed"] + t["timeout"] + t["rejected"])
    why = []
    if st["queue"]["depth"] or st["queue"]["in_flight"]:
        why.append(f"queue depth {st['queue']['depth']}, in flight {st['queue']['in_flight']}")
    if unanswered:
        why.append(f"{unanswered} accepted jobs unanswered")
    if st["pool"]["state"] != "failed" and st["browsers"]["by_state"]["idle"] != st["pool"]["target"]:
        why.append(f"pool {st['browsers']['by_state']} not back to {st['pool']['target']} idle")
    if frozen:
        why.append(f"SIGSTOPped process(es) {frozen} still alive")
    return why


def _signature(st: dict) -> tuple:
    """What changes when the den makes progress."""
    return (tuple(sorted(st["totals"].items())), st["queue"]["depth"], st["queue"]["in_flight"],
            tuple((c["id"], c["state"]) for c in st["children"]))


def settle(ctx: Context, sampler: Sampler) -> tuple[dict | None, list[str]]:
    """Wait until why_unsettled() is empty and every frozen actor is gone; gives up after settle_timeout_s
    or STUCK_S without change. Returns the last status and what did not settle."""
    deadline = time.monotonic() + ctx.o.settle_timeout_s
    client, st, why = None, None, []
    last_sig, last_change = None, time.monotonic()
    while True:
        try:
            if client is None:
                client = Client.from_config(ctx.daemon.config, timeout=30)
            st = client.status()
        except ClientError as exc:
            why = [f"status failed: {exc}"]
            client = None
        if st is not None:
            sampler.take(st)
            # The daemon notices a frozen actor or main browser process and kills it; a frozen
            # child process of a browser is not waited for (the stray check judges it).
            frozen = [p for p, (_, kind, created) in ctx.stopped_pids.items()
                      if kind != "stop_child" and procs.pid_alive(p, created)]
            why = why_unsettled(st, frozen)
            if not why:
                break
            sig = _signature(st)
            if sig != last_sig:
                last_sig, last_change = sig, time.monotonic()
            elif time.monotonic() - last_change > STUCK_S:
                why.append(f"nothing changed for {STUCK_S:.0f}s")
                break
        if time.monotonic() > deadline:
            break
        time.sleep(0.25)
    if client is not None:
        client.close()
    return st, why
