"""Leases from plain data: terms, admission, the watchdog's verdicts, exit reasons, wire and config."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from foxden import leases
from foxden.config import ConfigError, config_from_overrides, default_config
from foxden.leases.pwserver import server_options
from foxden.protocols import wire
from foxden.protocols.errors import ErrorCode
from foxden.protocols.exits import ExitReason
from foxden.supervisor import watchdog
from foxden.supervisor.children import Child, ChildState, IllegalTransition, LeaseRecord

LIMITS = watchdog.Limits(heartbeat_timeout_s=5.0, kill_grace_s=0.25, launch_timeout_s=30.0, close_timeout_s=3.0,
                         missed_pings_limit=4)


def _leased(now: float, *, ttl: float = 10.0, idle: float = 5.0, clients: int = 0, idle_for: float = 0.0) -> Child:
    child = Child(id="b7", addr=None, marker="i/b7/", tmpdir="/x", created=now - 1, started_at=0.0,
                  browser_pids=(4242,), lease=LeaseRecord("lease-1", "", ttl, idle))
    child.move(ChildState.LEASED, strict=True)
    child.last_pong = now
    child.lease.expires, child.lease.clients, child.lease.idle_for, child.lease.idle_seen = (
        now + ttl, clients, idle_for, now)
    return child


def test_terms_default_to_the_config_and_refuse_above_the_bounds_naming_the_field():
    cfg = default_config().leases
    assert leases.decide_terms(cfg, None, None) == leases.LeaseTerms(cfg.ttl_s, cfg.idle_s)
    assert leases.decide_terms(cfg, 5.0, 2.0) == leases.LeaseTerms(5.0, 2.0)
    for ttl, idle, field in ((cfg.max_ttl_s + 1, None, "ttl_s"), (None, cfg.max_idle_s + 1, "idle_s")):
        with pytest.raises(leases.LeaseRefused) as refused:
            leases.decide_terms(cfg, ttl, idle)
        assert refused.value.code is ErrorCode.BAD_FIELD and refused.value.message.startswith(field + ":")


def test_admission_refuses_at_max_and_when_memory_holds_browsers_back():
    leases.admit(1, 2, None)
    with pytest.raises(leases.LeaseRefused) as refused:
        leases.admit(2, 2, None)
    assert refused.value.code is ErrorCode.TOO_MANY_LEASES and "[leases] max is 2" in refused.value.message
    with pytest.raises(leases.LeaseRefused) as refused:
        leases.admit(0, 2, "held back: 100 MiB available")
    assert refused.value.code is ErrorCode.LEASE_HELD_BACK and "100 MiB" in refused.value.message


def test_the_watchdog_ends_a_lease_at_its_ttl_and_after_idle_seconds_without_a_client():
    now = 1000.0
    assert isinstance(watchdog.verdict(_leased(now), "running", now, LIMITS), watchdog.SendPing)
    expired = watchdog.verdict(_leased(now, ttl=10.0), "running", now + 10.0, LIMITS)
    assert expired == watchdog.Kill(ExitReason.LEASE_EXPIRED, "lease lease-1: its ttl passed")
    # Idle is counted on from the browser's last reading, between two pongs too.
    idle = watchdog.verdict(_leased(now, idle=5.0, idle_for=3.0), "running", now + 2.0, LIMITS)
    assert isinstance(idle, watchdog.Kill) and idle.reason is ExitReason.LEASE_IDLE
    assert isinstance(watchdog.verdict(_leased(now, idle=5.0, idle_for=3.0), "running", now + 1.9, LIMITS),
                      watchdog.SendPing)
    # A connected client keeps it, however long ago its last reading.
    assert isinstance(watchdog.verdict(_leased(now, idle=5.0, clients=1), "running", now + 9.0, LIMITS),
                      watchdog.SendPing)
    # Its browser gone: a crash, as for a pool browser.
    assert watchdog.verdict(_leased(now), "gone", now, LIMITS).reason is ExitReason.CRASH


def test_a_leased_child_only_ends_it_is_never_offered_for_jobs():
    child = _leased(0.0)
    for to in (ChildState.IDLE, ChildState.BUSY):
        with pytest.raises(IllegalTransition):
            child.move(to, strict=True)
    child.move(ChildState.STOPPING, strict=True)
    assert "secret" not in child.lease_row() and set(child.lease_row()) >= {
        "id", "browser", "engine", "started_at", "expires_at", "connected"}


@pytest.mark.parametrize("reason", [ExitReason.LEASE_EXPIRED, ExitReason.LEASE_IDLE, ExitReason.LEASE_ENDED])
def test_a_lease_end_retries_nothing_and_costs_no_restart_intensity(reason):
    assert reason.ends_lease and reason.is_normal
    assert not reason.retries_job and not reason.counts_toward_intensity and not reason.is_retirement
    assert not ExitReason.CRASH.ends_lease


def test_lease_messages_round_trip_and_a_bad_field_is_named():
    for msg in (wire.Lease(1), wire.Lease(2, "firefox", 5.0, 2.5),
                wire.Leased(3, "lease-1", "chromium", "ws://127.0.0.1:1/s", 12.5),
                wire.Leased(4, "lease-2", "firefox", "ws://127.0.0.1:1/s", 12.5, "1.62.0"),
                wire.EndLease(5, "lease-1"), wire.LeaseEnded(6, "lease-1", True)):
        assert wire.decode_body(wire.encode(msg)[4:]) == msg
    import msgpack

    for body, field in (({"v": 1, "type": "lease", "rid": 1, "engine": "opera"}, "engine"),
                        ({"v": 1, "type": "lease", "rid": 1, "ttl_s": -1}, "ttl_s"),
                        ({"v": 1, "type": "end_lease", "rid": 1, "lease": ""}, "lease")):
        with pytest.raises(wire.ProtocolError) as bad:
            wire.decode_body(msgpack.packb(body))
        assert bad.value.code == ErrorCode.BAD_FIELD and str(bad.value).startswith(f"bad_field: {field}:")


def test_leases_config_is_validated_naming_the_key():
    base = Path("/tmp")
    assert config_from_overrides({"leases": {"max": 0}}, base_dir=base).leases.max == 0
    for table, key in (({"ttl_s": 7200.0}, "leases.ttl_s"), ({"idle_s": 0}, "leases.idle_s"),
                       ({"max": -1}, "leases.max"), ({"max_ttl_s": "x"}, "leases.max_ttl_s")):
        with pytest.raises(ConfigError) as bad:
            config_from_overrides({"leases": table}, base_dir=base)
        assert f"[leases] {key.split('.')[1]}:" in str(bad.value)


def test_the_playwright_server_listens_on_loopback_under_its_own_secret():
    opts = server_options({"executable_path": "/usr/bin/firefox", "firefox_user_prefs": {"a": 1},
                           "env": {"N": 1}, "channel": None}, "s3cret")
    assert opts == {"executablePath": "/usr/bin/firefox", "firefoxUserPrefs": {"a": 1}, "env": {"N": "1"},
                    "host": "127.0.0.1", "port": 0, "wsPath": "/s3cret"}


def test_secrets_are_unguessable_and_the_endpoint_carries_one():
    assert len({leases.new_secret() for _ in range(100)}) == 100 and len(leases.new_secret()) >= 43
    assert leases.endpoint_url("127.0.0.1", 9, "abc") == "ws://127.0.0.1:9/abc"
    assert leases.endpoint_url("::1", 9, "abc") == "ws://[::1]:9/abc"
    assert dataclasses.fields(LeaseRecord)[1].name == "secret"
