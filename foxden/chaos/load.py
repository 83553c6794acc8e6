"""The load generator: the job stream over several connections, abandoned jobs and bursts."""
from __future__ import annotations

import itertools
import random
import socket
import threading
import time
from collections import Counter

from foxden.chaos.context import Context
from foxden.chaos.faults import PER_JOB
from foxden.chaos.jobs import PlannedJob, plan_job
from foxden.chaos.ledger import Ledger, TrackingClient
from foxden.client import ClientError, job_request
from foxden.protocols import wire

__all__ = ["Load", "pick_kind"]


def pick_kind(seed, i: int, rates: dict, planned: Counter, force_missing: bool) -> str:
    """Job i's kind: "normal" or a per-job fault, by the rates; with force_missing, every fifth
    normal job becomes a kind with a rate > 0 that has not been planned yet."""
    rng = random.Random(f"{seed}:kind:{i}")
    u, acc, kind = rng.random(), 0.0, "normal"
    for k in PER_JOB:
        acc += rates[k]
        if u < acc:
            kind = k
            break
    if force_missing and kind == "normal" and i % 5 == 0:
        missing = [k for k in PER_JOB if rates[k] > 0 and planned[k] == 0]
        if missing:
            kind = missing[0]
    return kind


class Load:
    """Drives the workload through the public client, C jobs in flight over a few connections."""

    def __init__(self, ctx: Context, ledger: Ledger):
        self.ctx = ctx
        self.ledger = ledger
        self.plan_index = itertools.count()
        self.plan_kinds: Counter = Counter()
        self.planned = 0
        self.bursts = 0
        self.drives: dict[str, tuple] = {}
        self.closed_by_harness: list = []

    def start_workers(self) -> None:
        o = self.ctx.o
        k = max(1, min(o.concurrency, o.connections or 4))
        shares = [o.concurrency // k + (1 if i < o.concurrency % k else 0) for i in range(k)]
        self.ctx.workers = [threading.Thread(target=self._drive, args=(f"w{i}", self._feed(), c), name=f"w{i}",
                                             daemon=True) for i, c in enumerate(shares)]
        for t in self.ctx.workers:
            t.start()

    def _next_job(self) -> PlannedJob | None:
        ctx, o = self.ctx, self.ctx.o
        with ctx.lock:
            if ctx.submitting_done.is_set():
                return None
            if o.duration_s and time.monotonic() - ctx.t0 >= o.duration_s:
                ctx.submitting_done.set()
                return None
            i = next(self.plan_index)
            if o.jobs is not None and i >= o.jobs:
                ctx.submitting_done.set()
                return None
            progress = i / o.jobs if o.jobs else (time.monotonic() - ctx.t0) / (o.duration_s or 1)
            kind = pick_kind(ctx.seed, i, o.rates, self.plan_kinds, o.min_each and progress >= 0.25)
            self.plan_kinds[kind] += 1
            self.planned += 1
        return plan_job(i, kind, ctx.seed, ctx.site, o.timeout_s)

    def _feed(self):
        """The shared job stream, as PlannedJobs; abandoned jobs are handed off on the way."""
        while True:
            job = self._next_job()
            if job is None:
                return
            if job.kind == "abandon":
                self.ctx.spawn(self._abandon, job, name=f"abandon-{job.id}")
                continue
            with self.ctx.lock:
                self.ledger.sent[job.id] = job
                self.ledger.client_submits += 1
                if job.kind != "normal":
                    self.ctx.faults[job.kind] += 1
            yield job

    def _drive(self, name: str, source, concurrency: int) -> None:
        """Run the jobs of `source` on connections of our own until it is exhausted.

        A connection that breaks makes its in-flight jobs lost; the rest go on
        on a new connection (20 reconnections at most). A job that has had no
        answer within the ledger's bound is overdue; once nothing else is
        pending, the harness closes the connections that only wait for overdue
        jobs, and those jobs are lost."""
        ctx = self.ctx
        reconnects = 0
        while True:
            try:
                client = TrackingClient.from_config(ctx.daemon.config, timeout=self.ledger.bound_s() + 60)
            except ClientError as exc:
                ctx.connection_errors.append(f"{name}: {exc}")
                reconnects += 1
                if reconnects > 20 or ctx.stop_threads.is_set() or ctx.daemon_stopped.is_set():
                    return
                time.sleep(0.5)
                continue
            if self._on_connection(name, client, source, concurrency):
                return
            reconnects += 1
            if reconnects > 20 or ctx.daemon_stopped.is_set():
                return

    def _on_connection(self, name: str, client: TrackingClient, source, concurrency: int) -> bool:
        """Submit `source`'s jobs on one connection; True once source is exhausted, False if it broke."""
        inflight: dict[str, PlannedJob] = {}
        pace = {"until": 0.0}
        with self.ctx.lock:
            self.ledger.clients.append(client)
            self.drives[name] = (client, inflight)
        try:
            for _, req, answer in client.submit_many(self._tracked(source, inflight, pace), concurrency=concurrency):
                job = inflight.pop(req.id, None)
                if job is not None:
                    self.ledger.record(job, answer)
                if answer.error is not None and answer.error.code == "queue_full":
                    # Do not burn the workload on a full queue: pause this connection a little.
                    pace["until"] = time.monotonic() + 0.5
            return True
        except ClientError as exc:
            self._broke(name, client, inflight, exc)
            return False
        finally:
            with self.ctx.lock:
                self.drives.pop(name, None)

    def _broke(self, name: str, client, inflight: dict, exc: ClientError) -> None:
        closed_by_us = client in self.closed_by_harness
        msg = f"{name}: {exc} ({len(inflight)} jobs in flight)"
        if not closed_by_us:
            self.ctx.connection_errors.append(msg)
        self.ctx.event("connection_closed_by_harness" if closed_by_us else "connection_error",
                       detail=msg, jobs=sorted(inflight))
        self.ledger.lose(inflight, str(exc))

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
            with self.ctx.lock:
                self.ledger.sent_at[job.id] = time.monotonic()
            yield job.request

    def close_overdue_connections(self) -> None:
        """Close connections whose in-flight jobs are all overdue (their threads wait for nothing else)."""
        with self.ctx.lock:
            drives = list(self.drives.values())
        for client, inflight in drives:
            pending = [j for j in list(inflight) if j not in self.ledger.answers]
            if pending and all(j in self.ledger.overdue for j in pending) and client not in self.closed_by_harness:
                self.closed_by_harness.append(client)
                try:
                    client._sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _abandon(self, job: PlannedJob) -> None:
        """Submit on a connection of its own and hang up before the answer."""
        ctx = self.ctx
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(5)
            s.connect(str(ctx.daemon.config.daemon.socket))
            s.sendall(wire.encode(wire.Submit(1, job.request)))
        except OSError as exc:
            ctx.connection_errors.append(f"abandon {job.id}: {exc}")
            return
        with ctx.lock:
            self.ledger.abandoned.append(job.id)
            self.ledger.client_submits += 1
            ctx.faults["abandon"] += 1
        time.sleep(job.abandon_after_s)
        try:
            s.setblocking(False)
            if s.recv(65536):
                with ctx.lock:
                    self.ledger.abandoned_early += 1
        except (BlockingIOError, OSError):
            pass
        s.close()

    def start_burst(self) -> None:
        """burst_factor x max_queue jobs at once on a fresh connection (most get queue_full)."""
        ctx = self.ctx
        with ctx.lock:
            self.bursts += 1
            n = self.bursts
        ctx.count("burst")
        ctx.event("burst", n=n, jobs=ctx.o.burst_factor * ctx.o.max_queue)
        ctx.spawn(self._burst, n, name=f"burst{n}")

    def _burst(self, n: int) -> None:
        count = self.ctx.o.burst_factor * self.ctx.o.max_queue
        jobs = []
        for i in range(count):
            jid = f"burst{n}-{i}"
            jobs.append(PlannedJob(jid, "burst", job_request(self.ctx.site.url(f"/page/{i}"), id=jid),
                                   {"title": f"Page {i}"}))
        with self.ctx.lock:
            for j in jobs:
                self.ledger.sent[j.id] = j
            self.ledger.client_submits += len(jobs)
        self._drive(f"burst{n}", iter(jobs), count)
