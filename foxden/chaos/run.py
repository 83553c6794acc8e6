"""One chaos run end to end: start a private daemon, drive the load under faults, settle, stop, judge."""
from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time

from foxden.chaos.context import Context, say
from foxden.chaos.inject import Injector
from foxden.chaos.leaks import Leaks, dir_evidence, tmp_entries
from foxden.chaos.ledger import Ledger
from foxden.chaos.load import Load
from foxden.chaos.options import Options, daemon_sections
from foxden.chaos.report import summarize, write_files
from foxden.chaos.sampler import Sampler
from foxden.chaos.settle import settle
from foxden.client import ClientError
from foxden.harness import DaemonProcess, write_config
from foxden.testsite import Site

__all__ = ["Chaos", "run_chaos"]


class Chaos:
    """A run's parts, wired together: the load, the injector and the sampler share one Context."""

    def __init__(self, opts: Options):
        self.o = opts
        self.ctx = Context(opts)
        self.seed = self.ctx.seed
        self.ledger = Ledger(self.ctx)
        self.load = Load(self.ctx, self.ledger)
        self.leaks = Leaks(self.ctx)
        self.sampler = Sampler(self.ctx, self.ledger, self.leaks)
        self.injector = Injector(self.ctx, self.load)
        self.workdir: str | None = None

    def run(self) -> dict:
        """The run; returns its summary (summary["ok"] is the verdict)."""
        ctx = self.ctx
        self.workdir = ctx.workdir = self.o.workdir or tempfile.mkdtemp(prefix="fxc", dir="/tmp")
        os.makedirs(self.workdir, exist_ok=True)
        state_dir = os.path.join(self.workdir, "state")
        tmp_before = tmp_entries()
        summary: dict = {"seed": self.seed, "workdir": self.workdir}
        started = time.monotonic()
        with Site() as site:
            ctx.site = site
            self._start_daemon(state_dir, summary)
            try:
                final, unsettled, procs_run, dirs_run, evidence, rss_end = self._examine()
            finally:
                rc = self._stop()
            leaked_procs = self.leaks.sweep_after_stop()
        leaked_dirs = self.leaks.leaked_dirs(state_dir, dirs_run, tmp_before, summary)
        summary["leaked_dir_details"] = evidence
        self._final_problems(final, unsettled)
        summary.update(summarize(self, final, rc, procs_run, leaked_procs, leaked_dirs, rss_end))
        summary["stopped_under_load"] = ctx.daemon_stopped.is_set()
        summary["duration_s"] = round(time.monotonic() - started, 1)
        write_files(self.workdir, ctx.events, summary)
        return summary

    def _start_daemon(self, state_dir: str, summary: dict) -> None:
        ctx = self.ctx
        cfg = write_config(os.path.join(self.workdir, "foxden.toml"), daemon_sections(self.o, state_dir))
        ctx.daemon = DaemonProcess(cfg, log_path=os.path.join(self.workdir, "daemon.log"))
        summary["daemon_log"] = ctx.daemon.log_path
        if not self.o.quiet:
            say(f"seed {self.seed}; starting a private daemon ({self.workdir}) and a site on {ctx.site.base}")
        try:
            ctx.daemon.start()
        except Exception:
            ctx.daemon.stop()
            ctx.daemon.kill_leftovers()
            raise

    def _examine(self):
        """Drive the load, let the den settle, and look for leaks while it still runs."""
        ctx = self.ctx
        self._drive_all()
        if ctx.daemon_stopped.is_set():
            final, unsettled, procs_run, dirs_run = ctx.latest, [], [], []
        else:
            final, unsettled = settle(ctx, self.sampler)
            procs_run = self.leaks.strays_before_stop(final) if final else []
            dirs_run = self.leaks.dirs_before_stop(final) if final else []
        if procs_run or dirs_run:
            time.sleep(1.0)  # a leak must persist: look again
            try:
                again = ctx.daemon.status()
            except ClientError:
                again = final
            procs_again = set(self.leaks.strays_before_stop(again))
            procs_run = [p for p in procs_run if p in procs_again]
            dirs_run = [d for d in self.leaks.dirs_before_stop(again) if d in dirs_run]
        evidence = {d: dir_evidence(d) for d in dirs_run}
        self._final_duplicate_check()
        rss_end = self.leaks.control_plane_rss(final) if final else {}
        return final, unsettled, procs_run, dirs_run, evidence, rss_end

    def _stop(self) -> int | None:
        ctx = self.ctx
        ctx.stop_threads.set()
        ctx.stop_sampler.set()
        for t in list(ctx.threads):
            t.join(5)
        if not self.o.quiet:
            say("stopping the daemon (SIGTERM)")
        return ctx.daemon.stop()

    def _drivers_alive(self) -> bool:
        ctx = self.ctx
        return any(t.is_alive() and (t in ctx.workers or t.name.startswith(("burst", "abandon")))
                   for t in ctx.workers + list(ctx.threads))

    def _drive_all(self) -> None:
        ctx, o = self.ctx, self.o
        ctx.t0 = time.monotonic()
        sampler = ctx.spawn(self.sampler.loop, name="sampler")
        self.load.start_workers()
        injector = ctx.spawn(self.injector.loop, self.ledger.progress, name="injector")
        last = 0.0
        while self._drivers_alive():
            time.sleep(0.2)
            if o.stop_under_load and not ctx.daemon_stopped.is_set() and self.ledger.progress() >= 0.5:
                self._stop_under_load()
            if ctx.submitting_done.is_set() and not self.ledger.pending_not_overdue():
                self.load.close_overdue_connections()
            if not o.quiet and time.monotonic() - last > 10:
                last = time.monotonic()
                led = self.ledger
                say(f"{time.monotonic() - ctx.t0:5.0f}s: {len(led.answers)} answered of {len(led.sent)} sent; "
                    f"faults {dict(ctx.faults)}" + (f"; {len(led.overdue)} overdue" if led.overdue else ""))
        injector.join(10)
        # From here on settle() samples; one sampler at a time keeps the samples in order.
        ctx.stop_sampler.set()
        sampler.join(40)

    def _stop_under_load(self) -> None:
        """Stop feeding, let the jobs just sent reach the gateway, then SIGTERM: every job in flight
        must still get its one answer (a result, or shutting_down) before the connection closes."""
        ctx = self.ctx
        with ctx.lock:
            ctx.submitting_done.set()
        time.sleep(0.5)
        ctx.event("sigterm_under_load", in_flight=self.ledger.unanswered())
        ctx.daemon_stopped.set()
        ctx.daemon.proc.send_signal(signal.SIGTERM)

    def _final_duplicate_check(self) -> None:
        """A ping on every connection reads whatever it still has queued: a late second answer shows up."""
        for c in list(self.ledger.clients):
            try:
                c.ping()
            except ClientError:
                pass
            finally:
                c.close()

    def _final_problems(self, final: dict | None, unsettled: list[str]) -> None:
        """A den that did not settle, or counted other submissions than the clients sent, is a violation."""
        ctx = self.ctx
        problems = [f"did not settle (limit {self.o.settle_timeout_s:.0f}s): {w}" for w in unsettled]
        if final is not None and not unsettled and not ctx.daemon_stopped.is_set():
            submitted = final["totals"]["submitted"]
            if submitted != self.ledger.client_submits:
                problems.append(f"the daemon counted {submitted} submitted jobs; "
                                f"the clients sent {self.ledger.client_submits}")
        for p in problems:
            ctx.violation("chaos: " + p)


def run_chaos(opts: Options) -> dict:
    """One chaos run; returns the summary (summary["ok"] is the verdict). Removes the work dir
    unless the run failed or opts.keep."""
    chaos = Chaos(opts)
    summary = None
    try:
        summary = chaos.run()
        return summary
    finally:
        workdir = chaos.workdir
        if workdir and not opts.workdir and not opts.keep and summary is not None and summary["ok"]:
            shutil.rmtree(workdir, ignore_errors=True)
