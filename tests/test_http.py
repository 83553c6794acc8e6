"""The HTTP API through a real daemon: every route, the token, bad bodies, polling, probes, restarts, stop."""
from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest

from foxden import procs
from foxden.harness import DaemonProcess, write_config
from foxden.http.openapi import openapi
from foxden.protocols import wire

from conftest import merged

pytestmark = pytest.mark.browser

TOKEN = "t0k-http"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Http:
    """A tiny HTTP client on urllib: (status, parsed JSON or text) per call."""

    def __init__(self, port: int):
        self.base = f"http://127.0.0.1:{port}"

    def __call__(self, method: str, path: str, body=None, headers=AUTH, raw: bytes | None = None, timeout=60):
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=dict(headers or {}))
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                status, text, ctype = resp.status, resp.read(), resp.headers.get("Content-Type", "")
        except urllib.error.HTTPError as err:
            status, text, ctype = err.code, err.read(), err.headers.get("Content-Type", "")
        return status, (json.loads(text) if "json" in ctype else text.decode())


def start_daemon(overrides: dict) -> tuple[DaemonProcess, str]:
    d = tempfile.mkdtemp(prefix="fxh", dir="/tmp")
    cfg = merged(overrides)
    cfg["daemon"].setdefault("state_dir", os.path.join(d, "state"))
    path = write_config(os.path.join(d, "foxden.toml"), cfg)
    return DaemonProcess(path, log_path=os.path.join(d, "daemon.log")), d


def http_pid(daemon: DaemonProcess) -> int | None:
    for p in procs.find_marked(daemon.state_prefix):
        try:
            if p.cmdline()[-2:] == ["-m", "foxden.http"]:
                return p.pid
        except psutil.Error:
            pass
    return None


@pytest.fixture(scope="module")
def den(site):
    """One daemon for the module: token, one browser, a queue of 1, a 4 KiB body cap, HTTP on a free port."""
    port = free_port()
    daemon, d = start_daemon({"daemon": {"token": TOKEN}, "pool": {"size": 1}, "jobs": {"max_queue": 1},
                              "http": {"port": port, "max_body_kb": 4}})
    daemon.start()
    http = Http(port)
    deadline = time.monotonic() + 30
    while http("GET", "/healthz", headers=None)[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        yield daemon, http
    finally:
        rc = daemon.stop()
        left = daemon.leftovers()
        daemon.kill_leftovers()
        shutil.rmtree(d, ignore_errors=True)
        assert rc == 0 and not left, (rc, left, daemon.log_tail())


def test_probes_answer_without_a_token(den):
    _, http = den
    assert http("GET", "/healthz", headers=None) == (200, {"ok": True})
    assert http("GET", "/readyz", headers=None) == (200, {"ready": True})


ROUTES = [("POST", "/v1/jobs"), ("GET", "/v1/jobs/x"), ("DELETE", "/v1/jobs/x"), ("GET", "/v1/status"),
          ("POST", "/v1/leases"), ("DELETE", "/v1/leases/x"), ("GET", "/metrics"), ("GET", "/v1/openapi.json"),
          ("GET", "/no/such/route")]


@pytest.mark.parametrize("headers", [None, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"},
                                     {"Authorization": TOKEN}], ids=["none", "wrong", "basic", "bare"])
def test_every_other_route_needs_the_token(den, headers):
    _, http = den
    for method, path in ROUTES:
        status, body = http(method, path, body={"url": "about:blank"} if method == "POST" else None, headers=headers)
        assert status == 401 and body["error"]["code"] == "unauthorized", (method, path, status, body)


def test_a_job_answers_like_submit_json(den, site):
    daemon, http = den
    status, body = http("POST", "/v1/jobs", {"url": site.url("/page/7"), "eval": "1 + 1", "id": "h1"})
    assert status == 200 and body["status"] == "ok" and body["id"] == "h1", body
    assert body["result"]["title"] == "Page 7" and body["result"]["eval"] == 2
    with daemon.client(timeout=60) as c:
        same = c.submit(site.url("/page/7"), eval="1 + 1", id="h1").to_json_dict()
    assert set(body) == set(same) and set(body["result"]) == set(same["result"])
    # Every terminal answer is a 200, whatever its status.
    status, failed = http("POST", "/v1/jobs", {"url": "http://127.0.0.1:9/"})
    assert status == 200 and failed["status"] == "failed" and failed["error"]["code"] == "navigation_failed"
    status, rejected = http("POST", "/v1/jobs", {"url": "about:blank", "timeout_s": 10_000})
    assert status == 200 and rejected["status"] == "rejected" and rejected["error"]["code"] == "bad_input"


def test_bodies_that_are_not_jobs_are_400_with_the_wires_own_message(den):
    _, http = den
    cases = [({"url": "about:blank", "nope": 1}, "bad_field", "nope: unknown field"),
             ({"url": "about:blank", "timeout_s": "x"}, "bad_field", "timeout_s: expected a finite number > 0"),
             ({"url": "about:blank", "screenshot": 1}, "bad_field", "screenshot: expected true or false"),
             ({"eval": "1"}, "missing_field", "url: required field is missing")]
    for job, code, words in cases:
        status, body = http("POST", "/v1/jobs", job)
        assert status == 400 and body["error"]["code"] == code and words in body["error"]["message"], (job, body)
        with pytest.raises(wire.ProtocolError) as info:  # the socket's validator says the same
            wire.decode_job(job)
        assert info.value.message == body["error"]["message"]
    for raw, words in ((b'{"url": ', "not one JSON object"), (b"[]", "expected one JSON object"),
                       (b'{"url": "a", "url": "b"}', "appears twice")):
        status, body = http("POST", "/v1/jobs", raw=raw)
        assert status == 400 and body["error"]["code"] == "bad_json" and words in body["error"]["message"], body
    status, body = http("POST", "/v1/jobs?wait=maybe", {"url": "about:blank"})
    assert status == 400 and "?wait" in body["error"]["message"], body
    status, body = http("POST", "/v1/jobs", {"url": "about:blank", "eval": "x" * 5000})
    assert status == 413 and body["error"]["code"] == "body_too_large", body


def test_wait_false_then_poll(den, site):
    _, http = den
    status, accepted = http("POST", "/v1/jobs?wait=false", {"url": site.url("/slow?ms=1500"), "id": "poll-1"})
    assert status == 202 and accepted == {"id": "poll-1", "status": "pending"}
    assert http("GET", "/v1/jobs/poll-1") == (202, {"id": "poll-1", "status": "pending"})
    status, body = http("POST", "/v1/jobs?wait=false", {"url": "about:blank", "id": "poll-1"})
    assert status == 409 and body["error"]["code"] == "duplicate_id", body
    deadline = time.monotonic() + 60
    while (got := http("GET", "/v1/jobs/poll-1"))[0] == 202 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert got[0] == 200 and got[1]["status"] == "ok" and got[1]["result"]["title"] == "slow", got
    status, accepted = http("POST", "/v1/jobs?wait=false", {"url": "about:blank"})  # no id: one is made up
    assert status == 202 and len(accepted["id"]) == 32
    status, body = http("GET", "/v1/jobs/never-submitted")
    assert status == 404 and body["error"]["code"] == "not_found", body


def test_delete_cancels_a_running_job_which_is_answered_once_failed_cancelled(den, site):
    daemon, http = den
    status, accepted = http("POST", "/v1/jobs?wait=false", {"url": site.url("/hang"), "id": "cancel-me", "timeout_s": 60})
    assert status == 202, accepted
    deadline = time.monotonic() + 30
    while "cancel-me" not in daemon.status()["queue"]["in_flight_jobs"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert http("DELETE", "/v1/jobs/cancel-me") == (200, {"id": "cancel-me", "found": True})
    deadline = time.monotonic() + 30
    while (got := http("GET", "/v1/jobs/cancel-me"))[0] == 202 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert got[0] == 200 and got[1]["status"] == "failed" and got[1]["error"]["code"] == "cancelled", got
    assert http("DELETE", "/v1/jobs/cancel-me") == (200, {"id": "cancel-me", "found": False})
    status, answer = http("POST", "/v1/jobs", {"url": site.url("/"), "id": "after-cancel"})  # the pool goes on
    assert status == 200 and answer["status"] == "ok", answer


def test_screenshots_travel_as_base64_only_when_asked(den):
    _, http = den
    status, plain = http("POST", "/v1/jobs", {"url": "about:blank", "screenshot": True})
    assert status == 200 and "screenshot" not in plain["result"]
    status, body = http("POST", "/v1/jobs?binary=base64", {"url": "about:blank", "screenshot": True})
    assert status == 200 and base64.b64decode(body["result"]["screenshot"]).startswith(b"\x89PNG"), body


def test_status_metrics_and_openapi(den):
    daemon, http = den
    status, doc = http("GET", "/v1/status")
    assert status == 200 and doc["instance"] == daemon.status()["instance"] and doc["draining"] is False
    status, text = http("GET", "/metrics")
    assert status == 200 and "foxden_up 1.0" in text and 'foxden_jobs_total{status="ok"}' in text, text[:500]
    status, spec = http("GET", "/v1/openapi.json")
    assert status == 200 and spec == json.loads(json.dumps(openapi(spec["info"]["version"])))


def test_lease_and_cancel_routes_check_their_input(den):
    _, http = den
    status, body = http("POST", "/v1/leases", {"ttl_s": -1})
    assert status == 400 and body["error"]["code"] == "bad_field" and "ttl_s" in body["error"]["message"], body
    status, body = http("POST", "/v1/leases", {"engine": "chromium", "color": "red"})
    assert status == 400 and "color: unknown field" in body["error"]["message"], body


def test_a_lease_over_http_is_listed_kept_out_of_jobs_and_ended(den, site):
    daemon, http = den
    status, lease = http("POST", "/v1/leases", {"ttl_s": 120, "idle_s": 60}, timeout=200)
    assert status == 200 and lease["engine"] == "chromium", lease
    assert lease["endpoint"].startswith("ws://127.0.0.1:") and lease["lease"] not in lease["endpoint"], lease
    status, doc = http("GET", "/v1/status")
    (row,) = [r for r in doc["leases"] if r["id"] == lease["lease"]]
    assert row["connected"] is False and lease["endpoint"] not in json.dumps(doc)  # the secret stays out of status
    status, answer = http("POST", "/v1/jobs", {"url": site.url("/"), "id": "beside-a-lease"})
    assert status == 200 and answer["status"] == "ok" and answer["browser"] != row["browser"], answer
    assert http("DELETE", f"/v1/leases/{lease['lease']}", timeout=200) == (200, {"lease": lease["lease"],
                                                                               "existed": True})
    assert http("DELETE", f"/v1/leases/{lease['lease']}", timeout=200) == (200, {"lease": lease["lease"],
                                                                               "existed": False})
    assert not [r for r in http("GET", "/v1/status")[1]["leases"] if r["id"] == lease["lease"]]


def test_readyz_is_503_while_the_queue_is_full(den, site):
    daemon, http = den
    with ThreadPoolExecutor(2) as pool:
        # One job runs on the only browser, the next waits: the queue holds max_queue (1).
        running = pool.submit(http, "POST", "/v1/jobs", {"url": site.url("/hang"), "timeout_s": 2})
        daemon.wait_until(lambda s: s["queue"]["in_flight"] == 1, timeout=30)
        queued = pool.submit(http, "POST", "/v1/jobs", {"url": site.url("/hang"), "timeout_s": 2})
        daemon.wait_until(lambda s: s["queue"]["depth"] == 1, timeout=30)
        status, body = http("GET", "/readyz", headers=None)
        assert status == 503 and "queue is full" in body["reason"], body
        assert running.result()[1]["status"] == "timeout" and queued.result()[0] == 200
    daemon.wait_until(lambda s: s["queue"]["depth"] == 0 and s["browsers"]["by_state"]["idle"] == 1, timeout=30)
    assert http("GET", "/readyz", headers=None) == (200, {"ready": True})


def test_a_killed_http_process_is_restarted_and_serves_again(den):
    daemon, http = den
    old = http_pid(daemon)
    assert old is not None
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while (new := http_pid(daemon)) in (None, old) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert new not in (None, old), "the HTTP process was not restarted"
    # The daemon bound the socket, so the port is served again by the new process.
    assert http("GET", "/healthz", headers=None) == (200, {"ok": True})
    status, body = http("POST", "/v1/jobs", {"url": "about:blank"})
    assert status == 200 and body["status"] == "ok", body
    assert "HTTP process (pid %d) exited" % old in daemon.log_tail(200)


def test_readyz_503_when_the_pool_gave_up_and_stop_leaves_nothing(tmp_path):
    # Its own daemon, not make_daemon: that fixture's stray check would take the module's daemon for a stray.
    fake = tmp_path / "fake-chromium"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    port = free_port()
    daemon, d = start_daemon({"pool": {"engine": "chromium", "executable_path": str(fake), "size": 1},
                              "restart": {"intensity": 0}, "http": {"port": port}})
    try:
        daemon.start()
        daemon.wait_until(lambda s: s["pool"]["state"] == "failed", timeout=60)
        http = Http(port)
        status, body = http("GET", "/readyz", headers=None)
        assert status == 503 and "given up" in body["reason"], body
        assert http("GET", "/healthz", headers=None) == (200, {"ok": True})  # alive, just not ready
        pid = http_pid(daemon)
        assert pid is not None
        stop = subprocess.run([sys.executable, "-m", "foxden", "stop", "-c", daemon.config_path],
                              capture_output=True, text=True, timeout=120)
        assert stop.returncode == 0, stop.stderr
        assert not procs.pid_alive(pid) and not daemon.leftovers()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        assert daemon.stop() == 0
    finally:
        daemon.stop()
        daemon.kill_leftovers()
        shutil.rmtree(d, ignore_errors=True)


def test_while_the_daemon_drains_readyz_is_503_and_a_job_in_flight_gets_its_answer(den, site):
    # Last in the module: it stops the module's daemon (the fixture then only reaps it).
    daemon, http = den
    with ThreadPoolExecutor(1) as pool:
        # Longer than [daemon] grace_s (5 s): the drain ends it with shutting_down.
        inflight = pool.submit(http, "POST", "/v1/jobs", {"url": site.url("/hang"), "timeout_s": 9})
        daemon.wait_until(lambda s: s["queue"]["in_flight"] == 1, timeout=30)
        daemon.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        while (ready := http("GET", "/readyz", headers=None))[0] == 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready == (503, {"ready": False, "reason": "shutting down"}), ready
        # The HTTP process is stopped only after the gateway has flushed every answer: the request gets its own.
        status, body = inflight.result(timeout=60)
    assert status == 200 and body["error"]["code"] == "shutting_down", (status, body)
