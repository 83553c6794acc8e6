"""Operating foxden: Prometheus metrics, the asyncio client, the status table and batch progress, the systemd unit."""
from __future__ import annotations

import asyncio
import configparser
import errno
import fcntl
import io
import json
import os
import pty
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import termios
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from foxden import AsyncClient, ClientError, ServerError, job_request
from foxden.daemon import free_port
from foxden.metrics import start_metrics_server
from foxden.statusview import status_view

ROOT = Path(__file__).resolve().parent.parent
HANG = "new Promise(() => {})"  # an eval that never settles: only the watchdog ends it
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def scrape(port: int) -> dict[tuple, float]:
    """{(sample name, frozenset of labels): value} from /metrics on 127.0.0.1:port."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
        text = r.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict, name: str, **labels) -> float:
    return samples[(name, frozenset(labels.items()))]


def by_label(samples: dict, name: str, label: str) -> dict[str, float]:
    return {dict(k)[label]: v for (n, k), v in samples.items() if n == name}


def foxden(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "foxden", *args], capture_output=True, text=True, timeout=120, **kw)


# --- metrics ---------------------------------------------------------------------

@pytest.mark.browser
def test_metrics_are_the_status_document(make_daemon, site):
    d = make_daemon({"pool": {"size": 2}})
    with d.client(timeout=60) as c:
        for i in range(3):
            assert c.submit(site.url(f"/page/{i}")).status == "ok"
        assert c.submit("file:///etc/passwd").status == "rejected"
        assert c.submit(site.url("/"), eval=HANG, timeout_s=1).status == "timeout"
    # The timed-out browser is killed and replaced; wait for the den to settle.
    d.wait_until(lambda s: s["browsers"]["by_state"]["idle"] == 2 and s["exits"].get("timeout") == 1)

    client = d.client(timeout=30)
    server = start_metrics_server(free_port(), lambda: client.status())
    try:
        m = scrape(server.port)
        st = client.status()
        assert value(m, "foxden_up") == 1
        t = st["totals"]
        assert by_label(m, "foxden_jobs_total", "status") == {k: t[k] for k in ("ok", "failed", "timeout", "rejected")}
        assert by_label(m, "foxden_jobs_total", "status") == {"ok": 3, "failed": 0, "timeout": 1, "rejected": 1}
        assert value(m, "foxden_jobs_submitted_total") == t["submitted"] == 5
        assert value(m, "foxden_jobs_retried_total") == t["retried"]
        assert by_label(m, "foxden_job_errors_total", "code") == st["errors"] == {"unsupported_scheme": 1, "timeout": 1}

        assert value(m, "foxden_browsers_live") == st["browsers"]["live"] == 2
        browsers = by_label(m, "foxden_browsers", "state")
        assert browsers == {**{k: 0 for k in ("starting", "busy", "stopping")}, "idle": 2}
        assert {dict(k)["engine"] for (n, k) in m if n == "foxden_browsers"} == {st["engine"]}
        pss = by_label(m, "foxden_browser_pss_bytes", "browser")
        assert set(pss) == {c["id"] for c in st["children"]} and all(v > 0 for v in pss.values())

        assert by_label(m, "foxden_watchdog_kills_total", "reason") == st["watchdog"]["kills_by_reason"]
        assert value(m, "foxden_watchdog_kills_total", reason="timeout") == 1
        assert by_label(m, "foxden_browser_exits_total", "reason") == st["exits"]
        assert value(m, "foxden_restarts_total") == st["restarts"] >= 1
        assert value(m, "foxden_queue_depth") == 0 and value(m, "foxden_jobs_in_flight") == 0
        assert value(m, "foxden_invariants_ok") == 1 and value(m, "foxden_invariant_violations") == 0
        assert value(m, "foxden_pool_failed") == 0 and value(m, "foxden_pool_held_back") == 0
        assert value(m, "foxden_pool_target") == st["pool"]["target"] == 2
        assert value(m, "foxden_lingering_processes") == len(st["watchdog"]["lingering"]) == 0

        durations = st["durations"]
        buckets = by_label(m, "foxden_job_duration_seconds_bucket", "le")
        assert len(buckets) == len(durations["buckets"]) + 1
        cumulative = [buckets[str(float(b))] for b in durations["buckets"]] + [buckets["+Inf"]]
        assert cumulative == [sum(durations["counts"][:i + 1]) for i in range(len(durations["counts"]))]
        assert value(m, "foxden_job_duration_seconds_count") == buckets["+Inf"] == 5
        assert value(m, "foxden_job_duration_seconds_sum") == pytest.approx(durations["sum_s"])
        # The timed-out job took over a second: it is not in the buckets below 1 s.
        assert buckets["1.0"] <= 4

        # A status that cannot be fetched is foxden_up 0 and nothing else, never stale values.
        client.close()
        assert scrape(server.port) == {("foxden_up", frozenset()): 0}
    finally:
        server.close()
        client.close()
    server.close()  # idempotent
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5)


def test_metrics_port_in_use():
    first = start_metrics_server(0, dict)
    try:
        with pytest.raises(OSError) as exc:
            start_metrics_server(first.port, dict)
        assert exc.value.errno == errno.EADDRINUSE
    finally:
        first.close()


@pytest.mark.browser
def test_daemon_serves_metrics(make_daemon):
    port = free_port()
    d = make_daemon({"pool": {"size": 1}, "metrics": {"port": port}})
    m = scrape(port)
    assert value(m, "foxden_up") == 1 and value(m, "foxden_browsers_live") == 1
    assert value(m, "foxden_browsers", engine=d.status()["engine"], state="idle") == 1


# --- the asyncio client ----------------------------------------------------------

@pytest.mark.browser
def test_async_client_many_tasks_on_one_connection(make_daemon, site):
    d = make_daemon({"pool": {"size": 2}, "daemon": {"token": "s3cret"}})

    async def main():
        async with AsyncClient.from_config(d.config_path) as c:
            await c.ping()
            # Six tasks at once on one connection: each must get its own answer back.
            answers = await asyncio.gather(*(c.submit(site.url(f"/page/{i}"), eval="document.title", id=f"p{i}")
                                             for i in range(6)))
            assert [(a.id, a.status, a.result.eval) for a in answers] == \
                [(f"p{i}", "ok", f"Page {i}") for i in range(6)]

            jobs = [job_request(site.url(f"/page/m{i}"), id=f"m{i}") for i in range(4)] + [job_request("javascript:1")]
            seen = {}
            async for index, req, answer in c.submit_many(jobs, concurrency=3):
                assert req is jobs[index] and index not in seen
                seen[index] = answer
            assert sorted(seen) == list(range(5))
            assert [seen[i].result.title for i in range(4)] == [f"Page m{i}" for i in range(4)]
            assert seen[4].status == "rejected" and seen[4].error.code == "unsupported_scheme"

            st = await c.status()
            assert st["totals"]["submitted"] == 11 and st["totals"]["ok"] == 10 and st["invariants"]["ok"]

        await c.close()  # idempotent
        with pytest.raises(ClientError, match="closed"):
            await c.status()

        with pytest.raises(ServerError, match="unauthorized"):
            async with AsyncClient(d.config.daemon.socket, token="wrong") as bad:
                await bad.ping()

    asyncio.run(main())


def test_async_client_unreachable_daemon(tmp_path):
    async def main():
        with pytest.raises(ClientError, match="cannot reach the foxden daemon"):
            async with AsyncClient(tmp_path / "nobody.sock"):
                pass
        c = AsyncClient(tcp=("127.0.0.1", free_port()))
        with pytest.raises(ClientError, match="cannot reach"):
            await c.submit("http://127.0.0.1/")
        await c.close()

    asyncio.run(main())


@pytest.mark.browser
def test_async_client_when_the_daemon_stops_mid_request(make_daemon, site):
    d = make_daemon({"pool": {"size": 1}, "daemon": {"grace_s": 1.0}})

    async def main():
        async with AsyncClient.from_config(d.config) as c:
            job = asyncio.create_task(c.submit(site.url("/"), eval=HANG, timeout_s=120))
            while (await c.status())["queue"]["in_flight"] != 1:
                await asyncio.sleep(0.05)
            stop = await asyncio.create_subprocess_exec(sys.executable, "-m", "foxden", "stop", "-c", d.config_path,
                                                        stderr=asyncio.subprocess.DEVNULL)
            # A graceful stop still answers the job, once its grace is over ...
            answer = await asyncio.wait_for(job, 60)
            assert answer.status == "failed" and answer.error.code == "shutting_down"
            assert await stop.wait() == 0
            # ... and then the connection is gone: an error, not a hang.
            with pytest.raises(ClientError):
                await asyncio.wait_for(c.status(), 10)

    asyncio.run(main())


@pytest.mark.browser
def test_scrape_urls_example(make_daemon, site, tmp_path):
    d = make_daemon({"pool": {"size": 2}})
    urls = tmp_path / "urls.txt"
    urls.write_text(f"# pages\n{site.url('/page/a')}\n\n{site.url('/page/b')}\n")
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "scrape_urls.py"), "-c", d.config_path,
                        "-f", str(urls), "--concurrency", "2", site.url("/page/c"), "bogus://x"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stderr  # one URL was refused
    lines = {doc["url"]: doc for doc in map(json.loads, r.stdout.splitlines())}
    assert {u: doc["title"] for u, doc in lines.items() if doc["status"] == "ok"} == \
        {site.url(f"/page/{p}"): f"Page {p}" for p in "abc"}
    assert lines["bogus://x"]["error"] == "unsupported_scheme"

    d.stop()
    gone = subprocess.run([sys.executable, str(ROOT / "examples" / "scrape_urls.py"), "-c", d.config_path,
                           site.url("/")], capture_output=True, text=True, timeout=60)
    assert gone.returncode == 3 and "cannot reach" in gone.stderr


# --- the CLI: status table, --watch, batch progress ---------------------------------

def run_in_pty(args: list[str], *, until, timeout: float = 60.0, interrupt: bool = False,
               stdout_tty: bool = True) -> tuple[int, str]:
    """Run `foxden ARGS` with stderr (and stdout) on a 120x40 pseudo-terminal.

    Reads until until(output) is true, then (if interrupt) sends SIGINT as
    Ctrl-C would; returns (exit code, what the terminal received less its
    escape sequences)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "foxden", *args], stdin=subprocess.DEVNULL,
                            stdout=slave if stdout_tty else subprocess.DEVNULL, stderr=slave,
                            env=dict(os.environ, TERM="xterm-256color", COLUMNS="120", LINES="40"))
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if until(ANSI.sub("", out.decode(errors="replace"))):
                break
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    out += os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
        else:
            raise AssertionError(f"condition not met in {timeout}s; output:\n{out.decode(errors='replace')}")
        if interrupt:
            proc.send_signal(signal.SIGINT)
        rc = proc.wait(30)
        while select.select([master], [], [], 0.1)[0]:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return rc, ANSI.sub("", out.decode(errors="replace"))


@pytest.mark.browser
def test_status_table_watch_and_batch_progress(make_daemon, site, tmp_path):
    d = make_daemon({"pool": {"size": 2}})
    with d.client() as c:
        c.submit(site.url("/page/1"))
    st = d.status()

    buf = io.StringIO()
    Console(file=buf, width=120).print(status_view(st))
    table = buf.getvalue()
    assert "\x1b[" not in table  # no terminal, no colour codes
    assert f"foxden {st['instance']}" in table and f"engine {st['engine']}" in table
    assert "live 2" in table and "idle 2" in table and "submitted 1" in table and "ok (3 checks)" in table
    rows = [line.split() for line in table.splitlines() if line.split()[:1] in (["b1"], ["b2"])]
    assert [r[:4] for r in rows] == [[c["id"], str(c["pid"]), st["engine"], "idle"] for c in st["children"]]
    assert all(r[-1] == "MiB" for r in rows)

    # Without a terminal the CLI prints the same table, uncoloured.
    plain = foxden("status", "-c", d.config_path)
    assert plain.returncode == 0 and f"foxden {st['instance']}" in plain.stdout and "\x1b[" not in plain.stdout

    header = f"foxden {st['instance']}"
    rc, out = run_in_pty(["status", "-c", d.config_path, "--watch", "--interval", "0.2"],
                         until=lambda o: o.count(header) >= 3, interrupt=True)
    assert rc == 0, out
    assert "b1" in out and "Traceback" not in out

    # On a pipe --watch prints one table per sample.
    watch = subprocess.Popen([sys.executable, "-m", "foxden", "status", "-c", d.config_path, "--watch",
                              "--interval", "0.2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(8)  # interpreter start-up and two samples, with room for a loaded machine
    watch.send_signal(signal.SIGINT)
    out, err = watch.communicate(timeout=30)
    assert watch.returncode == 0, err
    assert out.count(header) >= 2

    src = tmp_path / "jobs.jsonl"
    src.write_text("".join(json.dumps({"url": site.url(f"/page/{i}"), "id": f"j{i}"}) + "\n" for i in range(4))
                   + json.dumps({"url": "javascript:1", "id": "bad"}) + "\n")
    results = tmp_path / "out.jsonl"
    rc, err = run_in_pty(["batch", str(src), "-c", d.config_path, "--out", str(results)],
                         until=lambda o: "foxden: 5 jobs" in o, stdout_tty=False)
    assert rc == 1  # one job was rejected
    assert "5/5" in err and "/s" in err and "foxden: 5 jobs: ok 4, rejected 1" in err
    assert sorted(json.loads(line)["id"] for line in results.read_text().splitlines()) == \
        ["bad", "j0", "j1", "j2", "j3"]

    # Answers bound for the terminal with the bar are printed above it, whole.
    rc, screen = run_in_pty(["batch", str(src), "-c", d.config_path], until=lambda o: "foxden: 5 jobs" in o)
    assert rc == 1 and screen.count('"status": "ok"') == 4 and "5/5" in screen


# --- the systemd unit --------------------------------------------------------------

UNIT = ROOT / "deploy" / "foxden.service"


def test_systemd_unit():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # systemd keys are case-sensitive
    unit.read(UNIT)
    svc = unit["Service"]
    assert svc["Type"] == "simple"
    assert svc["ExecStart"].split()[1:3] == ["run", "-c"] and svc["ExecStart"].split()[0].endswith("/foxden")
    # SIGTERM to the daemon alone, so it drains; SIGKILL for what is left after it.
    assert svc["KillMode"] == "mixed" and svc["KillSignal"] == "SIGTERM"
    assert int(svc["TimeoutStopSec"]) >= 10 + 5 + 20  # default grace_s + close_timeout_s + shutdown
    assert svc["Restart"] == "on-failure" and svc["RestartPreventExitStatus"] == "2"
    assert svc["User"] == "foxden" and svc["StateDirectory"] == "foxden" and svc["RuntimeDirectory"] == "foxden"
    for key, want in (("NoNewPrivileges", "yes"), ("PrivateTmp", "yes"), ("ProtectSystem", "full"),
                      ("ProtectHome", "yes")):
        assert svc[key] == want
    assert "MemoryDenyWriteExecute" not in svc  # would break the JavaScript JITs
    assert unit["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_unit_verifies(tmp_path):
    # verify checks that ExecStart exists: point it at this checkout's foxden.
    foxden_bin = Path(sys.executable).parent / "foxden"
    unit = tmp_path / "foxden.service"
    unit.write_text(UNIT.read_text().replace("/opt/foxden/.venv/bin/foxden", str(foxden_bin)))
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr
