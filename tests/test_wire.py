"""Tests for foxden.protocols.wire: framing, round trips and strict decoding of the client protocol."""
from __future__ import annotations

import pickle
import re
import socket
from pathlib import Path

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from foxden.protocols.wire import (
    MAX_FRAME,
    MAX_REPLY_FRAME,
    PROTOCOL_VERSION,
    Answer,
    ErrorInfo,
    ErrorReply,
    FrameDecoder,
    Hello,
    JobRequest,
    PageResult,
    Ping,
    Pong,
    ProtocolError,
    Result,
    StatusReply,
    StatusRequest,
    Submit,
    Welcome,
    decode_body,
    encode,
    read_frame,
)

REPO_ROOT = Path(__file__).resolve().parent.parent

OK_ANSWER = Answer(
    id="job-1", status="ok", error=None,
    result=PageResult(final_url="https://example.com/", http_status=200, title="Example", content_length=1256,
                      eval={"n": [1, 2.5, None, True, "x"]}, screenshot=b"\x89PNG\r\n"),
    attempts=1, browser="b1", elapsed_ms=812.5,
)
FAILED_ANSWER = Answer(id="job-2", status="failed", error=ErrorInfo("navigation", "net::ERR_NAME_NOT_RESOLVED"),
                       result=None, attempts=3, browser=None, elapsed_ms=0.0)

EVERY_MESSAGE = [
    Hello(),
    Hello(token="s3cret", client="foxden-cli/0.1"),
    Welcome(server="foxden/0.1.0", protocol=PROTOCOL_VERSION, instance="0f3a"),
    Submit(rid=0, job=JobRequest(url="https://example.com/")),
    Submit(rid=(1 << 63) - 1, job=JobRequest(
        url="https://example.com/a", id="a", eval="document.title", wait_for="#main", timeout_s=12.5,
        session="s", new_session=True, screenshot=True)),
    Result(rid=7, answer=OK_ANSWER),
    Result(rid=8, answer=FAILED_ANSWER),
    Result(rid=9, answer=Answer(id="j", status="ok", error=None, attempts=1, browser="b2", elapsed_ms=3.0,
                                result=PageResult("about:blank", None, "", 0))),
    StatusRequest(rid=3),
    StatusReply(rid=3, status={"pool": {"size": 2, "browsers": [{"id": "b1", "state": "idle"}]}, "ok": True}),
    Ping(rid=4),
    Pong(rid=4),
    ErrorReply(rid=5, code="bad_field", message="job.url: expected a string"),
    ErrorReply(rid=None, code="unauthorized", message="a token is required"),
]


def body(m: dict) -> bytes:
    return msgpack.packb(m, use_bin_type=True)


def frame(m: dict | bytes) -> bytes:
    b = m if isinstance(m, bytes) else body(m)
    return len(b).to_bytes(4, "big") + b


def submit_map(**job) -> dict:
    return {"v": 1, "type": "submit", "rid": 42, "job": {"url": "https://example.com/", **job}}


def error_for(m: dict | bytes) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        decode_body(m if isinstance(m, bytes) else body(m))
    assert not info.value.fatal
    return info.value


# --- round trips -------------------------------------------------------------

@pytest.mark.parametrize("msg", EVERY_MESSAGE, ids=lambda m: type(m).__name__)
def test_round_trip(msg):
    data = encode(msg)
    assert int.from_bytes(data[:4], "big") == len(data) - 4
    decoder = FrameDecoder(MAX_REPLY_FRAME)
    assert decoder.feed(data) == [msg]
    assert decoder.pending() == 0


def test_round_trip_one_byte_at_a_time():
    stream = b"".join(encode(m) for m in EVERY_MESSAGE)
    decoder = FrameDecoder()
    out = []
    for i in range(len(stream)):
        out += decoder.feed(stream[i:i + 1])
    assert out == EVERY_MESSAGE
    assert decoder.pending() == 0


def test_several_frames_in_one_feed_and_a_partial_tail():
    stream = b"".join(encode(m) for m in EVERY_MESSAGE)
    tail = encode(Ping(rid=99))
    decoder = FrameDecoder()
    assert decoder.feed(stream + tail[:5]) == EVERY_MESSAGE
    assert decoder.pending() == 5
    assert decoder.feed(memoryview(tail)[5:]) == [Ping(rid=99)]
    assert decoder.pending() == 0


def test_encode_leaves_defaults_out():
    assert msgpack.unpackb(encode(Submit(rid=1, job=JobRequest(url="u")))[4:]) == {
        "v": 1, "type": "submit", "rid": 1, "job": {"url": "u"}}
    # Required fields go out even when nil.
    assert msgpack.unpackb(encode(ErrorReply(rid=None, code="c", message=""))[4:]) == {
        "v": 1, "type": "error", "rid": None, "code": "c", "message": ""}


def test_whole_numbers_are_accepted_where_floats_are_expected():
    msg = decode_body(body(submit_map(timeout_s=30)))
    assert msg.job.timeout_s == 30.0 and type(msg.job.timeout_s) is float


def test_nil_means_default_only_where_the_type_allows_nil():
    assert decode_body(body(submit_map(id=None, session=None))).job == JobRequest(url="https://example.com/")
    e = error_for(submit_map(screenshot=None))
    assert (e.code, e.message) == ("bad_field", "job.screenshot: expected true or false, got None")


def test_answer_json_dict():
    assert OK_ANSWER.to_json_dict() == {
        "id": "job-1", "status": "ok", "error": None,
        "result": {"final_url": "https://example.com/", "http_status": 200, "title": "Example",
                   "content_length": 1256, "eval": {"n": [1, 2.5, None, True, "x"]}, "blocked": [],
                   "html": None, "response_headers": None},
        "attempts": 1, "browser": "b1", "elapsed_ms": 812.5,
    }
    assert FAILED_ANSWER.to_json_dict()["error"] == {"code": "navigation", "message": "net::ERR_NAME_NOT_RESOLVED"}
    assert FAILED_ANSWER.to_json_dict()["result"] is None


def test_docs_hex_example_is_what_encode_produces():
    doc = (REPO_ROOT / "docs" / "protocol.md").read_text()
    hex_block = re.search(r"```hex\n(.*?)```", doc, re.S).group(1)
    assert bytes.fromhex(hex_block) == encode(Submit(rid=1, job=JobRequest(url="http://127.0.0.1/")))


# --- errors ------------------------------------------------------------------

@pytest.mark.parametrize("data, fragment", [
    (b"\xc1", "not a msgpack value"),                     # reserved byte
    (b"\xa3ab", "not a msgpack value"),                    # truncated string
    (b"\xa1\xff", "not a msgpack value"),                  # not UTF-8
    (body({"v": 1}) + b"\x00", "not a msgpack value"),     # trailing bytes
    (b"", "not a msgpack value"),
    (body([1, "submit"]), "must be a map"),
    (body({1: 2}), "not a msgpack value"),                 # non-string key
    (msgpack.packb({"v": 1, "type": "ping", "rid": msgpack.ExtType(5, b"x")}), "extension type 5"),
])
def test_bad_frame(data, fragment):
    e = error_for(data)
    assert e.code == "bad_frame"
    assert fragment in e.message
    assert e.rid is None


def test_unsupported_version():
    e = error_for({"v": 2, "type": "ping", "rid": 1})
    assert (e.code, e.rid) == ("unsupported_version", 1)
    assert e.message.startswith("v: protocol version 2 ")


def test_unknown_type():
    e = error_for({"v": 1, "type": "launch", "rid": 1})
    assert (e.code, e.message, e.rid) == ("unknown_type", "type: unknown message type 'launch'", 1)


@pytest.mark.parametrize("m, field", [
    ({"type": "ping", "rid": 1}, "v"),
    ({"v": 1, "rid": 1}, "type"),
    ({"v": 1, "type": "ping"}, "rid"),
    ({"v": 1, "type": "submit", "rid": 1}, "job"),
    ({"v": 1, "type": "submit", "rid": 1, "job": {}}, "job.url"),
    ({"v": 1, "type": "result", "rid": 1, "answer": {"id": "x"}}, "answer.status"),
])
def test_missing_field(m, field):
    e = error_for(m)
    assert (e.code, e.message) == ("missing_field", f"{field}: required field is missing")


@pytest.mark.parametrize("job, message", [
    ({"timeout_s": "x"}, "job.timeout_s: expected a finite number > 0, got 'x'"),
    ({"timeout_s": 0}, "job.timeout_s: expected a finite number > 0, got 0"),
    ({"timeout_s": -1.5}, "job.timeout_s: expected a finite number > 0, got -1.5"),
    ({"timeout_s": float("nan")}, "job.timeout_s: expected a finite number > 0, got nan"),
    ({"timeout_s": float("inf")}, "job.timeout_s: expected a finite number > 0, got inf"),
    ({"timeout_s": True}, "job.timeout_s: expected a finite number > 0, got True"),
    ({"url": ""}, "job.url: expected a string of 1..8192 characters, got ''"),
    ({"url": "u" * 8193}, "job.url: expected a string of 1..8192 characters, got '" + "u" * 60 + "'..."),
    ({"url": b"https://x/"}, "job.url: expected a string of 1..8192 characters, got b'https://x/'"),
    ({"id": "i" * 257}, "job.id: expected a string of 1..256 characters, got '" + "i" * 60 + "'..."),
    ({"session": ""}, "job.session: expected a string of 1..256 characters, got ''"),
    ({"eval": 3}, "job.eval: expected a string, got 3"),
    ({"wait_for": ["#a"]}, "job.wait_for: expected a string, got a list of 1 items"),
    ({"new_session": 1}, "job.new_session: expected true or false, got 1"),
    ({"screenshot": "yes"}, "job.screenshot: expected true or false, got 'yes'"),
    ({"timeout": 5}, "job.timeout: unknown field"),
])
def test_bad_job_field(job, message):
    e = error_for(submit_map(**job))
    assert (e.code, e.message) == ("bad_field", message)
    assert e.rid == 42


def test_bad_field_keeps_the_rid_and_names_the_field():
    e = error_for({"v": 1, "type": "submit", "rid": 17, "job": "https://example.com/"})
    assert (e.code, e.rid, e.message) == ("bad_field", 17, "job: expected a map, got 'https://example.com/'")
    assert e.to_reply() == ErrorReply(rid=17, code="bad_field", message=e.message)


@pytest.mark.parametrize("rid", [True, False, -1, 1 << 63, 1.0, "1", None])
def test_invalid_rids_are_rejected_and_not_echoed(rid):
    e = error_for({"v": 1, "type": "ping", "rid": rid})
    assert e.code == "bad_field" and e.message.startswith("rid: expected an integer in 0..")
    assert e.rid is None


@pytest.mark.parametrize("m, message", [
    ({"v": 1, "type": "ping", "rid": 1, "extra": 0}, "extra: unknown field"),
    ({"v": 1, "type": "ping", "rid": 1, b"v": 0}, "b'v': unknown field"),
    ({"v": True, "type": "ping", "rid": 1}, "v: expected an integer, got True"),
    ({"v": 1, "type": 3, "rid": 1}, "type: expected a string, got 3"),
    ({"v": 1, "type": "hello", "token": 5}, "token: expected a string, got 5"),
    ({"v": 1, "type": "status_reply", "rid": 1, "status": {b"k": 1}},
     "status: expected a map with string keys, got a map of 1 items"),
])
def test_bad_envelope_and_top_level_fields(m, message):
    e = error_for(m)
    assert (e.code, e.message) == ("bad_field", message)


def answer_map(**changes) -> dict:
    m = {"id": "j", "status": "failed", "error": {"code": "c", "message": "m"}, "result": None,
         "attempts": 1, "browser": None, "elapsed_ms": 1.0}
    m.update(changes)
    return {"v": 1, "type": "result", "rid": 6, "answer": m}


PAGE = {"final_url": "u", "http_status": 200, "title": "", "content_length": 0}


@pytest.mark.parametrize("changes, message", [
    ({"status": "done"}, "answer.status: expected one of 'ok', 'failed', 'timeout', 'rejected', got 'done'"),
    ({"attempts": True}, "answer.attempts: expected an integer in 0..9223372036854775807, got True"),
    ({"elapsed_ms": -1}, "answer.elapsed_ms: expected a finite number >= 0, got -1"),
    ({"error": {"code": "c"}}, None),  # missing_field, checked below
    ({"error": {"code": "c", "message": "m", "x": 1}}, "answer.error.x: unknown field"),
    ({"error": None}, "answer.error: required when status is 'failed'"),
    ({"result": PAGE}, "answer.result: must be nil when status is 'failed'"),
    ({"status": "ok", "error": None}, "answer.result: required when status is 'ok'"),
    ({"status": "ok", "result": PAGE}, "answer.error: must be nil when status is 'ok'"),
    ({"status": "ok", "error": None, "result": {**PAGE, "http_status": True}},
     "answer.result.http_status: expected an integer in 0..999, got True"),
    ({"status": "ok", "error": None, "result": {**PAGE, "content_length": False}},
     "answer.result.content_length: expected an integer in 0..9223372036854775807, got False"),
    ({"status": "ok", "error": None, "result": {**PAGE, "screenshot": "png"}},
     "answer.result.screenshot: expected binary data, got 'png'"),
])
def test_bad_answer(changes, message):
    e = error_for(answer_map(**changes))
    assert e.rid == 6
    if message is None:
        assert (e.code, e.message) == ("missing_field", "answer.error.message: required field is missing")
    else:
        assert (e.code, e.message) == ("bad_field", message)


def test_protocol_error_pickles():
    e = pickle.loads(pickle.dumps(ProtocolError("bad_field", "rid: no", 3)))
    assert (e.code, e.message, e.rid, e.fatal) == ("bad_field", "rid: no", 3, False)


# --- framing -----------------------------------------------------------------

def test_bad_frames_are_reported_inline_and_decoding_continues():
    bad_field = frame({"v": 1, "type": "ping", "rid": 2, "x": 0})
    stream = encode(Ping(rid=1)) + frame(b"\xc1") + bad_field + encode(Pong(rid=3))
    out = FrameDecoder().feed(stream)
    assert out[0] == Ping(rid=1) and out[3] == Pong(rid=3)
    assert (out[1].code, out[1].rid) == ("bad_frame", None)
    assert (out[2].code, out[2].rid) == ("bad_field", 2)


def test_oversize_header_is_fatal_before_the_body_arrives():
    decoder = FrameDecoder()
    out = decoder.feed(encode(Ping(rid=1)) + (MAX_FRAME + 1).to_bytes(4, "big"))
    assert out[0] == Ping(rid=1)
    assert out[1].code == "frame_too_large" and out[1].fatal and out[1].rid is None
    assert str(MAX_FRAME + 1) in out[1].message
    assert decoder.pending() == 0
    with pytest.raises(ProtocolError) as info:
        decoder.feed(encode(Ping(rid=2)))
    assert info.value is out[1]


def test_frame_at_the_limit_is_accepted_and_the_limit_is_per_decoder():
    big = encode(Result(rid=1, answer=Answer(
        id="s", status="ok", error=None, attempts=1, browser="b", elapsed_ms=1.0,
        result=PageResult("u", 200, "t", 0, screenshot=bytes(2 * MAX_FRAME)))))
    assert FrameDecoder().feed(big)[0].code == "frame_too_large"
    assert FrameDecoder(len(big) - 4).feed(big)[0].answer.result.screenshot == bytes(2 * MAX_FRAME)


def test_read_frame():
    a, b = socket.socketpair()
    with a, b:
        a.sendall(encode(Pong(rid=1)) + encode(Welcome("s", 1, "i")))
        assert read_frame(b, MAX_REPLY_FRAME) == Pong(rid=1)
        assert read_frame(b) == Welcome("s", 1, "i")
        a.sendall(frame({"v": 1, "type": "pong"}))
        with pytest.raises(ProtocolError, match="rid: required"):
            read_frame(b)
        a.sendall((100).to_bytes(4, "big"))
        with pytest.raises(ProtocolError) as info:
            read_frame(b, 99)
        assert info.value.code == "frame_too_large" and info.value.fatal
        a.sendall(encode(Pong(rid=2))[:7])
        a.shutdown(socket.SHUT_WR)
        with pytest.raises(ConnectionError, match="mid-frame"):
            read_frame(b)


def test_read_frame_eof_before_any_byte():
    a, b = socket.socketpair()
    with a, b:
        a.shutdown(socket.SHUT_WR)
        with pytest.raises(ConnectionError, match="^connection closed$"):
            read_frame(b)


# --- properties --------------------------------------------------------------

def _feed_all(decoder: FrameDecoder, chunks: list[bytes]) -> None:
    for chunk in chunks:
        try:
            out = decoder.feed(chunk)
        except ProtocolError as e:
            assert e.fatal
            return
        for item in out:
            assert isinstance(item, ProtocolError) or type(item) in {type(m) for m in EVERY_MESSAGE}
            if isinstance(item, ProtocolError):
                assert item.fatal == (item.code == "frame_too_large")


@settings(max_examples=200, deadline=None)  # timing under a loaded CI box is not what is tested
@given(st.lists(st.binary(max_size=64), max_size=8), st.integers(0, 256))
def test_random_bytes_never_raise_anything_but_a_fatal_error(chunks, max_frame):
    _feed_all(FrameDecoder(max_frame), chunks)


# Framed random bodies get past the length check, so they reach the msgpack and field checks.
_FIELD_NAMES = ["v", "type", "rid", "job", "answer", "status", "url", "id", "eval", "timeout_s", "error",
                "result", "code", "message", "token", "http_status", "screenshot", "attempts", "elapsed_ms"]
_scalars = (st.none() | st.booleans() | st.integers(-(1 << 63), (1 << 64) - 1) | st.floats()
            | st.text(max_size=8) | st.binary(max_size=8) | st.sampled_from(["ping", "submit", "result", "ok"]))
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(st.sampled_from(_FIELD_NAMES) | st.text(max_size=3), inner, max_size=6),
                       max_leaves=8)
_TYPES = ["hello", "welcome", "submit", "result", "status", "status_reply", "ping", "pong", "error", "x"]
_maps = st.builds(lambda rest, v, t: {**rest, "v": v, "type": t},
                  st.dictionaries(st.sampled_from(_FIELD_NAMES), _values, max_size=6),
                  st.sampled_from([1, 1, 1, 2, True]), st.sampled_from(_TYPES))


@settings(max_examples=100, deadline=None)  # timing under a loaded CI box is not what is tested
@given(st.lists(_maps.map(frame) | st.binary(max_size=16).map(frame), min_size=1, max_size=4), st.data())
def test_random_frames_decode_to_messages_or_non_fatal_errors(frames, data):
    stream = b"".join(frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=4)))
    chunks = [stream[i:j] for i, j in zip([0, *cuts], [*cuts, len(stream)])]
    decoder = FrameDecoder()
    _feed_all(decoder, chunks)
    assert decoder.pending() == 0


_names = st.none() | st.text(min_size=1, max_size=256)
_jobs = st.builds(
    JobRequest,
    url=st.text(min_size=1, max_size=300),
    id=_names,
    eval=st.none() | st.text(max_size=100),
    wait_for=st.none() | st.text(max_size=100),
    timeout_s=st.none() | st.floats(min_value=0, exclude_min=True, allow_infinity=False),
    session=_names,
    new_session=st.booleans(),
    screenshot=st.booleans(),
)


@settings(max_examples=100, deadline=None)  # timing under a loaded CI box is not what is tested
@given(st.integers(0, (1 << 63) - 1), _jobs)
def test_random_submits_round_trip(rid, job):
    msg = Submit(rid=rid, job=job)
    assert FrameDecoder().feed(encode(msg)) == [msg]
