"""The one error registry: every code documented, none built elsewhere, results capped before they travel."""
from __future__ import annotations

import ast
import asyncio
import pickle
import re
import threading
from pathlib import Path

import pytest

from foxden import AsyncClient
from foxden.transport import unpickle as safepickle
from foxden.client import (
    BrokenByDaemonError,
    ClientError,
    ClosedByCallerError,
    TimedOutError,
    UnreachableError,
)
from foxden.drivers import results
from foxden.protocols import wire
from foxden.protocols.messages import Outcome
from foxden.protocols.errors import ErrorCode, Kind, Where

ROOT = Path(__file__).resolve().parent.parent
# The names that take an error code; a str literal in their code position is a code built outside the registry.
CODE_TAKERS = {"ErrorInfo": 0, "ErrorReply": 1, "ProtocolError": 0}
STATUSES = {"ok", "failed", "timeout", "rejected"}


def documented_codes() -> dict[str, tuple[str, str]]:
    """code -> (in, kind) from the table under "## Error codes" in docs/protocol.md."""
    text = (ROOT / "docs" / "protocol.md").read_text()
    section = text.split("## Error codes", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z_]+)` +\| (\w+) +\| (\w+) +\|", section, re.M)
    return {code: (where, kind) for code, where, kind in rows}


def codes_built_outside_the_registry(source: str) -> list[tuple[int, str]]:
    """(line, code) of every error code written as a literal where an error is made:
    ErrorInfo/ErrorReply/ProtocolError("code", ...), a registered code in a
    (code, message) or (status, code, message) tuple, or a {"code": "..."} map."""
    known = {c.value for c in ErrorCode}
    found = []
    for node in ast.walk(ast.parse(source)):
        literal = None
        if isinstance(node, ast.Call):
            name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
            at = CODE_TAKERS.get(name)
            if at is not None and len(node.args) > at:
                literal = node.args[at]
            literal = next((k.value for k in node.keywords if k.arg == "code"), literal)
            # Any other call handed a code by hand (a helper that takes a code: self._end(conn, "x", ...)).
            literal = literal or next((a for a in node.args if isinstance(a, ast.Constant)
                                       and a.value in known - STATUSES), None)
        elif isinstance(node, ast.Tuple) and len(node.elts) in (2, 3):
            # (code, message) or (status, code, message)
            *status, first, second = node.elts
            if isinstance(first, ast.Constant) and first.value in known and \
                    all(isinstance(s, ast.Constant) and s.value in STATUSES for s in status) and \
                    not (isinstance(second, ast.Constant) and second.value in known | STATUSES):
                literal = first
        elif isinstance(node, ast.Dict):
            literal = next((v for k, v in zip(node.keys, node.values)
                            if isinstance(k, ast.Constant) and k.value == "code"), None)
        if isinstance(literal, ast.Constant) and isinstance(literal.value, str):
            found.append((node.lineno, literal.value))
    return found


def test_every_error_code_is_documented_once_with_its_kind_and_place():
    docs = documented_codes()
    assert set(docs) == {c.value for c in ErrorCode}, set(docs) ^ {c.value for c in ErrorCode}
    for code in ErrorCode:
        assert docs[code.value] == (code.where.value, code.kind.value), code


def test_the_codes_other_parts_answer_with_are_registered():
    for value in ("result_too_large", "internal_error", "blocked_target", "bad_input", "too_many_sessions",
                  "unknown_session", "session_ended", "too_many_requests"):
        assert ErrorCode(value).meaning


def test_nothing_in_foxden_builds_an_error_code_outside_the_registry():
    found = {}
    for path in sorted((ROOT / "foxden").rglob("*.py")):
        if path.name == "errors.py" and path.parent.name == "protocols":
            continue
        hits = codes_built_outside_the_registry(path.read_text())
        if hits:
            found[str(path.relative_to(ROOT))] = hits
    assert not found, found


@pytest.mark.parametrize("snippet", [
    'error = ("queue_full", f"{n} jobs")',
    'x = wire.ErrorReply(rid, "unauthorized", "no")',
    'raise ProtocolError("bad_field", "v: bad")',
    'y = ErrorInfo(code="timeout", message="late")',
    'z = {"code": "bad_input", "message": "line 1"}',
    'return "rejected", "queue_full", "too many"',
    'error = ("session_lost", self.why(session))',
    'self._end(conn, "frame_too_large", "more than 16 KiB before the hello")',
])
def test_the_registry_check_finds_a_code_written_by_hand(snippet):
    assert codes_built_outside_the_registry(snippet), snippet


def test_a_code_becomes_a_plain_string_on_the_wire_and_between_actors():
    info = ErrorCode.QUEUE_FULL.error("9 queued")
    assert info == wire.ErrorInfo("queue_full", "9 queued") and type(info.code) is str
    reply = ErrorCode.UNAUTHORIZED.reply(3, "no")
    assert type(reply.code) is str and wire.decode_body(wire.encode(reply)[4:]) == reply
    # The allow-list unpickler knows wire's classes, not the enum: nothing pickled may name it.
    crossing = Outcome("failed", error=ErrorCode.BAD_SELECTOR.error("'##' is not a selector"))
    back = safepickle.loads(pickle.dumps(crossing))
    assert (back.error.code, type(back.error.code)) == ("bad_selector", str)
    err = wire.ProtocolError(ErrorCode.BAD_FIELD, "job.url: no", rid=7)
    assert (err.code, err.rid, type(err.code)) == ("bad_field", 7, str)
    assert f"{ErrorCode.BAD_URL}" == str(ErrorCode.BAD_URL) == "bad_url"


def test_a_protocol_error_with_an_unregistered_code_is_refused():
    with pytest.raises(ValueError, match="made_up"):
        wire.ProtocolError("made_up", "nothing")


def test_each_code_says_whose_fault_it_is():
    assert ErrorCode.TIMEOUT.kind is Kind.TIMEOUT and ErrorCode.INTERNAL_ERROR.kind is Kind.DAEMON
    assert ErrorCode.QUEUE_FULL.kind is Kind.BUSY and ErrorCode.BAD_URL.kind is Kind.CLIENT
    assert ErrorCode.BAD_FRAME.where is Where.FRAME and ErrorCode.SESSION_LOST.where is Where.ANSWER


def _outcome(eval_value=None, screenshot=None):
    return results.page_outcome(final_url="http://x.test/", http_status=200, title="t", content_length=1,
                                value=eval_value, screenshot=screenshot)


def test_a_result_above_the_cap_is_answered_result_too_large_and_one_at_the_cap_is_kept():
    ok = _outcome("x" * 1000)
    size = results.encoded_size(ok.result)
    assert results.capped(ok, size) is ok
    refused = results.capped(ok, size - 1)
    assert refused.status == "failed" and refused.result is None
    assert refused.error.code == "result_too_large" and str(size) in refused.error.message
    shot = _outcome(screenshot=b"\x89PNG" + bytes(5000))
    assert results.capped(shot, 4000).error.code == "result_too_large"


@pytest.mark.browser
def test_a_daemon_answers_a_too_large_eval_result_failed_and_keeps_its_browser(make_daemon, site):
    d = make_daemon({"pool": {"size": 1}, "jobs": {"max_result_mb": 1}})
    with d.client(timeout=60) as c:
        big = c.submit(site.url("/"), eval="'x'.repeat(2 * 1024 * 1024)")
        small = c.submit(site.url("/"), eval="'x'.repeat(1000).length")
    assert big.status == "failed" and big.error.code == "result_too_large", big
    assert "[jobs] max_result_mb" in big.error.message
    assert small.status == "ok" and small.result.eval == 1000 and small.browser == big.browser
    st = d.status()
    assert st["errors"] == {"result_too_large": 1} and st["restarts"] == 0 and st["invariants"]["ok"]


# --- client errors say who ended the request ------------------------------------------------

HANG = "new Promise(() => {})"  # an eval that never settles: only the watchdog (or the caller) ends it


def _sync_submit_in_thread(client, url):
    """Submit on a thread; returns (thread, box): box["error"] is what the submit raised."""
    box: dict = {}

    def run():
        try:
            box["answer"] = client.submit(url, eval=HANG, timeout_s=120)
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            box["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, box


def _wait_submitted(daemon, n):
    daemon.wait_until(lambda s: s["totals"]["submitted"] >= n, timeout=30, interval=0.05)


@pytest.mark.browser
def test_client_errors_say_the_caller_closed_it_or_it_timed_out(make_daemon, site):
    d = make_daemon({"pool": {"size": 2}, "daemon": {"grace_s": 1.0}})
    url = site.url("/")
    # Sync: closed by this program (from another thread) while a request waits, and after.
    c = d.client()
    t, box = _sync_submit_in_thread(c, url)
    _wait_submitted(d, 1)
    c.close()
    t.join(10)
    assert isinstance(box.get("error"), ClosedByCallerError), box
    with pytest.raises(ClosedByCallerError):
        c.ping()
    # Sync: no answer within the client's timeout.
    with d.client(timeout=0.5) as slow:
        with pytest.raises(TimedOutError, match="0.5s") as caught:
            slow.submit(url, eval=HANG, timeout_s=120)
    assert isinstance(caught.value, TimeoutError) and isinstance(caught.value, ClientError)

    async def main():
        ac = AsyncClient.from_config(d.config)
        await ac.connect()
        job = asyncio.create_task(ac.submit(url, eval=HANG, timeout_s=120))
        while (await ac.status())["totals"]["submitted"] < 3:
            await asyncio.sleep(0.05)
        await ac.close()
        with pytest.raises(ClosedByCallerError):
            await asyncio.wait_for(job, 10)
        with pytest.raises(ClosedByCallerError):
            await ac.ping()
        async with AsyncClient.from_config(d.config, timeout=0.5) as quick:
            with pytest.raises(TimedOutError, match="0.5s"):
                await quick.submit(url, eval=HANG, timeout_s=120)
            await quick.ping()  # a timeout leaves the connection usable

    asyncio.run(main())


@pytest.mark.browser
def test_client_errors_say_the_daemon_broke_it_when_the_daemon_is_killed(make_daemon, site):
    d = make_daemon({"pool": {"size": 2}})
    d.expect_failure = True  # SIGKILLed on purpose
    url = site.url("/")
    sync_client = d.client()
    t, box = _sync_submit_in_thread(sync_client, url)

    async def main():
        async with AsyncClient.from_config(d.config) as ac:
            job = asyncio.create_task(ac.submit(url, eval=HANG, timeout_s=120))
            while (await ac.status())["totals"]["submitted"] < 2:
                await asyncio.sleep(0.05)
            # What an OOM kill does: every process of the daemon dies at once.
            d.proc.kill()
            d.kill_leftovers()
            with pytest.raises(BrokenByDaemonError, match="closed the connection|broke"):
                await asyncio.wait_for(job, 10)
            with pytest.raises(BrokenByDaemonError):
                await ac.ping()

    asyncio.run(main())
    t.join(10)
    sync_client.close()
    assert isinstance(box.get("error"), BrokenByDaemonError), box
    assert "closed the connection" in str(box["error"]) or "broke" in str(box["error"])
    with pytest.raises(UnreachableError):
        d.client()
