"""A child's states and their allowed transitions (after supervisord's states.py), without actors."""
from __future__ import annotations

import itertools
import logging

import pytest

from foxden.protocols.exits import ExitReason
from foxden.supervisor.children import STRICT_ENV, TRANSITIONS, Child, ChildState, IllegalTransition

S = ChildState
LEGAL = {(S.STARTING, S.IDLE), (S.STARTING, S.STOPPING), (S.IDLE, S.BUSY), (S.IDLE, S.STOPPING),
         (S.BUSY, S.IDLE), (S.BUSY, S.STOPPING),
         (S.STARTING, S.LEASED), (S.LEASED, S.STOPPING)}  # a leased browser: never idle or busy


def child(state: ChildState = S.STARTING) -> Child:
    return Child(id="b1", addr=None, marker="i/b1/", tmpdir="/nonexistent/b1", created=0.0, started_at=0.0,
                 state=state)


def test_the_transition_table_is_exactly_the_documented_one():
    assert {(a, b) for a, tos in TRANSITIONS.items() for b in tos} == LEGAL
    assert set(TRANSITIONS) == set(ChildState)


@pytest.mark.parametrize("src, dst", list(itertools.product(ChildState, ChildState)))
def test_every_move_is_allowed_or_raises_when_strict(src, dst):
    c = child(src)
    if (src, dst) in LEGAL:
        c.move(dst, strict=True)
        assert c.state is dst
    else:
        with pytest.raises(IllegalTransition, match=f"b1: illegal transition {src.value} -> {dst.value}"):
            c.move(dst, strict=True)
        assert c.state is src


def test_stopping_is_final():
    c = child(S.STOPPING)
    for to in ChildState:
        with pytest.raises(IllegalTransition):
            c.move(to, strict=True)


def test_outside_strict_mode_an_illegal_move_is_logged_as_an_error_and_made(caplog, monkeypatch):
    monkeypatch.delenv(STRICT_ENV, raising=False)
    c = child(S.IDLE)
    with caplog.at_level(logging.ERROR, logger="foxden.supervisor"):
        c.move(S.STARTING)
    assert c.state is S.STARTING
    assert "illegal transition idle -> starting" in caplog.text


def test_strict_mode_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(STRICT_ENV, "1")
    with pytest.raises(IllegalTransition):
        child(S.BUSY).move(S.STARTING)


def test_the_first_exit_reason_given_wins():
    c = child()
    assert c.end(ExitReason.TIMEOUT, "job j1 overran")
    assert not c.end(ExitReason.SHUTDOWN)
    assert (c.exit_reason, c.exit_detail) == (ExitReason.TIMEOUT, "job j1 overran")


def test_the_snapshot_row_is_plain_data_with_stable_keys():
    row = child(S.IDLE).row(now=2.5, default_engine="chromium")
    assert list(row) == ["id", "pid", "browser_pids", "engine", "version", "state", "job", "job_key", "assigns",
                         "ends", "jobs_done", "started_at", "age_s", "sessions", "pss_sampled"]
    assert type(row["state"]) is str and row["state"] == "idle" and row["engine"] == "chromium"
    assert row["age_s"] == 2.5
