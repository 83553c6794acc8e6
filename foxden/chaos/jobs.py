"""The jobs of a run: each a function of (seed, number, kind), and what its answer must show."""
from __future__ import annotations

import random
from dataclasses import dataclass

from foxden.chaos.faults import HANG_KINDS
from foxden.client import job_request
from foxden.protocols import wire

__all__ = ["PlannedJob", "plan_job", "check_answer"]


@dataclass(frozen=True)
class PlannedJob:
    """One job and what an "ok" answer to it must show (catches an answer delivered to the wrong job)."""

    id: str
    kind: str  # "normal", "burst" or a per-job fault kind
    request: wire.JobRequest
    expect: dict
    abandon_after_s: float = 0.0


def plan_job(i: int, kind: str, seed, site, timeout_s: float) -> PlannedJob:
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
    return _normal_job(i, jid, kind, rng, site)


def _normal_job(i: int, jid: str, kind: str, rng: random.Random, site) -> PlannedJob:
    """A job that should succeed: a page, a late element, a 404, an async eval or a session cookie."""
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
