"""The admin actor: answers status queries and checks the den's invariants against reality."""
from __future__ import annotations

import itertools
import logging
import os
import time

import psutil
from thespian.actors import WakeupMessage

from foxden import procs
from foxden.actors.base import FoxdenActor
from foxden.supervisor.actor import EXIT_NOTICE_GRACE_S, RETIREMENTS
from foxden.protocols.messages import Initialized, InitAdmin, StateQuery, StatusQuery, StatusReport

log = logging.getLogger("foxden.admin")

# A browser's PSS in status is re-read when older than PSS_TTL_S seconds, at
# most PSS_READS_PER_STATUS browsers per status (the rest keep their last
# value): see Admin._pss.
PSS_TTL_S = 2.0
PSS_READS_PER_STATUS = 8


def check_invariants(disp_before: dict, sup: dict, disp_after: dict, actor_pids: set[int]) -> list[str]:
    """Violations of the den's invariants in one snapshot chain (empty list: all hold).

    1. The derived live count equals the number of live browser actor
       processes (children of the supervisor process, found by psutil).
    2. Busy browsers and in-flight jobs match one to one. The snapshots are
       taken in the order dispatcher, supervisor, dispatcher, and each pair of
       actors delivers in order, so a job in flight in *both* dispatcher
       snapshots is exactly a job the supervisor shows running.
    3. Every accepted job is answered, queued or in flight:
       submitted == ok + failed + timeout + rejected + unanswered."""
    out = []
    known = {c["pid"] for c in sup["children"] if c["pid"]}
    if sup["live"] != len(actor_pids):
        out.append(f"live count {sup['live']} != {len(actor_pids)} browser actor processes "
                   f"(unknown: {sorted(actor_pids - known)}, missing: {sorted(known - actor_pids)})")
    # A child being killed ("stopping") still holds its attempt until its
    # exit is processed, so "busy" here means "has an attempt".
    busy = {c["id"]: c["job_key"] for c in sup["children"] if c["job_key"]}
    before, after = disp_before["running"], disp_after["running"]
    inflight = {b: k for b, k in after.items() if before.get(b) == k}
    if busy != inflight:
        out.append(f"busy browsers {sorted(busy.items())} != in-flight jobs {sorted(inflight.items())}")
    t = disp_after["totals"]
    answered = t["ok"] + t["failed"] + t["timeout"] + t["rejected"]
    if t["submitted"] != answered + disp_after["unanswered"]:
        out.append(f"submitted {t['submitted']} != answered {answered} + unanswered {disp_after['unanswered']}")
    return out


class AdminActor(FoxdenActor):
    """Builds the `foxden status` document from a consistent snapshot chain.

    An invariant that fails is sampled again after a short pause and only
    reported if it fails the same way twice: a browser that died a few ms ago
    is gone from psutil before its ChildActorExited reaches the supervisor,
    and that window is not a violation."""

    role = "admin"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.config = None
        self.instance = ""
        self.supervisor = None
        self.dispatcher = None
        self.pending: dict[int, tuple] = {}
        self.ids = itertools.count(1)
        self.started = time.time()
        self.last_violations: list[str] = []
        self.pss_cache: dict[int, tuple[float, int]] = {}  # actor pid -> (monotonic time, PSS of its tree)
        self.pss_reads = 0  # smaps reads made for the status being built

    def receiveMsg_InitAdmin(self, msg: InitAdmin, sender) -> None:
        self.config, self.instance = msg.config, msg.instance
        self.supervisor, self.dispatcher = msg.supervisor, msg.dispatcher
        self.send(sender, Initialized("admin", os.getpid()))

    def receiveMsg_StatusQuery(self, msg: StatusQuery, sender) -> None:
        self._sample((sender, msg.tag, None))

    def _sample(self, request: tuple) -> None:
        qid = next(self.ids)
        self.pending[qid] = request
        self.send(self.dispatcher, StateQuery(qid, self.myAddress))

    def receiveMsg_StateQuery(self, msg: StateQuery, sender) -> None:
        request = self.pending.pop(msg.tag, None)
        if request is None or msg.dispatcher_after is None:
            return
        asker, tag, first = request
        pids = _actor_pids(msg.supervisor["pid"])
        violations = check_invariants(msg.dispatcher_before, msg.supervisor, msg.dispatcher_after, pids)
        if violations and first is None:
            # Long enough for the supervisor to see a lost exit notice and
            # clean up (EXIT_NOTICE_GRACE_S, checked once per watchdog tick).
            recheck = EXIT_NOTICE_GRACE_S + self.config.watchdog.interval_s + 0.25
            self.wakeupAfter(recheck, payload=("recheck", asker, tag, tuple(violations)))
            return
        if first is not None:
            # Report a violation only if the second sample fails the same check.
            kinds = {v.split(" ")[0] for v in first}
            violations = [v for v in violations if v.split(" ")[0] in kinds]
        self._log_change(violations)
        self.send(asker, StatusReport(tag, self._document(msg, violations)))

    def _log_change(self, violations: list[str]) -> None:
        """Log the invariant check only when its result changes (not on every status query)."""
        if violations == self.last_violations:
            return
        if violations:
            log.error("invariant violated: %s", "; ".join(violations))
        else:
            log.warning("invariants hold again")
        self.last_violations = violations

    def receiveMsg_WakeupMessage(self, msg: WakeupMessage, sender) -> None:
        if isinstance(msg.payload, tuple) and msg.payload[0] == "recheck":
            _, asker, tag, first = msg.payload
            self._sample((asker, tag, first))

    def _pss(self, actor_pid: int | None, tree: list[int]) -> int:
        """A browser tree's PSS, re-read at most every PSS_TTL_S.

        Reading smaps costs ~1-2 ms per Chromium process; `status --watch`,
        metrics scrapes and the chaos sampler ask several times a second."""
        if not actor_pid:
            return 0
        now = time.monotonic()
        hit = self.pss_cache.get(actor_pid)
        if hit is not None and (now - hit[0] < PSS_TTL_S or self.pss_reads >= PSS_READS_PER_STATUS):
            return hit[1]  # stale rather than read 500 smaps in one status of 50 browsers
        self.pss_reads += 1
        value = procs.pss_bytes(tree)
        self.pss_cache[actor_pid] = (now, value)
        if len(self.pss_cache) > 1024:  # forget actors long gone
            self.pss_cache = {p: v for p, v in self.pss_cache.items() if now - v[0] < PSS_TTL_S}
        return value

    def _document(self, chain: StateQuery, violations: list[str]) -> dict:
        sup, disp = chain.supervisor, chain.dispatcher_after
        running_ids = disp.get("running_ids", {})
        children = []
        by_state = {"starting": 0, "idle": 0, "busy": 0, "stopping": 0}
        table = procs.ProcessTable()
        self.pss_reads = 0
        for c in sup["children"]:
            by_state[c["state"]] = by_state.get(c["state"], 0) + 1
            # Browsers start renderers as they go: list what runs now.
            bpids = table.browser_pids(c["pid"]) if c["pid"] else []
            tree = [c["pid"], *table.descendants(c["pid"])] if c["pid"] else []
            children.append({
                "id": c["id"], "pid": c["pid"], "browser_pids": bpids, "engine": c["engine"],
                "version": c["version"], "state": c["state"], "job": c["job"], "jobs_done": c["jobs_done"],
                "started_at": c["started_at"], "age_s": c["age_s"], "sessions": c["sessions"],
                "pss_bytes": self._pss(c["pid"], tree),
            })
        return {
            "instance": self.instance,
            "pids": {"supervisor": sup["pid"], "dispatcher": disp["pid"], "admin": os.getpid()},
            "uptime_s": round(time.time() - self.started, 3),
            "engine": sup["engine"],
            "pool": {"state": sup["state"], "error": sup["error"], "target": sup["target"], "min": sup["min"],
                     "max": sup["max"], "held_back": sup["held_back"]},
            "browsers": {"live": sup["live"], "by_state": by_state},
            "children": children,
            "queue": {"depth": disp["queue_depth"], "in_flight": len(disp["running"]),
                      "in_flight_jobs": running_ids},
            "sessions": disp["sessions"],
            "totals": disp["totals"],
            "errors": disp["errors"],
            "durations": disp["durations"],
            "watchdog": {"kills": sum(sup["kills"].values()), "kills_by_reason": sup["kills"],
                         "hang_to_dead_ms": sup["hang_to_dead_ms"]},
            "exits": sup["exits"],
            "retirements": {k: v for k, v in sup["exits"].items() if k in RETIREMENTS},
            "restarts": sup["restarts"],
            "invariants": {"ok": not violations, "violations": violations, "checks": 3},
        }


def _actor_pids(supervisor_pid: int) -> set[int]:
    try:
        return {p.pid for p in psutil.Process(supervisor_pid).children() if procs.alive(p)}
    except psutil.Error:
        return set()
