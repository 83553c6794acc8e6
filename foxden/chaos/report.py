"""The summary of a run (its verdict in summary["ok"]), its readable rendering, and its files."""
from __future__ import annotations

import json
import math
import os
import re
from collections import Counter

from foxden.chaos.faults import KINDS

__all__ = ["percentiles", "summarize", "verdict", "render", "log_problems", "unexplained_crashes", "write_files"]

_CRASH = re.compile(r"killing browser (b\d+) \(crash\)|browser (?=b\d+ exiting: crash)(b\d+)")
LOG_PROBLEM = re.compile(r" (ERROR|CRITICAL) |Traceback|second answer|survived")


def percentiles(values) -> dict:
    vals = sorted(float(v) for v in values)
    if not vals:
        return {"n": 0, "p50": None, "p99": None, "max": None}

    def pick(q):
        return round(vals[min(len(vals) - 1, int(math.ceil(q * len(vals))) - 1)], 1)

    return {"n": len(vals), "p50": pick(0.50), "p99": pick(0.99), "max": round(vals[-1], 1)}


def log_problems(path: str, limit: int = 40) -> dict:
    """Error lines, tracebacks and survivors in the daemon's log: their count and the first `limit`."""
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


def unexplained_crashes(events: list[dict], log_path: str) -> list[str]:
    """Browsers the daemon saw crash although we neither killed their browser nor their actor.

    Nothing else here makes a browser crash, so each one is collateral damage of the daemon's."""
    explained = {e.get("browser") for e in events if e["kind"] in ("kill_browser", "kill_actor")}
    out = []
    try:
        with open(log_path, errors="replace") as f:
            for line in f:
                m = _CRASH.search(line)
                if m and (m.group(1) or m.group(2)) not in explained:
                    out.append(line.rstrip()[:300])
    except OSError:
        pass
    return out[:20]


def _answers(ledger) -> dict:
    answered = list(ledger.answers.values())
    twice, lost = ledger.answered_twice(), ledger.all_lost()
    sent, answers = ledger.sent, ledger.answers
    return {
        "jobs": len(sent),
        "workload_jobs": sum(1 for j in sent.values() if j.kind != "burst"),
        "burst_jobs": sum(1 for j in sent.values() if j.kind == "burst"),
        "answered": len(answered),
        "answered_twice": len(twice),
        "answered_twice_jobs": twice[:50],
        "lost": len(lost),
        "lost_jobs": dict(sorted(lost.items())[:50]),
        "late_answers": len(ledger.late),
        "late_answer_jobs": dict(sorted(ledger.late.items())[:50]),
        "answer_bound_s": round(ledger.bound_s(), 1),
        "misrouted": len(ledger.misrouted),
        "misrouted_detail": ledger.misrouted[:50],
        "abandoned": len(ledger.abandoned),
        "abandoned_answered_before_hangup": ledger.abandoned_early,
        "by_status": dict(Counter(a.status for a in answered)),
        "by_error_code": dict(Counter(a.error.code for a in answered if a.error)),
        "by_kind": {k: dict(Counter(answers[j].status + (f"/{answers[j].error.code}" if answers[j].error else "")
                                    for j, job in sent.items() if job.kind == k and j in answers))
                    for k in sorted({j.kind for j in sent.values()})},
        "answer_elapsed_ms": percentiles(a.elapsed_ms for a in answered if a.status != "rejected"),
    }


def _daemon(final: dict | None) -> dict:
    final = final or {}
    return {
        "watchdog_kills": final.get("watchdog", {}).get("kills_by_reason", {}),
        "exits": final.get("exits", {}),
        "restarts": final.get("restarts"),
        "retried": final.get("totals", {}).get("retried"),
        "daemon_totals": final.get("totals"),
        "hang_to_dead_ms": percentiles(final.get("watchdog", {}).get("hang_to_dead_ms", [])),
    }


def _health(run, rss_end: dict) -> dict:
    sampler, ctx = run.sampler, run.ctx
    warm = sampler.rss_warm or {}
    common = set(warm) & set(rss_end)
    return {
        "status_latency_ms": percentiles(sampler.status_ms),
        "invariant_samples": sampler.samples,
        "invariant_unsettled_browsers": sampler.unsettled_browsers,
        "invariant_violations": sorted(ctx.violations),
        "status_errors": sampler.status_errors[:20],
        "connection_errors": ctx.connection_errors[:20],
        "control_plane_rss_growth_bytes": sum(rss_end[p][1] - warm[p][1] for p in common) if common else None,
        "control_plane_rss": {str(p): {"role": rss_end[p][0], "warm": warm[p][1], "end": rss_end[p][1]}
                              for p in sorted(common)},
    }


def summarize(run, final, rc, leaked_procs_run, leaked_procs, leaked_dirs, rss_end) -> dict:
    """The summary of a finished run (a chaos.run.Chaos): answers, faults, the daemon's view, leaks, health."""
    o = run.ctx.o
    out = _answers(run.ledger)
    out["faults_injected"] = {k: run.ctx.faults.get(k, 0) for k in KINDS}
    out["bad_frames"] = dict(run.injector.bad_frames)
    out.update(_daemon(final))
    out.update(_health(run, rss_end))
    out.update({
        "leaked_processes": leaked_procs + [f"(before stop) {p}" for p in leaked_procs_run],
        "leaked_dirs": leaked_dirs,
        "daemon_exit_code": rc,
        "daemon_log_problems": log_problems(run.ctx.daemon.log_path),
        "unexplained_crashes": unexplained_crashes(run.ctx.events, run.ctx.daemon.log_path),
        "config": {"jobs": o.jobs, "concurrency": o.concurrency, "pool_size": o.pool_size,
                   "duration_s": o.duration_s, "timeout_s": o.timeout_s, "jitter_s": o.jitter_s,
                   "max_queue": o.max_queue, "engine": o.engine, "rates": o.rates, "overrides": o.overrides},
    })
    out["ok"] = verdict(out)
    return out


def verdict(s: dict) -> bool:
    """Clean: nothing lost, answered twice, misrouted or late; no unexplained crash, leak or violation; exit 0."""
    return bool(s["lost"] == 0 and s["answered_twice"] == 0 and s["misrouted"] == 0
                and s["late_answers"] == 0 and not s["unexplained_crashes"]
                and not s["leaked_processes"] and not s["leaked_dirs"]
                and not s["invariant_violations"] and s["daemon_exit_code"] == 0)


def render(s: dict) -> str:
    """The summary for a reader (stderr)."""
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


def write_files(workdir: str, events: list[dict], summary: dict) -> None:
    """events.jsonl and summary.json in the work dir (best effort)."""
    for name, text in (("events.jsonl", "".join(json.dumps(e) + "\n" for e in events)),
                       ("summary.json", json.dumps(summary, indent=2, default=str))):
        try:
            with open(os.path.join(workdir, name), "w") as f:
                f.write(text)
        except OSError:
            pass
