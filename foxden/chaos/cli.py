"""`foxden chaos` / `python -m foxden.chaos`: the command line of a chaos run."""
from __future__ import annotations

import argparse
import json
import signal
import sys

from foxden.chaos.context import say
from foxden.chaos.faults import SPECS, parse_rates
from foxden.chaos.options import Options, parse_overrides
from foxden.chaos.report import render
from foxden.chaos.run import run_chaos

__all__ = ["build_parser", "options_from_args", "main"]

DESCRIPTION = """\
`foxden chaos`: a private daemon under injected faults, and a verdict on every promise it makes.

A run starts a private daemon (temp state dir, short timeouts, a fast watchdog, a high restart
intensity) and a fault site on 127.0.0.1, drives jobs through the public client so that C jobs are in
flight, injects faults while they run and samples `status` several times a second. Then it waits for
the den to settle, checks that no process or temp dir of a dead browser survived, stops the daemon
with SIGTERM and checks again. The summary (JSON on stdout, readable on stderr) says whether every job
sent on a live connection got exactly one answer, what leaked, and what the faults did.
See docs/chaos.md."""

EXIT_CODES = """\
exit code: 0 clean; 1 something was lost, answered twice, misrouted or leaked, an invariant broke,
the den did not settle, or the daemon exited non-zero; 2 bad arguments or the run could not start."""


def _epilog() -> str:
    rows = [f"  {f.value:14} {'per job ' if s.per_job else 'per s   '} {s.rate:<5} {s.help}" for f, s in SPECS.items()]
    return "fault kinds (--rates kind=value; per job: a probability, per s: a rate):\n" + "\n".join(rows) + \
        "\n\n" + EXIT_CODES


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="foxden chaos", description=DESCRIPTION, epilog=_epilog(),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
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


class _Interrupted(KeyboardInterrupt):
    """A signal that ends the run early (SIGTERM), raised like Ctrl-C's KeyboardInterrupt."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _terminated(signum, frame):
    # SIGTERM (a CI timeout, kill) ends the run like Ctrl-C does: an
    # exception, so run_chaos's finally blocks stop the daemon.
    raise _Interrupted(signum)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        opts = options_from_args(args)
    except ValueError as exc:
        print(f"foxden chaos: {exc}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _terminated)
    try:
        summary = run_chaos(opts)
    except KeyboardInterrupt as exc:
        # run_chaos's finally blocks have stopped the daemon (SIGTERM: it sweeps its own processes).
        signum = getattr(exc, "signum", signal.SIGINT)
        say(f"{signal.Signals(signum).name}: the run was interrupted and its daemon stopped; no summary")
        return 128 + signum
    except Exception as exc:
        say(f"the run failed: {type(exc).__name__}: {exc}")
        return 2
    print(render(summary), file=sys.stderr)
    print(json.dumps(summary) if args.json else json.dumps(summary, indent=2))
    return 0 if summary["ok"] else 1
