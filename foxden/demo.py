"""`foxden demo`: a private daemon and site, a mix of jobs and faults, and a report."""
from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter

from foxden.client import job_request
from foxden.harness import DaemonProcess, write_config
from foxden.testsite import Site


def _say(msg: str) -> None:
    print(f"demo: {msg}", file=sys.stderr, flush=True)


def demo_config(state_dir: str) -> dict:
    return {
        "daemon": {"state_dir": state_dir, "admin_port": 0, "grace_s": 5.0},
        "pool": {"size": 2},
        "jobs": {"timeout_s": 3.0, "jitter_s": 0.5, "retries": 1, "max_queue": 100},
        "watchdog": {"interval_s": 0.25, "heartbeat_timeout_s": 3.0, "kill_grace_s": 0.25},
    }


def workload(site: Site) -> list:
    """The demo's jobs: ordinary pages, a session, hangs, a bad URL."""
    jobs = [job_request(site.url(f"/page/{i}"), id=f"page-{i}",
                        eval="document.querySelectorAll('li').length" if i % 2 else None) for i in range(10)]
    jobs.append(job_request(site.url("/cookie/set?v=demo"), id="session-1", session="demo"))
    jobs += [job_request(site.url(f"/cookie/get?n={i}"), id=f"session-{i}", session="demo") for i in range(2, 5)]
    jobs.append(job_request(site.url("/"), id="hang-forever", eval="new Promise(() => {})"))
    jobs.append(job_request(site.url("/"), id="busy-loop", eval="while (true) {}"))
    jobs.append(job_request(site.url("/hang"), id="never-finishes"))
    jobs.append(job_request("file:///etc/passwd", id="bad-url"))
    return jobs


def _kill_a_browser_mid_job(daemon: DaemonProcess, site: Site, answers: dict) -> str | None:
    """Submit a slow job, SIGKILL its browser's main process while it runs; the job is retried."""
    def run():
        with daemon.client() as c:
            # A deadline of its own: the retry runs on a browser launched a moment
            # ago, and on a loaded box a first page there can take seconds.
            answers["killed-mid-job"] = c.submit(site.url("/slow?ms=2500"), id="killed-mid-job", timeout_s=10.0)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        st = daemon.status()
        for c in st["children"]:
            if c["job"] == "killed-mid-job" and c["browser_pids"]:
                os.kill(c["browser_pids"][0], signal.SIGKILL)
                t.join(60)
                return c["id"]
        time.sleep(0.05)
    t.join(60)
    return None


class _Sampler:
    """Reads status every 0.3 s in a thread, keeping the invariant violations it sees."""

    def __init__(self, daemon: DaemonProcess):
        self.daemon, self.samples, self.violations = daemon, 0, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.3):
            self.add(self.daemon.status())

    def add(self, status: dict) -> None:
        self.samples += 1
        self.violations.extend(status["invariants"]["violations"])

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _run_jobs(daemon: DaemonProcess, jobs: list, answers: dict) -> None:
    with daemon.client() as c:
        for n, (_, req, answer) in enumerate(c.submit_many(jobs, concurrency=6), 1):
            answers[req.id] = answer
            _say(f"[{n}/{len(jobs)}] {req.id}: {answer.status}"
                 + (f" ({answer.error.code})" if answer.error else "")
                 + f" in {answer.elapsed_ms:.0f} ms on {answer.browser}")


def run_demo() -> dict:
    workdir = tempfile.mkdtemp(prefix="foxden-demo-", dir="/tmp")
    report: dict = {"workdir": workdir}
    try:
        with Site() as site:
            cfg = write_config(os.path.join(workdir, "foxden.toml"), demo_config(os.path.join(workdir, "state")))
            daemon = DaemonProcess(cfg, log_path=os.path.join(workdir, "daemon.log"))
            _say(f"starting a private daemon ({workdir}) and a site on {site.base}")
            t0 = time.monotonic()
            daemon.start()
            report["startup_s"] = round(time.monotonic() - t0, 2)
            st = daemon.status()
            _say(f"{st['browsers']['live']} {st['engine']} browsers ready in {report['startup_s']}s")
            answers: dict = {}
            jobs = workload(site)
            sampler = _Sampler(daemon)
            _run_jobs(daemon, jobs, answers)
            victim = _kill_a_browser_mid_job(daemon, site, answers)
            a = answers.get("killed-mid-job")
            if a is not None:
                _say(f"killed browser {victim} mid-job: {a.status} after {a.attempts} attempts on {a.browser}")
            sampler.stop()
            final = daemon.wait_until(lambda s: s["browsers"]["by_state"]["idle"] == s["pool"]["target"])
            sampler.add(final)
            _say("stopping the daemon")
            rc = daemon.stop()
            left = daemon.leftovers()
            if left:
                daemon.kill_leftovers()
        report.update(_verdict([r.id for r in jobs] + ["killed-mid-job"], answers, final, sampler, rc, left))
        return report
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _verdict(expected: list, answers: dict, final: dict, sampler: _Sampler, rc: int, left: list) -> dict:
    """The report's figures, and whether the demo kept every promise."""
    report = {
        "jobs": len(expected),
        "answered": len(answers),
        "lost": sorted(set(expected) - set(answers)),
        "by_status": dict(Counter(a.status for a in answers.values())),
        "by_error": dict(Counter(a.error.code for a in answers.values() if a.error)),
        "answers": {k: v.to_json_dict() for k, v in sorted(answers.items())},
        "watchdog_kills": final["watchdog"]["kills_by_reason"],
        "restarts": final["restarts"],
        "exits": final["exits"],
        "invariant_samples": sampler.samples,
        "invariant_violations": sampler.violations,
        "daemon_exit_code": rc,
        "processes_left": [p.pid for p in left],
    }
    killed = answers.get("killed-mid-job")
    report["ok"] = (not report["lost"] and not sampler.violations and not left and rc == 0
                    and killed is not None and killed.status == "ok")
    return report


def render(report: dict) -> str:
    lines = ["", "foxden demo report", "==================",
             f"jobs: {report['jobs']}, answered: {report['answered']}, lost: {len(report['lost'])}",
             "answers by status: " + ", ".join(f"{k} {v}" for k, v in sorted(report["by_status"].items())),
             "error codes: " + (", ".join(f"{k} {v}" for k, v in sorted(report["by_error"].items())) or "none"),
             "watchdog kills: " + (", ".join(f"{k} {v}" for k, v in report["watchdog_kills"].items()) or "none"),
             f"restarts: {report['restarts']}",
             f"invariant checks: {report['invariant_samples']} samples, {len(report['invariant_violations'])} violations",
             f"processes left behind: {len(report['processes_left'])}",
             f"daemon exit code: {report['daemon_exit_code']}",
             f"result: {'OK — every invariant held' if report['ok'] else 'FAILED'}"]
    return "\n".join(lines)


def main(json_out: bool = False) -> int:
    try:
        report = run_demo()
    except Exception as exc:
        _say(f"failed: {exc}")
        return 1
    print(json.dumps(report, indent=2) if json_out else render(report))
    return 0 if report["ok"] else 1
