"""The HTTP API's pure parts and the environment config: overrides, OpenAPI drift, kept answers, decisions."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from foxden.config import ConfigError, load_config
from foxden.http import openapi as oa
from foxden.http.app import HttpError, answer_body, parse_json_object
from foxden.http.decide import authorized, http_status, readiness
from foxden.http.keeper import restart_delay
from foxden.http.results import Kept, ResultStore, StoreFull
from foxden.http.settings import HttpSettings
from foxden.protocols import wire

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def conf(tmp_path) -> Path:
    path = tmp_path / "foxden.toml"
    path.write_text('[pool]\nsize = 3\n[daemon]\nstate_dir = "state"\n')
    return path


def load_error(path: Path, env: dict) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=env)
    return str(info.value)


# --- FOXDEN_<SECTION>_<KEY> ------------------------------------------------------

def test_env_overrides_win_over_the_file_and_are_typed(conf):
    cfg = load_config(conf, environ={
        "FOXDEN_POOL_SIZE": "5",                       # int
        "FOXDEN_JOBS_ALLOW_PRIVATE": "false",          # bool
        "FOXDEN_POOL_ARGS": '["--lang=de", "--a,b"]',  # a list: TOML/JSON array syntax (commas stay inside items)
        "FOXDEN_JOBS_TIMEOUT_S": "2.5",                # float
        "FOXDEN_DAEMON_TOKEN": "12345",                # text keys are never parsed: a number stays a string
        "FOXDEN_HTTP_PORT": "8080",
        "FOXDEN_CONFIG": "elsewhere.toml", "FOXDEN_OWNER": "x", "FOXDEN_CHAOS_SEED": "1",  # not config: ignored
    })
    assert cfg.pool.size == 5 and cfg.jobs.allow_private is False and cfg.pool.args == ("--lang=de", "--a,b")
    assert cfg.jobs.timeout_s == 2.5 and cfg.daemon.token == "12345" and cfg.http.port == 8080
    assert load_config(conf, environ={}).pool.size == 3


def test_env_bad_value_names_the_variable(conf):
    msg = load_error(conf, {"FOXDEN_POOL_SIZE": "many"})
    assert "FOXDEN_POOL_SIZE=\"many\"" in msg and "[pool] size" in msg and "must be an integer" in msg, msg
    msg = load_error(conf, {"FOXDEN_JOBS_ALLOW_PRIVATE": "yes"})
    assert "FOXDEN_JOBS_ALLOW_PRIVATE" in msg and "must be true or false" in msg, msg
    msg = load_error(conf, {"FOXDEN_POOL_ARGS": "--lang=de"})
    assert "FOXDEN_POOL_ARGS" in msg and "list of strings" in msg, msg


def test_env_unknown_key_is_refused_by_name(conf):
    msg = load_error(conf, {"FOXDEN_POOL_SIZ": "2"})
    assert "FOXDEN_POOL_SIZ" in msg and "unknown key 'siz'" in msg and "FOXDEN_POOL_SIZE" in msg, msg


def test_http_host_off_loopback_needs_the_token(conf):
    msg = load_error(conf, {"FOXDEN_HTTP_HOST": "0.0.0.0"})
    assert "[http] host" in msg and "[daemon] token" in msg, msg
    cfg = load_config(conf, environ={"FOXDEN_HTTP_HOST": "0.0.0.0", "FOXDEN_DAEMON_TOKEN": "s"})
    assert cfg.http.host == "0.0.0.0"
    assert load_config(conf, environ={"FOXDEN_HTTP_HOST": "::1"}).http.host == "::1"
    assert "must be an IP address" in load_error(conf, {"FOXDEN_HTTP_HOST": "example.com"})


def test_http_max_inflight_fits_one_daemon_connection(conf):
    msg = load_error(conf, {"FOXDEN_HTTP_MAX_INFLIGHT": "300"})
    assert "[http] max_inflight" in msg or "FOXDEN_HTTP_MAX_INFLIGHT" in msg
    assert "[daemon] max_inflight_per_connection" in msg, msg
    # Lowering the daemon's cap alone is no error: the HTTP default follows it.
    assert load_config(conf, environ={"FOXDEN_DAEMON_MAX_INFLIGHT_PER_CONNECTION": "50"}).http.max_inflight == 50


# --- OpenAPI from the wire's tables ---------------------------------------------------

def props(doc: dict, name: str) -> set[str]:
    return set(doc["components"]["schemas"][name]["properties"])


def test_openapi_job_and_answer_fields_are_the_wires():
    doc = oa.openapi("x")
    assert doc["openapi"].startswith("3.1")
    assert props(doc, "JobRequest") == {f.name for f in dataclasses.fields(wire.JobRequest)} == set(wire._JOB.names)
    assert doc["components"]["schemas"]["JobRequest"]["required"] == ["url"]
    for cls in (wire.Answer, wire.PageResult, wire.ErrorInfo):
        assert props(doc, cls.__name__) == {f.name for f in dataclasses.fields(cls)}, cls
    json.dumps(doc)  # JSON all the way down


def test_a_field_added_to_the_job_appears_with_no_edit(monkeypatch):
    @dataclasses.dataclass(frozen=True)
    class JobRequest(wire.JobRequest):
        block: tuple[str, ...] = ()

    checks = {name: check for name, _, check in wire._JOB.fields}
    monkeypatch.setattr(wire, "JobRequest", JobRequest)
    monkeypatch.setattr(wire, "_JOB", wire._spec(JobRequest, {**checks, "block": wire._text_list(10, 100)}))
    schema = oa.openapi("x")["components"]["schemas"]["JobRequest"]
    assert schema["properties"]["block"] == {"type": "array", "items": {"type": "string"}, "default": []}


# --- kept answers -------------------------------------------------------------------

def test_result_store_keeps_answers_for_their_ttl_and_refuses_beyond_capacity():
    store = ResultStore(ttl_s=10, capacity=2)
    assert store.reserve("a", now=0) and not store.reserve("a", now=0)
    assert store.get("a", now=1000)[0] is Kept.PENDING  # a pending job never expires: its answer will come
    store.answer("a", 200, {"id": "a"}, now=5)
    assert store.get("a", now=14.9) == (Kept.DONE, 200, {"id": "a"})
    assert store.reserve("b", now=6)
    with pytest.raises(StoreFull):
        store.reserve("c", now=6)
    assert store.get("a", now=15)[0] is Kept.UNKNOWN  # expired
    assert store.reserve("c", now=15)


# --- decisions ------------------------------------------------------------------------

def test_http_statuses_of_codes():
    assert [http_status(c) for c in ("unauthorized", "bad_field", "bad_json", "too_many_requests", "not_found",
                                     "duplicate_id", "body_too_large", "daemon_unreachable", "no_such_code")] == \
        [401, 400, 400, 429, 404, 409, 413, 503, 502]


def test_readiness_reasons():
    ok = {"pool": {"state": "running"}, "queue": {"depth": 0}, "draining": False}
    assert readiness(ok, max_queue=5) is None
    assert "given up" in readiness({**ok, "pool": {"state": "failed"}}, 5)
    assert "queue is full" in readiness({**ok, "queue": {"depth": 5}}, 5)
    assert readiness({**ok, "draining": True}, 5) == "shutting down"


def test_authorization_is_bearer_token_only():
    assert authorized(None, None) and authorized("anything", None)
    assert authorized("Bearer s3cret", "s3cret") and authorized("bearer s3cret", "s3cret")
    for header in (None, "", "Bearer", "Bearer s3cre", "Bearer s3cretX", "Basic s3cret", "s3cret", "Bearer ü"):
        assert not authorized(header, "s3cret"), header


def test_json_bodies_are_parsed_strictly():
    assert parse_json_object(b'{"url": "about:blank"}') == {"url": "about:blank"}
    for body, words in ((b"[1]", "expected one JSON object"), (b'{"url": 1, "url": 2}', "appears twice"),
                        (b'{"timeout_s": NaN}', "NaN"), (b"\xff", "not one JSON object"), (b"{", "not one JSON")):
        with pytest.raises(HttpError) as info:
            parse_json_object(body)
        assert info.value.code == "bad_json" and words in info.value.message, (body, info.value.message)


def test_answers_are_submit_json_and_binary_only_on_request():
    result = wire.PageResult("about:blank", None, "", 0, screenshot=b"\x89PNG")
    answer = wire.Answer("j", "ok", None, result, 1, "b1", 3.0)
    assert answer_body(answer, binary=False) == answer.to_json_dict()
    assert answer_body(answer, binary=True)["result"]["screenshot"] == "iVBORw=="


def test_settings_hide_the_token_and_round_trip():
    s = HttpSettings(socket="/s", token="sekrit", listen_fd=3, parent_pid=1)
    assert "sekrit" not in repr(s) and HttpSettings.from_json(s.to_json()) == s


def test_restart_backoff_doubles_to_a_cap():
    assert [restart_delay(n) for n in (1, 2, 3)] == [0.1, 0.2, 0.4] and restart_delay(50) == 5.0


def test_result_store_forgets_the_oldest_answers_beyond_its_bytes_but_never_a_pending_one():
    store = ResultStore(ttl_s=100, capacity=10, max_bytes=100)
    for job_id in ("a", "b", "p", "c"):
        store.reserve(job_id, now=0)
    store.answer("a", 200, {"id": "a"}, now=1, size=60)
    store.answer("b", 200, {"id": "b"}, now=2, size=30)
    assert store.bytes == 90 and store.evicted == 0
    store.answer("c", 200, {"id": "c"}, now=3, size=50)  # 140 > 100: "a", the oldest answer, goes
    assert [store.get(k, now=4)[0] for k in "abpc"] == [Kept.UNKNOWN, Kept.DONE, Kept.PENDING, Kept.DONE]
    assert store.bytes == 80 and store.evicted == 1
    store.answer("p", 200, {"id": "p"}, now=5, size=500)  # alone above the budget: the newest is kept
    assert store.get("p", now=6)[0] is Kept.DONE and store.bytes == 500
