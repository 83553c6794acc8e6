"""The answer ledger: every job sent, every answer it got, and which were lost, answered twice or late."""
from __future__ import annotations

import time
from collections import Counter

from foxden.chaos.context import Context
from foxden.chaos.jobs import PlannedJob, check_answer
from foxden.chaos.options import Options
from foxden.client import Client
from foxden.protocols import wire

__all__ = ["Ledger", "TrackingClient", "answer_bound_s"]


def answer_bound_s(o: Options) -> float:
    """How long after submission a job must have its answer, by the daemon's own configured limits:
    it waits at most queue_timeout_s for a browser, and each attempt ends within its budget plus the
    watchdog's grace, a tick and the time to confirm the browser dead; plus slack for a loaded box."""
    attempt = o.timeout_s + o.jitter_s + 0.25 + 2 * 0.25 + 5.0
    return o.queue_timeout_s + 2 * attempt + o.slack_s


class TrackingClient(Client):
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


class Ledger:
    """Jobs sent on live connections and their answers, under the run's lock."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.sent: dict[str, PlannedJob] = {}
        self.sent_at: dict[str, float] = {}
        self.answers: dict[str, wire.Answer] = {}
        self.answer_counts: Counter = Counter()
        self.lost: dict[str, str] = {}
        self.misrouted: list[str] = []
        self.overdue: dict[str, float] = {}
        self.late: dict[str, str] = {}
        self.abandoned: list[str] = []
        self.abandoned_early = 0  # an answer arrived before the client hung up
        self.client_submits = 0  # Submit frames sent, on any connection
        self.clients: list[TrackingClient] = []

    def bound_s(self) -> float:
        return answer_bound_s(self.ctx.o)

    def record(self, job: PlannedJob, answer: wire.Answer) -> None:
        with self.ctx.lock:
            self.answer_counts[job.id] += 1
            if self.answer_counts[job.id] > 1:
                return
            self.answers[job.id] = answer
            self.lost.pop(job.id, None)
            if job.id in self.overdue:
                age = time.monotonic() - self.sent_at[job.id]
                self.late[job.id] = f"{answer.status} {age:.0f}s after submission (bound {self.bound_s():.0f}s)"
        problem = check_answer(job, answer)
        if problem:
            with self.ctx.lock:
                self.misrouted.append(problem)

    def lose(self, jobs, why: str) -> None:
        """The connection that carried these jobs broke: the unanswered ones are lost."""
        now = time.monotonic()
        with self.ctx.lock:
            for jid in jobs:
                if jid not in self.answers:
                    age = now - self.sent_at.get(jid, now)
                    self.lost[jid] = (f"no answer {age:.0f}s after submission (bound {self.bound_s():.0f}s)"
                                      if jid in self.overdue else why)

    def progress(self) -> float:
        """How far the run is, 0..1, by answered workload jobs or by time."""
        o = self.ctx.o
        if o.jobs:
            # Derived from the answers (list() copies the keys in one step under the GIL).
            answered = sum(1 for j in list(self.answers) if getattr(self.sent.get(j), "kind", None) != "burst")
            p = answered / o.jobs
        else:
            p = 0.0
        if o.duration_s:
            p = max(p, (time.monotonic() - self.ctx.t0) / o.duration_s)
        return p

    def check_overdue(self) -> None:
        """Mark jobs unanswered past the bound as overdue (an event says whether the daemon has them)."""
        bound = self.bound_s()
        now = time.monotonic()
        st = self.ctx.latest or {}
        running = {v: k for k, v in (st.get("queue", {}).get("in_flight_jobs") or {}).items()}
        with self.ctx.lock:
            fresh = [j for j, t in self.sent_at.items()
                     if now - t > bound and j not in self.answers and j not in self.overdue]
            for j in fresh:
                self.overdue[j] = now - self.sent_at[j]
        for j in fresh:
            self.ctx.event("overdue", job=j, age_s=round(now - self.sent_at[j], 1),
                           daemon_says=f"in flight on {running[j]}" if j in running else "not in flight")

    def pending_not_overdue(self) -> list[str]:
        with self.ctx.lock:
            return [j for j in self.sent_at if j not in self.answers and j not in self.overdue]

    def unanswered(self) -> int:
        return sum(1 for j in self.sent_at if j not in self.answers)

    def all_lost(self) -> dict[str, str]:
        """Lost jobs with why: those of broken connections and those never answered."""
        lost = dict(self.lost)
        for jid in self.sent:
            if jid not in self.answers and jid not in lost:
                lost[jid] = "never answered"
        return lost

    def answered_twice(self) -> list[str]:
        """Jobs answered more than once, and answers no request was waiting for."""
        twice = sorted(j for j, n in self.answer_counts.items() if n > 1)
        return twice + [f"rid {rid} ({aid})" for c in self.clients for rid, aid in c.extra]
