"""The admin actor: answers status queries and checks the den's invariants against reality."""
from __future__ import annotations

import itertools
import logging
import os
import time
from dataclasses import dataclass

from thespian.actors import WakeupMessage

from foxden import procs
from foxden.actors.base import FoxdenActor
from foxden.memwatch import MemWatch
from foxden.protocols.exits import EXIT_NOTICE_GRACE_S, ExitReason
from foxden.transport import refusals as transport_refusals
from foxden.protocols.messages import Initialized, InitAdmin, StateQuery, StatusQuery, StatusReport

log = logging.getLogger("foxden.admin")

# A failing check is sampled again up to this many times (each ~1.5 s later);
# only a discrepancy found in every sample is reported (see AdminActor).
RECHECKS = 3


@dataclass(frozen=True)
class Violation:
    """One broken invariant in one snapshot chain.

    `key` names the discrepancy itself (which browser, pid or job), so the
    admin can tell one that persists across two chains from two different
    passing windows; `text` says it for people."""

    key: tuple
    text: str


def check_invariants(disp_before: dict, sup: dict, disp_after: dict, actor_pids: set[int]
                     ) -> tuple[list[Violation], list[str]]:
    """The violations in one snapshot chain, and the browsers it could not judge.

    1. The derived live count equals the number of live browser actor
       processes (children of the supervisor process, read from /proc),
       checked pid by pid: every child the supervisor knows by pid is alive,
       and every actor process is a known child or one whose first message
       (with its pid) has not arrived yet.
    2. Each browser's job is the same in the supervisor and the dispatcher.
       Judged only for browsers with no job message on its way: both actors
       number those messages per browser (see StateQuery), and a browser
       whose numbers differ anywhere in the chain is returned as unsettled.
    3. Every accepted job is answered, queued or in flight:
       submitted == ok + failed + timeout + rejected + unanswered."""
    jobs, unsettled = _job_violations(disp_before, sup, disp_after)
    return (_live_violations(sup, actor_pids) + jobs + _totals_violations(disp_after) + _node_violations(sup),
            unsettled)


def _node_violations(sup: dict) -> list[Violation]:
    """A cluster's nodes: rule 1 as each node judged it on its own machine (its last heartbeat)."""
    return [Violation(("node", n["name"], text), f"node {n['name']}: {text}")
            for n in sup.get("nodes", []) for text in n.get("violations", [])]


def _live_violations(sup: dict, actor_pids: set[int]) -> list[Violation]:
    """Rule 1, pid by pid (a count alone cannot tell one dying child from another)."""
    live = sup["live"]
    head = f"live count {live} != {len(actor_pids)} browser actor processes" if live != len(actor_pids) \
        else "live count matches but"
    known = {c["pid"]: c["id"] for c in sup["children"] if c["pid"]}
    pidless = sorted(c["id"] for c in sup["children"] if not c["pid"])
    out = [Violation(("live", "missing", known[pid], pid),
                     f"{head}: browser {known[pid]} counts as live but its actor process {pid} is gone")
           for pid in sorted(set(known) - actor_pids)]
    unknown = sorted(actor_pids - set(known))
    if len(unknown) > len(pidless):
        out += [Violation(("live", "unknown", pid),
                          f"{head}: actor process {pid} is not a child the supervisor knows "
                          f"({len(pidless)} child(ren) without a pid yet)")
                for pid in unknown]
    elif len(unknown) < len(pidless):
        out.append(Violation(("live", "pidless", tuple(pidless)),
                             f"{head}: children {pidless} have no pid yet but only {len(unknown)} "
                             f"unknown actor process(es) run"))
    return out


def _job_violations(disp_before: dict, sup: dict, disp_after: dict) -> tuple[list[Violation], list[str]]:
    """Rule 2: per browser, the supervisor's job against the dispatcher's."""
    # A cluster's other nodes' children (their last heartbeat) are judged here too: per browser,
    # matching numbers mean no message in transit, however old the report.
    children = {c["id"]: c for c in sup["children"] + sup.get("remote_children", [])}
    unreported = set(sup.get("unreported", ()))
    before_ch, after_ch = disp_before.get("channel", {}), disp_after.get("channel", {})
    running = disp_after["running"]
    gones_settled = disp_before.get("gones") == sup.get("gones") == disp_after.get("gones")
    out, unsettled = [], []
    for b in sorted(set(children) | set(disp_before["running"]) | set(running)):
        numbers = list(before_ch.get(b, (0, 0)))
        child = children.get(b)
        if b in unreported:
            settled = False  # a cluster node's browser its last heartbeat predates
        elif list(after_ch.get(b, (0, 0))) != numbers:
            settled = False  # the dispatcher sent an Assign or got an end during the chain
        elif child is None:
            settled = gones_settled  # else its BrowserGone may still be on its way
        else:
            settled = [child["assigns"], child["ends"]] == numbers
        if not settled:
            unsettled.append(b)
            continue
        # Settled: no job message of b moved during the chain, so the
        # dispatcher's before and after agree and the supervisor's must too.
        mine = child["job_key"] if child else None
        theirs = running.get(b)
        if mine != theirs:
            out.append(Violation(("busy", b, mine, theirs),
                                 f"busy browser {b}: supervisor runs {mine or 'no job'}, "
                                 f"dispatcher has {theirs or 'no job'} in flight"))
    return out, unsettled


def _totals_violations(disp: dict) -> list[Violation]:
    t = disp["totals"]
    answered = t["ok"] + t["failed"] + t["timeout"] + t["rejected"]
    if t["submitted"] == answered + disp["unanswered"]:
        return []
    # One actor's own snapshot: no message can be in transit, so no window.
    return [Violation(("totals",),
                      f"submitted {t['submitted']} != answered {answered} + unanswered {disp['unanswered']}")]


def _remote_children(sup: dict, by_state: dict) -> list[dict]:
    """A cluster's other nodes' children as their last heartbeat showed them (counted into by_state)."""
    out = []
    for c in sup.get("remote_children", []):
        by_state[c["state"]] = by_state.get(c["state"], 0) + 1
        out.append({"node": c["node"], "id": c["id"], "pid": c["pid"], "browser_pids": c["browser_pids"],
                    "engine": c["engine"], "version": c["version"], "state": c["state"], "job": c["job"],
                    "jobs_done": c["jobs_done"], "started_at": c["started_at"], "age_s": c["age_s"],
                    "sessions": c["sessions"], "pss_bytes": 0, "pss_sampled": c.get("pss_sampled", 0)})
    return out


def confirmed(first: frozenset, second: list[Violation]) -> list[Violation]:
    """The violations of a later sample that the earlier ones had too (same key)."""
    return [v for v in second if v.key in first]


class AdminActor(FoxdenActor):
    """Builds the `foxden status` document from a consistent snapshot chain.

    An invariant that fails is sampled again after a short pause (up to
    RECHECKS times, while it still fails) and only reported if the same
    discrepancy (same browser, pid or job: Violation.key) is in every
    sample: a browser that died a few ms ago is gone from psutil before its
    ChildActorExited reaches the supervisor, and that window is not a
    violation -- nor are two such windows in a row for two different browsers
    (the long chaos run reported two of those when only the kind of check had
    to match)."""

    role = "admin"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.config = None
        self.instance = ""
        self.supervisor = None
        self.dispatcher = None
        self.pending: dict[int, tuple] = {}  # chain id -> (request, when the chain was sent)
        self.ids = itertools.count(1)
        self.started = time.time()
        self.last_violations: list[str] = []
        self.memwatch = MemWatch()  # browsers' PSS, read off the status path

    def receiveMsg_InitAdmin(self, msg: InitAdmin, sender) -> None:
        self.config, self.instance = msg.config, msg.instance
        self.supervisor, self.dispatcher = msg.supervisor, msg.dispatcher
        self.send(sender, Initialized("admin", os.getpid()))

    def receiveMsg_StatusQuery(self, msg: StatusQuery, sender) -> None:
        self._sample((sender, msg.tag, None, RECHECKS, time.monotonic()))

    def _sample(self, request: tuple) -> None:
        qid = next(self.ids)
        self.pending[qid] = (request, time.monotonic())
        self.send(self.dispatcher, StateQuery(qid, self.myAddress))

    def receiveMsg_StateQuery(self, msg: StateQuery, sender) -> None:
        pending = self.pending.pop(msg.tag, None)
        if pending is None or msg.dispatcher_after is None:
            return
        (asker, tag, first, rechecks, asked), chain_started = pending
        chain_done = time.monotonic()
        # One read of /proc serves the live check and the document.
        table = procs.ProcessTable()
        pids = set(table.children(msg.supervisor["pid"])) if msg.supervisor["pid"] else set()
        violations, unsettled = check_invariants(msg.dispatcher_before, msg.supervisor, msg.dispatcher_after, pids)
        if first is not None:
            violations = confirmed(first, violations)
        if violations and rechecks > 0:
            # Long enough for the supervisor to see a lost exit notice and
            # clean up (EXIT_NOTICE_GRACE_S, checked once per watchdog tick);
            # a starved supervisor's tick can come later, hence more than one.
            recheck = EXIT_NOTICE_GRACE_S + self.config.watchdog.interval_s + 0.25
            keys = frozenset(v.key for v in violations)
            self.wakeupAfter(recheck, payload=("recheck", asker, tag, keys, rechecks - 1, asked))
            return
        texts = [v.text for v in violations]
        self._log_change(texts)
        doc = self._document(msg, texts, unsettled, table)
        # Where a slow status spent its time: the last snapshot chain through
        # the dispatcher and the supervisor, reading /proc, and any re-checks.
        doc["sample_ms"] = {"total": round((time.monotonic() - asked) * 1000, 1),
                            "last_chain": round((chain_done - chain_started) * 1000, 1),
                            "document": round((time.monotonic() - chain_done) * 1000, 1),
                            "rechecks": RECHECKS - rechecks}
        self.send(asker, StatusReport(tag, doc))

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
            _, asker, tag, first, rechecks, asked = msg.payload
            self._sample((asker, tag, first, rechecks, asked))

    def _document(self, chain: StateQuery, violations: list[str], unsettled: list[str],
                  table: procs.ProcessTable) -> dict:
        sup, disp = chain.supervisor, chain.dispatcher_after
        running_ids = disp.get("running_ids", {})
        children = []
        by_state = {"starting": 0, "idle": 0, "busy": 0, "stopping": 0}
        self.memwatch.watch(c["pid"] for c in sup["children"])
        for c in sup["children"]:
            by_state[c["state"]] = by_state.get(c["state"], 0) + 1
            # Browsers start renderers as they go: list what runs now.
            bpids = table.tree(c["browser_pids"][0]) if c["browser_pids"] else []
            children.append({
                **({"node": c["node"]} if "node" in c else {}),
                "id": c["id"], "pid": c["pid"], "browser_pids": bpids, "engine": c["engine"],
                "version": c["version"], "state": c["state"], "job": c["job"], "jobs_done": c["jobs_done"],
                "started_at": c["started_at"], "age_s": c["age_s"], "sessions": c["sessions"],
                "pss_bytes": self.memwatch.pss(c["pid"]) if c["pid"] else 0,
                # the supervisor's own last reading: what admission and max_pss_mb judge by (0: none yet)
                "pss_sampled": c.get("pss_sampled", 0),
            })
        return {
            "instance": self.instance,
            "pids": {"supervisor": sup["pid"], "dispatcher": disp["pid"], "admin": os.getpid()},
            "uptime_s": round(time.time() - self.started, 3),
            "engine": sup["engine"],
            "pool": {"state": sup["state"], "error": sup["error"], "target": sup["target"], "min": sup["min"],
                     "max": sup["max"], "held_back": sup["held_back"]},
            "browsers": {"live": sup.get("cluster_live", sup["live"]), "by_state": by_state},
            "children": children + _remote_children(sup, by_state),
            **({"nodes": sup["nodes"]} if "nodes" in sup else {}),
            "queue": {"depth": disp["queue_depth"], "in_flight": len(disp["running"]),
                      "in_flight_jobs": running_ids},
            "sessions": disp["sessions"],
            "totals": disp["totals"],
            "errors": disp["errors"],
            "durations": disp["durations"],
            "watchdog": {"kills": sum(sup["kills"].values()), "kills_by_reason": sup["kills"],
                         "hang_to_dead_ms": sup["hang_to_dead_ms"],
                         # processes of dead browsers that outlived SIGKILL (still being killed)
                         "lingering": sup.get("lingering", [])},
            "exits": sup["exits"],
            "retirements": {k: v for k, v in sup["exits"].items() if ExitReason(k).is_retirement},
            "restarts": sup["restarts"],
            # unsettled: browsers with a job message in transit, not judged by this sample
            "invariants": {"ok": not violations, "violations": violations, "checks": 3, "unsettled": unsettled},
            # frames dropped at any actor port of this instance (wrong key, refused class, ...)
            "transport": transport_refusals.status(),
        }
