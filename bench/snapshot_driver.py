"""A snapshot's own cost inside one driver: ``python -m bench.snapshot_driver [chromium|firefox] [N]``.

Runs N session jobs (a 127.0.0.1 page whose eval writes localStorage) on one
launched driver and times the two parts of each snapshot separately: the
localStorage read in the job's page before it closes, and storage_state()
(the cookies, and what was kept) after the job; the first job is a warm-up.
"""
from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time

from foxden.config import default_config
from foxden.drivers import open_driver
from foxden.engines import resolve_engine
from foxden.protocols.messages import JobSpec
from foxden.testsite import Site

EVAL = "localStorage.setItem('n', String(Date.now())); 1"


def _ms(xs: list[float]) -> str:
    return f"median {statistics.median(xs):.2f} ms, q3 {statistics.quantiles(xs, n=4)[2]:.2f} ms"


def main() -> None:
    engine = sys.argv[1] if len(sys.argv) > 1 else "chromium"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    where = tempfile.mkdtemp(prefix="fxs", dir="/tmp")
    os.environ["TMPDIR"] = where  # the browser's profile and temp files go with it
    driver = open_driver(resolve_engine(engine, None), default_config().pool, where)
    remember = type(driver)._remember_local_storage
    reads, states = [], []

    def timed(page, job):
        t = time.perf_counter()
        remember(driver, page, job)
        reads.append((time.perf_counter() - t) * 1000.0)

    driver._remember_local_storage = timed
    driver.launch()
    try:
        with Site() as site:
            for i in range(n + 1):
                outcome = driver.run(JobSpec(key=f"k{i}", id=f"k{i}", url=site.url("/page/1"), session="S", eval=EVAL), 30)
                assert outcome.status == "ok", outcome
                t = time.perf_counter()
                driver.storage_state("S")
                states.append((time.perf_counter() - t) * 1000.0)
    finally:
        driver.close(5)
        shutil.rmtree(where, ignore_errors=True)
    reads, states = reads[1:], states[1:]
    print(f"{engine}, {n} jobs: localStorage read in the job page {_ms(reads)}; storage_state() {_ms(states)}; "
          f"both: median {statistics.median([a + b for a, b in zip(reads, states)]):.2f} ms")


if __name__ == "__main__":
    main()
