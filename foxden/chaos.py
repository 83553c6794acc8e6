"""`foxden chaos`: a private daemon under injected faults, and a verdict on every promise it makes.

    python -m foxden.chaos [--jobs N] [--concurrency C] [--pool-size P] [--seed S]
                           [--duration-s D] [--rates k=v,...] [--json]

A run starts a private daemon (temp state dir, free admin port, short
timeouts, a fast watchdog, a high restart intensity) and a fault site on
127.0.0.1, drives jobs through the public client over several connections so
that C jobs are in flight, and injects faults while they run:

per job (a probability that a job is of that kind):
  hang_promise   eval `new Promise(() => {})`            (watchdog kill)
  hang_loop      eval `while (true) {}`                  (watchdog kill)
  hang_response  /hang: headers, half a body, then nothing
  slow           /slow?ms=... past the attempt's deadline
  abandon        a client submits on its own connection and hangs up before the answer
per second (a rate: expected events per second):
  kill_browser   SIGKILL of a random browser's main process (children[].browser_pids[0])
  kill_actor     SIGKILL of a random browser actor process (children[].pid)
  stop_actor     SIGSTOP of a random browser actor process (left frozen: the daemon must clean up)
  stop_browser   SIGSTOP of a random browser's main process (left frozen, likewise)
  stop_child     SIGSTOP of another process of a random browser (a zygote, renderer, GPU or
                 utility process: children[].browser_pids[1:]), likewise
  bad_frame      a raw connection sending random bytes, a valid header with garbage,
                 a truncated frame, an oversize header or a well-formed frame with bad fields
  burst          3 x max_queue jobs at once on a fresh connection (most get queue_full)

Meanwhile `status` is sampled several times a second (the daemon's own
invariant checks plus this harness's), then the run waits for the den to
settle, checks that no process or temp dir of a dead browser survived,
stops the daemon with SIGTERM and checks again. The summary (JSON on stdout,
readable on stderr) says whether every job sent on a live connection got
exactly one answer, what leaked, and what the faults did.

Exit code: 0 clean; 1 something was lost, answered twice, misrouted or
leaked, an invariant broke, the den did not settle, or the daemon exited
non-zero; 2 bad arguments or the run could not start.
"""
from __future__ import annotations

import argparse
import glob
import itertools
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import psutil

from foxden import procs
from foxden.client import Client, ClientError, job_request
from foxden.harness import DaemonProcess, write_config
from foxden.protocols import wire
from foxden.testsite import Site

PER_JOB = ("hang_promise", "hang_loop", "hang_response", "slow", "abandon")
PER_SECOND = ("kill_browser", "kill_actor", "stop_actor", "stop_browser", "stop_child", "bad_frame", "burst")
KINDS = PER_JOB + PER_SECOND
HANG_KINDS = ("hang_promise", "hang_loop", "hang_response", "slow")

# Moderate rates: a few hundred jobs see every kind several times.
DEFAULT_RATES = {
    "hang_promise": 0.02, "hang_loop": 0.02, "hang_response": 0.02, "slow": 0.02, "abandon": 0.03,
    "kill_browser": 0.08, "kill_actor": 0.05, "stop_actor": 0.04, "stop_browser": 0.03, "stop_child": 0.02,
    "bad_frame": 0.5,
    "burst": 0.03,
}

STUCK_S = 45.0  # settling gives up early when the den shows no change at all for this long
BAD_FRAME_VARIANTS = ("random_bytes", "garbage_body", "bad_fields", "truncated", "oversize")
TMP_PATTERNS = ("playwright_chromiumdev_profile-*", "playwright-artifacts-*", "org.chromium.Chromium.*")
BROWSERISH = ("chrom", "node", "firefox")
_OWNER_DIR = re.compile(r"/browsers/(b\d+)/")
_CRASH = re.compile(r"killing browser (b\d+) \(crash\)|browser (?=b\d+ exiting: crash)(b\d+)")
LOG_PROBLEM = re.compile(r" (ERROR|CRITICAL) |Traceback|second answer|survived")


def _say(msg: str) -> None:
    print(f"chaos: {msg}", file=sys.stderr, flush=True)


# --- options -------------------------------------------------------------------

@dataclass
class Options:
    jobs: int | None = 250  # None: as many as fit in duration_s
    concurrency: int = 8
    pool_size: int = 3
    seed: int | None = None
    duration_s: float | None = None  # stop submitting after this long
    rates: dict = field(default_factory=lambda: dict(DEFAULT_RATES))
    connections: int | None = None  # default: min(concurrency, 4)
    engine: str = "chromium"
    timeout_s: float = 3.0
    jitter_s: float = 0.5
    max_queue: int = 20
    burst_factor: int = 3
    heartbeat_timeout_s: float = 2.0
    sample_interval_s: float = 0.2
    queue_timeout_s: float = 30.0  # [jobs] queue_timeout_s: with it, every job has a deadline for its answer
    slack_s: float = 20.0  # added to that deadline (a loaded machine is slow)
    settle_timeout_s: float = 120.0
    min_each: bool = True  # make every kind with a rate > 0 fire at least once
    workdir: str | None = None
    keep: bool = False  # keep the work dir (it is always kept when the run fails)
    quiet: bool = False
    stop_under_load: bool = False  # SIGTERM the daemon halfway, with jobs in flight (tests the drain)
    overrides: dict = field(default_factory=dict)  # {"section": {"key": value}} over the daemon config


def parse_rates(text: str | None, base: dict | None = None) -> dict:
    """`k=v,k=v` over the defaults; `all=X` sets every kind (later keys override)."""
    rates = dict(DEFAULT_RATES if base is None else base)
    if not text:
        return rates
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep:
            raise ValueError(f"--rates: expected kind=value, got {part!r}")
        try:
            v = float(value)
        except ValueError:
            raise ValueError(f"--rates: {key}: not a number: {value!r}") from None
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"--rates: {key}: must be a number >= 0, got {value}")
        if key == "all":
            rates = {k: v for k in KINDS}
        elif key in KINDS:
            rates[key] = v
        else:
            raise ValueError(f"--rates: unknown fault kind {key!r} (known: all, {', '.join(KINDS)})")
    if sum(rates[k] for k in PER_JOB) > 1.0:
        raise ValueError(f"--rates: the per-job probabilities ({', '.join(PER_JOB)}) add up to more than 1")
    return rates


def parse_overrides(items: list[str]) -> dict:
    """["recycle.max_jobs=5", ...] -> {"recycle": {"max_jobs": 5}} (values as JSON when they parse, else strings)."""
    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or not section or not name:
            raise ValueError(f"--set: expected SECTION.KEY=VALUE, got {item!r}")
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = value
        out.setdefault(section, {})[name] = parsed
    return out


def percentiles(values) -> dict:
    vals = sorted(float(v) for v in values)
    if not vals:
        return {"n": 0, "p50": None, "p99": None, "max": None}

    def pick(q):
        return round(vals[min(len(vals) - 1, int(math.ceil(q * len(vals))) - 1)], 1)

    return {"n": len(vals), "p50": pick(0.50), "p99": pick(0.99), "max": round(vals[-1], 1)}


# --- jobs ----------------------------------------------------------------------

@dataclass(frozen=True)
class PlannedJob:
    id: str
    kind: str  # "normal", "burst" or a per-job fault kind
    request: wire.JobRequest
    expect: dict  # what an "ok" answer must show (catches an answer delivered to the wrong job)
    abandon_after_s: float = 0.0


def plan_job(i: int, kind: str, seed, site: Site, timeout_s: float) -> PlannedJob:
    """Job number i: its content depends only on (seed, i, kind), never on timing."""
    rng = random.Random(f"{seed}:job:{i}")
    jid = f"c{i}-{kind}"
    if kind == "hang_promise":
        return PlannedJob(jid, kind, job_request(site.url(f"/page/{i}"), id=jid, eval="new Promise(() => {})"), {})
    if kind == "hang_loop":
        return PlannedJob(jid, kind, job_request(site.url(f"/page/{i}"), id=jid, eval="while (true) {}"), {})
    if kind == "hang_response":
        return PlannedJob(jid, kind, job_request(site.url(f"/hang?n={i}"), id=jid), {})
    if kind == "slow":
        ms = int(timeout_s * 1000 + 1000 + rng.randrange(2000))
        return PlannedJob(jid, kind, job_request(site.url(f"/slow?ms={ms}&n={i}"), id=jid), {})
    if kind == "abandon":
        ms = rng.randrange(200, 1500)
        return PlannedJob(jid, kind, job_request(site.url(f"/slow?ms={ms}&n={i}"), id=jid), {},
                          abandon_after_s=rng.uniform(0.0, 0.8))
    r = rng.random()
    if r < 0.45:
        ev = "document.querySelectorAll('li').length" if rng.random() < 0.5 else None
        return PlannedJob(jid, kind, job_request(site.url(f"/page/{i}"), id=jid, eval=ev),
                          {"title": f"Page {i}", **({"eval": 20} if ev else {})})
    if r < 0.60:
        return PlannedJob(jid, kind, job_request(site.url(f"/delayed-element?ms={rng.randrange(20, 300)}&n={i}"),
                                                 id=jid, wait_for="#late"), {"title": "delayed"})
    if r < 0.70:
        return PlannedJob(jid, kind, job_request(site.url(f"/status/404?n={i}"), id=jid),
                          {"title": "status 404", "http_status": 404})
    if r < 0.85:
        return PlannedJob(jid, kind, job_request(site.url(f"/page/{i}"), id=jid,
                                                 eval=f"new Promise(r => setTimeout(() => r({i}), 30))"),
                          {"title": f"Page {i}", "eval": i})
    session = f"s{rng.randrange(4)}"
    return PlannedJob(jid, kind, job_request(site.url(f"/cookie/set?v={i}"), id=jid, session=session,
                                             new_session=rng.random() < 0.3), {"title": f"set {i}"})


def check_answer(job: PlannedJob, answer: wire.Answer) -> str | None:
    """Why this answer cannot be this job's (None: it can)."""
    if answer.id != job.request.id:
        return f"job {job.id} got the answer of {answer.id!r}"
    if answer.status not in ("ok", "failed", "timeout", "rejected"):
        return f"job {job.id}: unknown status {answer.status!r}"
    if answer.status == "ok":
        if job.kind in HANG_KINDS:
            return f"job {job.id} ({job.kind}) cannot succeed, but was answered ok"
        r = answer.result
        if r is None:
            return f"job {job.id}: ok without a result"
        for k, v in job.expect.items():
            got = getattr(r, k, None)
            if got != v:
                return f"job {job.id}: ok answer shows {k}={got!r}, expected {v!r}"
    elif answer.error is None:
        return f"job {job.id}: {answer.status} without an error"
    return None


class _TrackingClient(Client):
    """The public client, counting every Result frame it reads per request id.

    submit_many() forgets a request once its first answer arrives, so a second
    answer would sit unread in the client's inbox; counting at the frame level
    sees it."""

    def __init__(self, *args, **kwargs):
        self.rid_job: dict[int, str] = {}
        self.result_counts: Counter = Counter()
        self.extra: list[tuple[int, str]] = []  # (rid, answer id) of duplicate or unknown answers
        super().__init__(*args, **kwargs)

    def _send(self, msg) -> None:
        if isinstance(msg, wire.Submit):
            self.rid_job[msg.rid] = msg.job.id
        super()._send(msg)

    def _next_frame(self):
        msg = super()._next_frame()
        if isinstance(msg, wire.Result):
            self.result_counts[msg.rid] += 1
            if self.result_counts[msg.rid] > 1 or msg.rid not in self.rid_job:
                self.extra.append((msg.rid, getattr(msg.answer, "id", None)))
        return msg


# --- the run -------------------------------------------------------------------

class Chaos:
    def __init__(self, opts: Options):
        self.o = opts
        if opts.seed is None:
            opts.seed = random.SystemRandom().randrange(1, 1 << 31)
        self.seed = opts.seed
        self.lock = threading.Lock()
        self.t0 = 0.0
        # jobs
        self.plan_index = itertools.count()
        self.plan_kinds: Counter = Counter()
        self.planned = 0
        self.submitting_done = threading.Event()
        self.sent: dict[str, PlannedJob] = {}
        self.answers: dict[str, wire.Answer] = {}
        self.answer_counts: Counter = Counter()
        self.lost: dict[str, str] = {}
        self.misrouted: list[str] = []
        self.abandoned: list[str] = []
        self.abandoned_early = 0  # an answer arrived before the client hung up
        self.client_submits = 0  # Submit frames sent, on any connection
        self.clients: list[_TrackingClient] = []
        self.drives: dict[str, tuple] = {}
        self.closed_by_harness: list = []
        self.sent_at: dict[str, float] = {}
        self.overdue: dict[str, float] = {}
        self.late: dict[str, str] = {}
        self.foreign: list[str] = []  # browser processes of someone else seen during the run
        self.user_data_dirs: set[str] = set()  # our browsers' profile dirs
        self.seen_mains: set[int] = set()
        self.seen_procs: dict[int, tuple[float, str]] = {}  # browser pid -> (start time, browser id)
        self.last_scan = 0.0
        self.connection_errors: list[str] = []
        self.bursts = 0
        # faults
        self.faults: Counter = Counter()
        self.fault_rngs = {k: random.Random(f"{self.seed}:fault:{k}") for k in PER_SECOND}
        self.bad_frames: Counter = Counter()
        # pid -> (when, fault kind, create time): pids wrap (pid_max 32768) within a long run,
        # so "still frozen" must mean the same process, not whatever holds the pid now.
        self.stopped_pids: dict[int, tuple[float, str, float | None]] = {}
        self.events = []
        # sampling
        self.latest: dict | None = None
        self.samples = 0
        self.unsettled_browsers = 0  # browser-samples the den left unjudged (see admin.check_invariants)
        self.status_ms: list[float] = []
        self.status_errors: list[str] = []
        self.violations: dict[str, int] = {}
        self.prev_totals: dict | None = None
        self.rss_warm: dict | None = None
        self.threads: list[threading.Thread] = []
        self.stop_threads = threading.Event()
        self.stop_sampler = threading.Event()
        self.daemon_stopped = threading.Event()  # SIGTERM sent under load
        self.workers: list[threading.Thread] = []

    # --- bookkeeping ---

    def _event(self, kind: str, **detail) -> None:
        with self.lock:
            self.events.append({"t": round(time.monotonic() - self.t0, 3), "kind": kind, **detail})

    def _violation(self, text: str) -> None:
        with self.lock:
            self.violations[text] = self.violations.get(text, 0) + 1

    def _progress(self) -> float:
        if self.o.jobs:
            # Derived from the answers (list() copies the keys in one step under the GIL).
            answered = sum(1 for j in list(self.answers) if getattr(self.sent.get(j), "kind", None) != "burst")
            p = answered / self.o.jobs
        else:
            p = 0.0
        if self.o.duration_s:
            p = max(p, (time.monotonic() - self.t0) / self.o.duration_s)
        return p

    def _next_job(self) -> PlannedJob | None:
        with self.lock:
            if self.submitting_done.is_set():
                return None
            if self.o.duration_s and time.monotonic() - self.t0 >= self.o.duration_s:
                self.submitting_done.set()
                return None
            i = next(self.plan_index)
            if self.o.jobs is not None and i >= self.o.jobs:
                self.submitting_done.set()
                return None
            rng = random.Random(f"{self.seed}:kind:{i}")
            u, acc, kind = rng.random(), 0.0, "normal"
            for k in PER_JOB:
                acc += self.o.rates[k]
                if u < acc:
                    kind = k
                    break
            progress = i / self.o.jobs if self.o.jobs else (time.monotonic() - self.t0) / (self.o.duration_s or 1)
            if self.o.min_each and kind == "normal" and progress >= 0.25 and i % 5 == 0:
                missing = [k for k in PER_JOB if self.o.rates[k] > 0 and self.plan_kinds[k] == 0]
                if missing:
                    kind = missing[0]
            self.plan_kinds[kind] += 1
            self.planned += 1
        return plan_job(i, kind, self.seed, self.site, self.o.timeout_s)

    def _record(self, job: PlannedJob, answer: wire.Answer) -> None:
        with self.lock:
            self.answer_counts[job.id] += 1
            if self.answer_counts[job.id] > 1:
                return
            self.answers[job.id] = answer
            self.lost.pop(job.id, None)
            if job.id in self.overdue:
                age = time.monotonic() - self.sent_at[job.id]
                self.late[job.id] = f"{answer.status} {age:.0f}s after submission (bound {self.answer_bound_s():.0f}s)"
        problem = check_answer(job, answer)
        if problem:
            with self.lock:
                self.misrouted.append(problem)

    # --- workers ---

    def _count(self, kind: str, n: int = 1) -> None:
        with self.lock:
            self.faults[kind] += n

    def _feed(self):
        """The shared job stream, as PlannedJobs; abandoned jobs are handed off on the way."""
        while True:
            job = self._next_job()
            if job is None:
                return
            if job.kind == "abandon":
                self._spawn(self._abandon, job, name=f"abandon-{job.id}")
                continue
            with self.lock:
                self.sent[job.id] = job
                self.client_submits += 1
                if job.kind != "normal":
                    self.faults[job.kind] += 1
            yield job

    def answer_bound_s(self) -> float:
        """How long after submission a job must have its answer, by the daemon's own configured limits:
        it waits at most queue_timeout_s for a browser, and each attempt ends within its budget plus the
        watchdog's grace, a tick and the time to confirm the browser dead; plus slack for a loaded box."""
        o = self.o
        attempt = o.timeout_s + o.jitter_s + 0.25 + 2 * 0.25 + 5.0
        return o.queue_timeout_s + 2 * attempt + o.slack_s

    def _drive(self, name: str, source, concurrency: int) -> None:
        """Run the jobs of `source` on connections of our own until it is exhausted.

        A connection that breaks makes its in-flight jobs lost; the rest go on
        on a new connection. A job that has had no answer within
        answer_bound_s() is overdue; once nothing else is pending, the
        harness closes the connections that only wait for overdue jobs,
        and those jobs are lost."""
        reconnects = 0
        while True:
            try:
                client = _TrackingClient.from_config(self.daemon.config, timeout=self.answer_bound_s() + 60)
            except ClientError as exc:
                self.connection_errors.append(f"{name}: {exc}")
                reconnects += 1
                if reconnects > 20 or self.stop_threads.is_set() or self.daemon_stopped.is_set():
                    return
                time.sleep(0.5)
                continue
            inflight: dict[str, PlannedJob] = {}
            pace = {"until": 0.0}
            with self.lock:
                self.clients.append(client)
                self.drives[name] = (client, inflight)
            try:
                for _, req, answer in client.submit_many(self._tracked(source, inflight, pace),
                                                         concurrency=concurrency):
                    job = inflight.pop(req.id, None)
                    if job is not None:
                        self._record(job, answer)
                    if answer.error is not None and answer.error.code == "queue_full":
                        # Do not burn the workload on a full queue: pause this connection a little.
                        pace["until"] = time.monotonic() + 0.5
                return
            except ClientError as exc:
                closed_by_us = client in self.closed_by_harness
                msg = f"{name}: {exc} ({len(inflight)} jobs in flight)"
                if not closed_by_us:
                    self.connection_errors.append(msg)
                self._event("connection_closed_by_harness" if closed_by_us else "connection_error",
                            detail=msg, jobs=sorted(inflight))
                now = time.monotonic()
                with self.lock:
                    for jid in inflight:
                        if jid not in self.answers:
                            age = now - self.sent_at.get(jid, now)
                            self.lost[jid] = (f"no answer {age:.0f}s after submission (bound {self.answer_bound_s():.0f}s)"
                                              if jid in self.overdue else str(exc))
                reconnects += 1
                if reconnects > 20 or self.daemon_stopped.is_set():
                    return
            finally:
                with self.lock:
                    self.drives.pop(name, None)

    def _tracked(self, source, inflight: dict, pace: dict):
        """Requests of `source`'s jobs, noting each as in flight as submit_many takes it."""
        while True:
            wait = pace["until"] - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            job = next(source, None)
            if job is None:
                return
            inflight[job.id] = job
            with self.lock:
                self.sent_at[job.id] = time.monotonic()
            yield job.request

    def _check_overdue(self) -> None:
        bound = self.answer_bound_s()
        now = time.monotonic()
        st = self.latest or {}
        running = {v: k for k, v in (st.get("queue", {}).get("in_flight_jobs") or {}).items()}
        with self.lock:
            fresh = [j for j, t in self.sent_at.items()
                     if now - t > bound and j not in self.answers and j not in self.overdue]
            for j in fresh:
                self.overdue[j] = now - self.sent_at[j]
        for j in fresh:
            self._event("overdue", job=j, age_s=round(now - self.sent_at[j], 1),
                        daemon_says=f"in flight on {running[j]}" if j in running else "not in flight")

    def _close_overdue_connections(self) -> None:
        """Close connections whose in-flight jobs are all overdue (their threads wait for nothing else)."""
        with self.lock:
            drives = list(self.drives.values())
        for client, inflight in drives:
            pending = [j for j in list(inflight) if j not in self.answers]
            if pending and all(j in self.overdue for j in pending) and client not in self.closed_by_harness:
                self.closed_by_harness.append(client)
                try:
                    client._sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _worker(self, w: int, concurrency: int) -> None:
        self._drive(f"w{w}", self._feed(), concurrency)

    def _abandon(self, job: PlannedJob) -> None:
        """Submit on a connection of its own and hang up before the answer."""
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(5)
            s.connect(str(self.daemon.config.daemon.socket))
            s.sendall(wire.encode(wire.Submit(1, job.request)))
        except OSError as exc:
            self.connection_errors.append(f"abandon {job.id}: {exc}")
            return
        with self.lock:
            self.abandoned.append(job.id)
            self.client_submits += 1
            self.faults["abandon"] += 1
        time.sleep(job.abandon_after_s)
        try:
            s.setblocking(False)
            if s.recv(65536):
                with self.lock:
                    self.abandoned_early += 1
        except (BlockingIOError, OSError):
            pass
        s.close()

    def _burst(self, n: int) -> None:
        count = self.o.burst_factor * self.o.max_queue
        jobs = []
        for i in range(count):
            jid = f"burst{n}-{i}"
            jobs.append(PlannedJob(jid, "burst", job_request(self.site.url(f"/page/{i}"), id=jid),
                                   {"title": f"Page {i}"}))
        with self.lock:
            for j in jobs:
                self.sent[j.id] = j
            self.client_submits += len(jobs)
        self._drive(f"burst{n}", iter(jobs), count)

    def _spawn(self, fn, *args, name: str) -> threading.Thread:
        t = threading.Thread(target=fn, args=args, name=name, daemon=True)
        with self.lock:
            self.threads.append(t)
        t.start()
        return t

    # --- status sampling ---

    def _sampler(self) -> None:
        client = None
        while not self.stop_sampler.is_set() and not self.daemon_stopped.is_set():
            try:
                if client is None:
                    client = Client.from_config(self.daemon.config, timeout=30)
                asked = time.monotonic()
                st = client.status()
                self.status_ms.append((time.monotonic() - asked) * 1000.0)
            except ClientError as exc:
                if self.daemon_stopped.is_set():
                    break
                self.status_errors.append(f"t={time.monotonic() - self.t0:.1f}s {exc}")
                if client is not None:
                    client.close()
                client = None
                self.stop_sampler.wait(0.5)
                continue
            self._take_sample(st)
            self._check_overdue()
            if time.monotonic() - self.last_scan > 2.0:
                self.last_scan = time.monotonic()
                self._scan_processes(st)
            if self.rss_warm is None and self._progress() >= 0.15:
                self.rss_warm = self._control_plane_rss(st)
            self.stop_sampler.wait(self.o.sample_interval_s)
        if client is not None:
            client.close()

    def _scan_processes(self, st: dict) -> None:
        """Note our browsers' processes and profile dirs, and whether anyone else runs browsers (then
        new /tmp entries cannot be told apart from ours)."""
        self._remember_browser_processes(st)
        for c in st["children"]:
            if c["browser_pids"] and c["browser_pids"][0] not in self.seen_mains:
                self.seen_mains.add(c["browser_pids"][0])
                try:
                    for arg in psutil.Process(c["browser_pids"][0]).cmdline():
                        if arg.startswith("--user-data-dir="):
                            self.user_data_dirs.add(arg.split("=", 1)[1])
                except psutil.Error:
                    pass
        if len(self.foreign) >= 5:
            return
        prefix = self.daemon.state_prefix
        state = os.path.abspath(str(self.daemon.config.daemon.state_dir)) + os.sep
        for p in psutil.process_iter():
            try:
                if not _browserish(p) or p.pid in self.seen_procs or state in " ".join(p.cmdline()):
                    continue
                marker = p.environ().get(procs.MARKER_ENV, "")
                if not marker.startswith(prefix):
                    self.foreign.append(f"{p.pid} {p.name()} marker={marker[:40] or '-'}")
                    if len(self.foreign) >= 5:
                        return
            except (psutil.Error, OSError):
                continue

    def _take_sample(self, st: dict) -> None:
        with self.lock:
            self.samples += 1
            self.latest = st
            # Browsers the den could not judge in this sample (a job message in transit).
            self.unsettled_browsers += len(st["invariants"].get("unsettled", ()))
        for v in st["invariants"]["violations"]:
            self._violation(v)
        for v in self._own_checks(st):
            self._violation("chaos: " + v)

    def _own_checks(self, st: dict) -> list[str]:
        """Checks of one status document beyond the daemon's own."""
        out = []
        live, target = st["browsers"]["live"], st["pool"]["target"]
        # Browsers on their way out ("stopping") are replaced at once, so only the others are bounded.
        active = live - st["browsers"]["by_state"].get("stopping", 0)
        most = max(target, st["pool"].get("max") or target)
        if active > most:
            out.append(f"{active} live browsers not stopping > pool max {most}")
        if sum(st["browsers"]["by_state"].values()) != live:
            out.append(f"browsers by state {st['browsers']['by_state']} do not add up to live {live}")
        if len(st["children"]) != live:
            out.append(f"{len(st['children'])} children listed but live = {live}")
        pids = [c["pid"] for c in st["children"] if c["pid"]]
        if len(pids) != len(set(pids)):
            out.append(f"two browsers share an actor pid: {pids}")
        seen: dict[int, str] = {}
        for c in st["children"]:
            if c["state"] == "busy" and not c["job"]:
                out.append(f"browser {c['id']} busy without a job")
            if c["state"] == "idle" and c["job"]:
                out.append(f"browser {c['id']} idle with job {c['job']}")
            for p in c["browser_pids"]:
                if p in seen and seen[p] != c["id"]:
                    out.append(f"browser pid {p} listed for {seen[p]} and {c['id']}")
                seen[p] = c["id"]
        if st["queue"]["depth"] > self.o.max_queue + target:
            out.append(f"queue depth {st['queue']['depth']} > max_queue {self.o.max_queue} + {target} retries")
        t = st["totals"]
        if self.prev_totals is not None:
            for k, v in t.items():
                if v < self.prev_totals.get(k, 0):
                    out.append(f"totals.{k} went down: {self.prev_totals[k]} -> {v}")
        self.prev_totals = dict(t)
        return out

    # --- fault injection ---

    def _injector(self) -> None:
        dt = 0.1
        while not self.stop_threads.wait(dt):
            if self.submitting_done.is_set() and not self._any_driver_alive():
                return
            force = self.o.min_each and self._progress() >= 0.3
            for kind in PER_SECOND:
                rate = self.o.rates[kind]
                if rate <= 0:
                    continue
                fire = self.fault_rngs[kind].random() < rate * dt
                if not fire and force and self.faults[kind] == 0:
                    fire = True
                if fire:
                    try:
                        self._inject(kind)
                    except Exception as exc:  # a fault that could not be injected is not a daemon bug
                        self._event("inject_error", fault=kind, detail=f"{type(exc).__name__}: {exc}")

    def _any_driver_alive(self) -> bool:
        return any(t.is_alive() for t in self.workers)

    def _inject(self, kind: str) -> None:
        rng = self.fault_rngs[kind]
        if kind == "bad_frame":
            self._bad_frame(rng.choice(BAD_FRAME_VARIANTS), rng)
            return
        if kind == "burst":
            with self.lock:
                self.bursts += 1
                n = self.bursts
            self._count("burst")
            self._event("burst", n=n, jobs=self.o.burst_factor * self.o.max_queue)
            self._spawn(self._burst, n, name=f"burst{n}")
            return
        st = self.latest
        if st is None:
            return
        instance = f"{self.daemon.state_prefix}{st['instance']}/"
        children = sorted(st["children"], key=lambda c: c["id"])
        if kind == "kill_browser":
            cands = [c for c in children if c["state"] in ("idle", "busy") and c["browser_pids"]]
            if not cands:
                return
            c = rng.choice(cands)
            pid = c["browser_pids"][0]
            if not self._marked(pid, instance, actor=False):
                return
            os.kill(pid, signal.SIGKILL)
        elif kind == "kill_actor":
            cands = [c for c in children if c["pid"] and c["state"] != "stopping" and c["pid"] not in self.stopped_pids]
            if not cands:
                return
            c = rng.choice(cands)
            pid = c["pid"]
            if not self._marked(pid, instance, actor=True):
                return
            os.kill(pid, signal.SIGKILL)
        elif kind == "stop_browser":
            cands = [c for c in children if c["state"] in ("idle", "busy") and c["browser_pids"]
                     and c["browser_pids"][0] not in self.stopped_pids]
            if not cands:
                return
            c = rng.choice(cands)
            pid = c["browser_pids"][0]
            if not self._marked(pid, instance, actor=False):
                return
            os.kill(pid, signal.SIGSTOP)
            with self.lock:
                self.stopped_pids[pid] = (time.monotonic(), kind, procs.create_time(pid))
        elif kind == "stop_child":
            cands = [c for c in children if c["state"] in ("idle", "busy")
                     and [p for p in c["browser_pids"][1:] if p not in self.stopped_pids]]
            if not cands:
                return
            c = rng.choice(cands)
            pid = rng.choice([p for p in c["browser_pids"][1:] if p not in self.stopped_pids])
            try:
                state_dir = os.path.abspath(str(self.daemon.config.daemon.state_dir)) + os.sep
                if state_dir not in " ".join(psutil.Process(pid).cmdline()):
                    return  # Chromium's children carry no readable marker; their command line names the profile
            except psutil.Error:
                return
            os.kill(pid, signal.SIGSTOP)
            with self.lock:
                self.stopped_pids[pid] = (time.monotonic(), kind, procs.create_time(pid))
        elif kind == "stop_actor":
            cands = [c for c in children if c["pid"] and c["state"] in ("idle", "busy")
                     and c["pid"] not in self.stopped_pids]
            if not cands:
                return
            c = rng.choice(cands)
            pid = c["pid"]
            if not self._marked(pid, instance, actor=True):
                return
            os.kill(pid, signal.SIGSTOP)
            with self.lock:
                self.stopped_pids[pid] = (time.monotonic(), kind, procs.create_time(pid))
        else:  # pragma: no cover
            raise ValueError(kind)
        self._count(kind)
        self._event(kind, pid=pid, browser=c["id"], state=c["state"], job=c["job"])

    def _marked(self, pid: int, instance: str, *, actor: bool) -> bool:
        """Only ever signal a process of this daemon instance (a pid from a stale sample may be reused)."""
        try:
            p = psutil.Process(pid)
            marker = p.environ().get(procs.MARKER_ENV, "")
            if not marker.startswith(instance) or not procs.alive(p):
                return False
            if actor:
                sup = (self.latest or {}).get("pids", {}).get("supervisor")
                return marker.endswith("/daemon") and (sup is None or p.ppid() == sup)
            return not marker.endswith("/daemon")
        except (psutil.Error, OSError):
            return False

    def _bad_frame(self, variant: str, rng: random.Random) -> None:
        """One malformed input on a raw connection; a recoverable one must not break the connection."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(3)
        try:
            s.connect(str(self.daemon.config.daemon.socket))
        except OSError as exc:
            self.connection_errors.append(f"bad_frame connect: {exc}")
            s.close()
            return
        expect = None  # the error code a well-framed bad input must get back
        try:
            if variant == "random_bytes":
                s.sendall(rng.randbytes(rng.randrange(1, 64)))
            elif variant == "garbage_body":
                n = rng.randrange(1, 200)
                body = bytes([0xC1]) + rng.randbytes(n - 1)  # 0xc1 is never valid msgpack
                s.sendall(struct.pack(">I", n) + body)
                expect = "bad_frame"
            elif variant == "bad_fields":
                import msgpack

                body = msgpack.packb({"v": 1, "type": "submit", "rid": 7, "job": {"url": rng.randrange(100)}})
                s.sendall(struct.pack(">I", len(body)) + body)
                expect = "bad_field"
            elif variant == "truncated":
                frame = wire.encode(wire.Submit(9, job_request(self.site.url("/page/1"), id="truncated")))
                s.sendall(frame[: rng.randrange(1, len(frame))])
            elif variant == "oversize":
                s.sendall(struct.pack(">I", rng.randrange(wire.MAX_FRAME + 1, 1 << 32)))
                expect = "frame_too_large"
            if expect is not None:
                reply = _read_one(s)
                code = getattr(reply, "code", None)
                if code != expect:
                    self._violation(f"chaos: gateway answered a {variant} frame with {reply!r}, expected {expect}")
                elif variant != "oversize":
                    # A recoverable error: the same connection must still be served.
                    s.sendall(wire.encode(wire.Ping(42)))
                    pong = _read_one(s)
                    if not isinstance(pong, wire.Pong):
                        self._violation(f"chaos: after a {variant} frame the connection got {pong!r} for a ping")
        except OSError as exc:
            if expect is not None:
                self._violation(f"chaos: gateway connection failed after a {variant} frame: {exc}")
        finally:
            s.close()
        with self.lock:
            self.bad_frames[variant] += 1
        self._count("bad_frame")
        self._event("bad_frame", variant=variant)

    # --- processes and files ---

    def _control_plane_rss(self, st: dict) -> dict:
        """RSS of the daemon and its Python descendants that are not browser actors: {pid: (role, rss)}."""
        actors = {c["pid"] for c in st["children"] if c["pid"]}
        roles = {v: k for k, v in (st.get("pids") or {}).items()}
        sup = (st.get("pids") or {}).get("supervisor")
        out = {}
        try:
            root = psutil.Process(self.daemon.proc.pid)
            tree = [root] + root.children(recursive=True)
        except psutil.Error:
            return out
        for p in tree:
            try:
                if "python" not in p.name() and "python" not in os.path.basename((p.cmdline() or [""])[0]):
                    continue
                if p.pid in actors or (sup is not None and p.ppid() == sup):
                    continue
                role = "daemon" if p.pid == root.pid else roles.get(p.pid, "other")
                out[p.pid] = (role, p.memory_info().rss)
            except psutil.Error:
                continue
        return out

    def _our_processes(self) -> list[tuple[psutil.Process, str, str]]:
        """Every live process of this state dir: (process, owner, how it was recognised).

        The marker alone does not do: Chromium's child processes (zygotes, GPU, network and storage
        services, renderers) write their process title over their environment, so FOXDEN_OWNER cannot
        be read back from them. Their command line names the profile dir inside the state dir, and
        any browser process seen in a status sample is remembered by (pid, start time)."""
        prefix = self.daemon.state_prefix
        state = os.path.abspath(str(self.daemon.config.daemon.state_dir)) + os.sep
        out = []
        for p in psutil.process_iter():
            if p.pid == os.getpid():
                continue
            try:
                if not procs.alive(p):
                    continue
                try:
                    marker = p.environ().get(procs.MARKER_ENV, "")
                except (psutil.Error, OSError):
                    marker = ""
                cmd = " ".join(p.cmdline())
                started = procs.create_time(p.pid)
            except (psutil.Error, OSError):
                continue
            if marker.startswith(prefix):
                out.append((p, marker.rstrip("/").rpartition("/")[2], "marker"))  # ".../b5/" -> "b5"
            elif state in cmd:
                m = _OWNER_DIR.search(cmd)
                out.append((p, m.group(1) if m else "?", "command line"))
            elif self.seen_procs.get(p.pid, (None,))[0] == started:
                out.append((p, self.seen_procs[p.pid][1], "seen in status"))
        return out

    def _remember_browser_processes(self, st: dict) -> None:
        for c in st["children"]:
            for pid in c["browser_pids"]:
                if pid not in self.seen_procs:
                    created = procs.create_time(pid)
                    if created is not None:
                        self.seen_procs[pid] = (created, c["id"])

    def _strays_before_stop(self, st: dict) -> list[str]:
        """Processes of this instance that belong to no live browser and are not the control plane."""
        live_ids = {c["id"] for c in st["children"]}
        actor_pids = {c["pid"] for c in st["children"] if c["pid"]}
        control = set(self._control_plane_rss(st))
        out = []
        for p, owner, how in self._our_processes():
            if owner == "daemon":
                if p.pid in actor_pids or p.pid in control:
                    continue
            elif owner in live_ids:
                continue
            out.append(f"{_describe(p)} [owner {owner}, found by {how}]")
        return out

    def _dirs_before_stop(self, st: dict) -> list[str]:
        root = procs.browsers_dir(self.daemon.config.daemon.state_dir)
        live_ids = {c["id"] for c in st["children"]}
        try:
            names = os.listdir(root)
        except OSError:
            return []
        return [os.path.join(root, n) for n in sorted(names) if n not in live_ids]

    def _settle(self) -> tuple[dict | None, list[str]]:
        """Wait until nothing is queued or in flight, every job is answered, the pool is full and idle
        and every frozen actor is gone. Returns the last status and what did not settle."""
        deadline = time.monotonic() + self.o.settle_timeout_s
        client = None
        st = None
        last_sig, last_change = None, time.monotonic()
        why: list[str] = []
        while True:
            try:
                if client is None:
                    client = Client.from_config(self.daemon.config, timeout=30)
                st = client.status()
            except ClientError as exc:
                why = [f"status failed: {exc}"]
                client = None
            if st is not None:
                self._take_sample(st)
                t = st["totals"]
                unanswered = t["submitted"] - (t["ok"] + t["failed"] + t["timeout"] + t["rejected"])
                # The daemon notices a frozen actor or main browser process and kills it; a frozen
                # child process of a browser is not waited for (the stray check below judges it).
                frozen = [p for p, (_, kind, created) in self.stopped_pids.items()
                          if kind != "stop_child" and procs.pid_alive(p, created)]
                why = []
                if st["queue"]["depth"] or st["queue"]["in_flight"]:
                    why.append(f"queue depth {st['queue']['depth']}, in flight {st['queue']['in_flight']}")
                if unanswered:
                    why.append(f"{unanswered} accepted jobs unanswered")
                if st["pool"]["state"] != "failed" and st["browsers"]["by_state"]["idle"] != st["pool"]["target"]:
                    why.append(f"pool {st['browsers']['by_state']} not back to {st['pool']['target']} idle")
                if frozen:
                    why.append(f"SIGSTOPped process(es) {frozen} still alive")
                if not why:
                    break
                sig = (tuple(sorted(t.items())), st["queue"]["depth"], st["queue"]["in_flight"],
                       tuple((c["id"], c["state"]) for c in st["children"]))
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

    # --- main ---

    def run(self) -> dict:
        o = self.o
        self.workdir = o.workdir or tempfile.mkdtemp(prefix="fxc", dir="/tmp")
        os.makedirs(self.workdir, exist_ok=True)
        state_dir = os.path.join(self.workdir, "state")
        tmp_before = _tmp_entries()
        summary: dict = {"seed": self.seed, "workdir": self.workdir}
        started = time.monotonic()
        with Site() as site:
            self.site = site
            sections = {
                "daemon": {"state_dir": state_dir, "admin_port": 0, "grace_s": 5.0},
                "pool": {"engine": o.engine, "size": o.pool_size, "launch_timeout_s": 60.0},
                "jobs": {"timeout_s": o.timeout_s, "jitter_s": o.jitter_s, "max_queue": o.max_queue, "retries": 1,
                         "queue_timeout_s": o.queue_timeout_s},
                "watchdog": {"interval_s": 0.25, "heartbeat_timeout_s": o.heartbeat_timeout_s, "kill_grace_s": 0.25,
                             "close_timeout_s": 3.0},
                "restart": {"intensity": 1000, "period_s": 60.0, "backoff_base_s": 0.05, "backoff_max_s": 0.5},
            }
            for section, keys in o.overrides.items():
                sections.setdefault(section, {}).update(keys)
            cfg = write_config(os.path.join(self.workdir, "foxden.toml"), sections)
            self.daemon = DaemonProcess(cfg, log_path=os.path.join(self.workdir, "daemon.log"))
            summary["daemon_log"] = self.daemon.log_path
            if not o.quiet:
                _say(f"seed {self.seed}; starting a private daemon ({self.workdir}) and a site on {site.base}")
            try:
                self.daemon.start()
            except Exception:
                self.daemon.stop()
                self.daemon.kill_leftovers()
                raise
            try:
                self._drive_all()
                if self.daemon_stopped.is_set():
                    final, unsettled = self.latest, []
                    leaked_procs_run, leaked_dirs_run = [], []
                else:
                    final, unsettled = self._settle()
                    leaked_procs_run = self._strays_before_stop(final) if final else []
                    leaked_dirs_run = self._dirs_before_stop(final) if final else []
                if leaked_procs_run or leaked_dirs_run:
                    time.sleep(1.0)  # a leak must persist: look again
                    try:
                        again = self.daemon.status()
                    except ClientError:
                        again = final
                    procs_again = set(self._strays_before_stop(again))
                    leaked_procs_run = [p for p in leaked_procs_run if p in procs_again]
                    leaked_dirs_run = [d for d in self._dirs_before_stop(again) if d in leaked_dirs_run]
                dir_evidence = {d: _dir_evidence(d) for d in leaked_dirs_run}
                self._final_duplicate_check()
                rss_end = self._control_plane_rss(final) if final else {}
            finally:
                self.stop_threads.set()
                self.stop_sampler.set()
                for t in list(self.threads):
                    t.join(5)
                if not o.quiet:
                    _say("stopping the daemon (SIGTERM)")
                rc = self.daemon.stop()
            found = {p.pid: (p, f"{_describe(p)} [owner {owner}, found by {how}]")
                     for p, owner, how in self._our_processes()}
            for p in procs.descendants(os.getpid()):
                if _browserish(p) and p.pid not in found:
                    found[p.pid] = (p, f"{_describe(p)} [a descendant of the chaos process]")
            leaked_procs = [desc for _, desc in found.values()]
            if found:
                left = [p for p, _ in found.values()]
                for p in left:  # frozen ones too
                    try:
                        p.send_signal(signal.SIGCONT)
                    except psutil.Error:
                        pass
                procs.kill_and_wait(left)
        leaked_dirs = [f"(before stop) {d}" for d in leaked_dirs_run]
        browsers_dir = procs.browsers_dir(state_dir)
        if os.path.isdir(browsers_dir):
            leaked_dirs += [os.path.join(browsers_dir, n) for n in sorted(os.listdir(browsers_dir))]
        new_tmp = sorted(_tmp_entries() - tmp_before)
        ours = [t for t in new_tmp if t in self.user_data_dirs]
        if self.foreign:
            # Someone else ran browsers meanwhile: only what we know is ours counts.
            leaked_dirs += ours
            summary["tmp_entries_unattributed"] = [t for t in new_tmp if t not in ours]
            summary["foreign_browser_processes"] = self.foreign
        else:
            leaked_dirs += new_tmp
        summary["leaked_dir_details"] = dir_evidence
        summary.update(self._summary(final, unsettled, rc, leaked_procs_run, leaked_procs, leaked_dirs, rss_end))
        summary["stopped_under_load"] = self.daemon_stopped.is_set()
        summary["duration_s"] = round(time.monotonic() - started, 1)
        self._write_events()
        try:
            with open(os.path.join(self.workdir, "summary.json"), "w") as f:
                json.dump(summary, f, indent=2, default=str)
        except OSError:
            pass
        return summary

    def _drive_all(self) -> None:
        o = self.o
        self.t0 = time.monotonic()
        sampler = self._spawn(self._sampler, name="sampler")
        k = max(1, min(o.concurrency, o.connections or 4))
        shares = [o.concurrency // k + (1 if i < o.concurrency % k else 0) for i in range(k)]
        self.workers = [threading.Thread(target=self._worker, args=(i, c), name=f"w{i}", daemon=True)
                        for i, c in enumerate(shares)]
        for t in self.workers:
            t.start()
        injector = self._spawn(self._injector, name="injector")
        last = 0.0
        while True:
            drivers = [t for t in self.workers + list(self.threads) if t.is_alive()
                       and (t in self.workers or t.name.startswith(("burst", "abandon")))]
            if not drivers:
                break
            time.sleep(0.2)
            if o.stop_under_load and not self.daemon_stopped.is_set() and self._progress() >= 0.5:
                # Stop feeding, let the jobs just sent reach the gateway, then SIGTERM: every job in
                # flight must still get its one answer (a result, or shutting_down) before the
                # connection closes.
                with self.lock:
                    self.submitting_done.set()
                time.sleep(0.5)
                self._event("sigterm_under_load", in_flight=sum(1 for j in self.sent_at if j not in self.answers))
                self.daemon_stopped.set()
                self.daemon.proc.send_signal(signal.SIGTERM)
            if self.submitting_done.is_set():
                with self.lock:
                    pending = [j for j in self.sent_at if j not in self.answers and j not in self.overdue]
                if not pending:
                    self._close_overdue_connections()
            if not o.quiet and time.monotonic() - last > 10:
                last = time.monotonic()
                _say(f"{time.monotonic() - self.t0:5.0f}s: {len(self.answers)} answered of {len(self.sent)} sent; "
                     f"faults {dict(self.faults)}" + (f"; {len(self.overdue)} overdue" if self.overdue else ""))
        injector.join(10)
        # From here on _settle() samples; one sampler at a time keeps the samples in order.
        self.stop_sampler.set()
        sampler.join(40)

    def _final_duplicate_check(self) -> None:
        """A ping on every connection reads whatever it still has queued: a late second answer shows up."""
        for c in list(self.clients):
            try:
                c.ping()
            except ClientError:
                pass
            finally:
                c.close()

    def _summary(self, final, unsettled, rc, leaked_procs_run, leaked_procs, leaked_dirs, rss_end) -> dict:
        o = self.o
        answered = [a for a in self.answers.values()]
        twice = sorted(j for j, n in self.answer_counts.items() if n > 1)
        extra = [f"rid {rid} ({aid})" for c in self.clients for rid, aid in c.extra]
        lost = dict(self.lost)
        for jid in self.sent:
            if jid not in self.answers and jid not in lost:
                lost[jid] = "never answered"
        problems = [f"did not settle (limit {o.settle_timeout_s:.0f}s): {w}" for w in unsettled]
        if final is not None and not unsettled and not self.daemon_stopped.is_set():
            submitted = final["totals"]["submitted"]
            if submitted != self.client_submits:
                problems.append(f"the daemon counted {submitted} submitted jobs; the clients sent {self.client_submits}")
        for p in problems:
            self._violation("chaos: " + p)
        if self.rss_warm is None:
            self.rss_warm = {}
        common = set(self.rss_warm) & set(rss_end)
        growth = sum(rss_end[p][1] - self.rss_warm[p][1] for p in common) if common else None
        kills = (final or {}).get("watchdog", {}).get("kills_by_reason", {})
        out = {
            "jobs": len(self.sent),
            "workload_jobs": sum(1 for j in self.sent.values() if j.kind != "burst"),
            "burst_jobs": sum(1 for j in self.sent.values() if j.kind == "burst"),
            "answered": len(answered),
            "answered_twice": len(twice) + len(extra),
            "answered_twice_jobs": (twice + extra)[:50],
            "lost": len(lost),
            "lost_jobs": dict(sorted(lost.items())[:50]),
            "late_answers": len(self.late),
            "late_answer_jobs": dict(sorted(self.late.items())[:50]),
            "answer_bound_s": round(self.answer_bound_s(), 1),
            "misrouted": len(self.misrouted),
            "misrouted_detail": self.misrouted[:50],
            "abandoned": len(self.abandoned),
            "abandoned_answered_before_hangup": self.abandoned_early,
            "by_status": dict(Counter(a.status for a in answered)),
            "by_error_code": dict(Counter(a.error.code for a in answered if a.error)),
            "by_kind": {k: dict(Counter(self.answers[j].status + (f"/{self.answers[j].error.code}"
                                                                 if self.answers[j].error else "")
                                        for j, job in self.sent.items() if job.kind == k and j in self.answers))
                        for k in sorted({j.kind for j in self.sent.values()})},
            "faults_injected": {k: self.faults.get(k, 0) for k in KINDS},
            "bad_frames": dict(self.bad_frames),
            "watchdog_kills": kills,
            "exits": (final or {}).get("exits", {}),
            "restarts": (final or {}).get("restarts"),
            "retried": (final or {}).get("totals", {}).get("retried"),
            "daemon_totals": (final or {}).get("totals"),
            "hang_to_dead_ms": percentiles((final or {}).get("watchdog", {}).get("hang_to_dead_ms", [])),
            "answer_elapsed_ms": percentiles(a.elapsed_ms for a in answered if a.status != "rejected"),
            "status_latency_ms": percentiles(self.status_ms),
            "invariant_samples": self.samples,
            "invariant_unsettled_browsers": self.unsettled_browsers,
            "invariant_violations": sorted(self.violations),
            "status_errors": self.status_errors[:20],
            "connection_errors": self.connection_errors[:20],
            "leaked_processes": leaked_procs + [f"(before stop) {p}" for p in leaked_procs_run],
            "leaked_dirs": leaked_dirs,
            "control_plane_rss_growth_bytes": growth,
            "control_plane_rss": {str(p): {"role": rss_end[p][0], "warm": self.rss_warm[p][1], "end": rss_end[p][1]}
                                  for p in sorted(common)},
            "daemon_exit_code": rc,
            "daemon_log_problems": _log_problems(self.daemon.log_path),
            "unexplained_crashes": self._unexplained_crashes(),
            "config": {"jobs": o.jobs, "concurrency": o.concurrency, "pool_size": o.pool_size,
                       "duration_s": o.duration_s, "timeout_s": o.timeout_s, "jitter_s": o.jitter_s,
                       "max_queue": o.max_queue, "engine": o.engine, "rates": o.rates, "overrides": o.overrides},
        }
        out["ok"] = bool(out["lost"] == 0 and out["answered_twice"] == 0 and out["misrouted"] == 0
                         and out["late_answers"] == 0 and not out["unexplained_crashes"]
                         and not out["leaked_processes"] and not out["leaked_dirs"]
                         and not out["invariant_violations"] and rc == 0)
        return out

    def _unexplained_crashes(self) -> list[str]:
        """Browsers the daemon saw crash although we neither killed their browser nor their actor.

        Nothing else here makes a browser crash, so each one is collateral damage of the daemon's."""
        explained = {e.get("browser") for e in self.events if e["kind"] in ("kill_browser", "kill_actor")}
        out = []
        try:
            with open(self.daemon.log_path, errors="replace") as f:
                for line in f:
                    m = _CRASH.search(line)
                    if m and (m.group(1) or m.group(2)) not in explained:
                        out.append(line.rstrip()[:300])
        except OSError:
            pass
        return out[:20]

    def _write_events(self) -> None:
        try:
            with open(os.path.join(self.workdir, "events.jsonl"), "w") as f:
                for e in self.events:
                    f.write(json.dumps(e) + "\n")
        except OSError:
            pass


def _read_one(s: socket.socket):
    dec = wire.FrameDecoder(wire.MAX_REPLY_FRAME)
    while True:
        data = s.recv(65536)
        if not data:
            return None
        items = dec.feed(data)
        if items:
            return items[0]


def _dir_evidence(path: str, limit: int = 30) -> dict:
    """What is in a leaked dir, its age, and which processes hold something in it."""
    files = []
    newest = 0.0
    for root, dirs, names in os.walk(path):
        for n in dirs + names:
            full = os.path.join(root, n)
            try:
                newest = max(newest, os.lstat(full).st_mtime)
            except OSError:
                pass
            if len(files) < limit:
                files.append(os.path.relpath(full, path))
    holders = []
    for p in psutil.process_iter():
        try:
            cwd = p.cwd()
            opened = [f.path for f in p.open_files()]
        except (psutil.Error, OSError):
            continue
        if cwd.startswith(path) or any(f.startswith(path) for f in opened):
            holders.append(_describe(p))
    try:
        created = os.stat(path).st_ctime
    except OSError:
        created = None
    return {"entries": files, "ctime": created, "newest_mtime": newest or None, "holders": holders[:10]}


def _tmp_entries() -> set[str]:
    out = set()
    for pat in TMP_PATTERNS:
        out.update(glob.glob(os.path.join(tempfile.gettempdir(), pat)))
    return out


def _browserish(p: psutil.Process) -> bool:
    try:
        name = p.name()
        exe = os.path.basename((p.cmdline() or [""])[0])
    except psutil.Error:
        return False
    return any(k in name or k in exe for k in BROWSERISH)


def _describe(p: psutil.Process) -> str:
    try:
        return f"{p.pid} {p.name()} {' '.join(p.cmdline())[:100]}"
    except psutil.Error:
        return str(p.pid)


def _log_problems(path: str, limit: int = 40) -> dict:
    lines = []
    n = 0
    try:
        with open(path, errors="replace") as f:
            for line in f:
                if LOG_PROBLEM.search(line):
                    n += 1
                    if len(lines) < limit:
                        lines.append(line.rstrip()[:400])
    except OSError:
        pass
    return {"count": n, "lines": lines}


# --- output --------------------------------------------------------------------

def render(s: dict) -> str:
    def kv(d):
        return ", ".join(f"{k} {v}" for k, v in sorted((d or {}).items())) or "none"

    h = s.get("hang_to_dead_ms") or {}
    lines = [
        "", "foxden chaos report", "===================",
        f"seed {s['seed']}, {s['duration_s']}s, work dir {s['workdir']}",
        f"jobs: {s['jobs']} sent on live connections ({s['burst_jobs']} in bursts), answered {s['answered']}, "
        f"lost {s['lost']}, answered twice {s['answered_twice']}, misrouted {s['misrouted']}, "
        f"late {s['late_answers']} (bound {s['answer_bound_s']}s), abandoned {s['abandoned']}",
        "by status: " + kv(s["by_status"]),
        "error codes: " + kv(s["by_error_code"]),
        "faults injected: " + kv(s["faults_injected"]),
        "watchdog kills: " + kv(s["watchdog_kills"]) + f"; restarts {s['restarts']}; retried {s['retried']}",
        f"hang-to-dead ms: p50 {h.get('p50')}, p99 {h.get('p99')}, max {h.get('max')} (n={h.get('n')})",
        f"invariants: {s['invariant_samples']} samples, {len(s['invariant_violations'])} distinct violations",
        f"leaks: {len(s['leaked_processes'])} processes, {len(s['leaked_dirs'])} dirs",
        f"control-plane RSS growth: {s['control_plane_rss_growth_bytes']} bytes",
        f"daemon exit code: {s['daemon_exit_code']}; daemon log: {s['daemon_log_problems']['count']} error lines",
    ]
    for title, items in (("lost", list(s["lost_jobs"].items())), ("answered twice", s["answered_twice_jobs"]),
                         ("late", list(s["late_answer_jobs"].items())),
                         ("misrouted", s["misrouted_detail"]), ("violation", s["invariant_violations"]),
                         ("leaked process", s["leaked_processes"]), ("leaked dir", s["leaked_dirs"]),
                         ("daemon log", s["daemon_log_problems"]["lines"][:10])):
        for item in items[:10]:
            lines.append(f"  {title}: {item}")
    lines.append(f"result: {'OK' if s['ok'] else 'FAILED'}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="foxden chaos", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="fault kinds (--rates): " + ", ".join(f"{k}={v}" for k, v in DEFAULT_RATES.items()))
    p.add_argument("--jobs", type=int, default=None, help="jobs to run (default 250; with --duration-s: no limit)")
    p.add_argument("--concurrency", type=int, default=8, help="jobs in flight at once (default 8)")
    p.add_argument("--pool-size", type=int, default=3, help="browsers (default 3)")
    p.add_argument("--seed", type=int, default=None, help="seed of every random choice (default: random, printed)")
    p.add_argument("--duration-s", type=float, default=None, help="stop submitting after this many seconds")
    p.add_argument("--rates", default=None, help="fault rates, kind=value,...; all=X sets every kind")
    p.add_argument("--connections", type=int, default=None, help="client connections (default min(concurrency, 4))")
    p.add_argument("--engine", default="chromium", help="pool engine (default chromium)")
    p.add_argument("--timeout-s", type=float, default=3.0, help="[jobs] timeout_s of the private daemon")
    p.add_argument("--max-queue", type=int, default=20, help="[jobs] max_queue (bursts are 3x this)")
    p.add_argument("--workdir", default=None, help="work dir (default: a new one under /tmp)")
    p.add_argument("--keep", action="store_true", help="keep the work dir (always kept when the run fails)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a key of the private daemon's config, e.g. --set recycle.max_jobs=5 (repeatable)")
    p.add_argument("--stop-under-load", action="store_true",
                   help="SIGTERM the daemon halfway through, with jobs in flight; each must still be answered")
    p.add_argument("--json", action="store_true", help="print the JSON summary on one line (default: indented)")
    return p


def options_from_args(args) -> Options:
    if args.concurrency < 1 or args.pool_size < 1 or (args.jobs is not None and args.jobs < 0):
        raise ValueError("--concurrency and --pool-size must be >= 1, --jobs >= 0")
    if args.duration_s is not None and args.duration_s <= 0:
        raise ValueError("--duration-s must be > 0")
    jobs = args.jobs if args.jobs is not None else (None if args.duration_s else 250)
    return Options(jobs=jobs, concurrency=args.concurrency, pool_size=args.pool_size, seed=args.seed,
                   duration_s=args.duration_s, rates=parse_rates(args.rates), connections=args.connections,
                   engine=args.engine, timeout_s=args.timeout_s, max_queue=args.max_queue, workdir=args.workdir,
                   keep=args.keep, stop_under_load=args.stop_under_load, overrides=parse_overrides(args.set))


def run_chaos(opts: Options) -> dict:
    """One chaos run; returns the summary (summary["ok"] is the verdict). Removes the work dir
    unless the run failed or opts.keep."""
    chaos = Chaos(opts)
    summary = None
    try:
        summary = chaos.run()
        return summary
    finally:
        workdir = getattr(chaos, "workdir", None)
        if workdir and not opts.workdir and not opts.keep and summary is not None and summary["ok"]:
            shutil.rmtree(workdir, ignore_errors=True)


class _Interrupted(KeyboardInterrupt):
    """A signal that ends the run early (SIGTERM), raised like Ctrl-C's KeyboardInterrupt."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        opts = options_from_args(args)
    except ValueError as exc:
        print(f"foxden chaos: {exc}", file=sys.stderr)
        return 2
    def terminated(signum, frame):
        # SIGTERM (a CI timeout, kill) ends the run like Ctrl-C does: an
        # exception, so run_chaos's finally blocks stop the daemon.
        raise _Interrupted(signum)

    signal.signal(signal.SIGTERM, terminated)
    try:
        summary = run_chaos(opts)
    except KeyboardInterrupt as exc:
        # run_chaos's finally blocks have stopped the daemon (SIGTERM: it sweeps its own processes).
        signum = getattr(exc, "signum", signal.SIGINT)
        _say(f"{signal.Signals(signum).name}: the run was interrupted and its daemon stopped; no summary")
        return 128 + signum
    except Exception as exc:
        _say(f"the run failed: {type(exc).__name__}: {exc}")
        return 2
    print(render(summary), file=sys.stderr)
    print(json.dumps(summary) if args.json else json.dumps(summary, indent=2))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
