"""The `foxden` command line: run, stop, submit, batch, cancel, status, session end/export/import, lease,
node drain, demo."""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time

from foxden.config import ConfigError, load_config
from foxden.protocols import wire
from foxden.protocols.errors import ErrorCode

# Exit codes scripts can rely on.
EXIT_OK = 0  # the command did what it was asked; for submit: status == "ok"
EXIT_JOB = 1  # submit: the job's status is not "ok"; batch: some job was not ok; run: failed at runtime
EXIT_USAGE = 2  # bad arguments or configuration, or no usable browser (nothing was started)
EXIT_UNAVAILABLE = 3  # the daemon could not be reached

DEFAULT_CONFIG = "config.toml"
STATUS_TIMEOUT_S = 30.0


def _config(args):
    try:
        return load_config(args.config)
    except ConfigError as exc:
        print(f"foxden: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None


def _client(config, timeout: float | None = None):
    from foxden.client import Client, ClientError

    try:
        return Client.from_config(config, timeout=timeout)
    except ClientError as exc:
        print(f"foxden: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_UNAVAILABLE) from None


# --- run / stop ----------------------------------------------------------------

def cmd_run(args) -> int:
    config = _config(args)
    from foxden import daemon

    daemon.reexec_marked(config)
    return daemon.run(config)


def _daemon_pid(config) -> int | None:
    import psutil

    from foxden import fsafety, procs

    path = os.path.join(str(config.daemon.state_dir), procs.PID_FILE)
    try:
        with open(fsafety.open_nofollow(path, os.O_RDONLY)) as f:
            pid = int(f.read().strip() or 0)
    except (OSError, ValueError, fsafety.UnsafePath):
        return None
    try:
        proc = psutil.Process(pid)
        if procs.alive(proc) and procs.MARKER_ENV in proc.environ():
            return pid
    except psutil.Error:
        pass
    return None  # a stale pid file, or a pid that now belongs to someone else


def _check_state_dir(config) -> None:
    """Exit 2 if the state dir is one another user could change (a pid file there proves nothing)."""
    from foxden import fsafety

    if not os.path.lexists(config.daemon.state_dir):
        return
    try:
        fsafety.check_private_dir(config.daemon.state_dir)
    except fsafety.UnsafePath as exc:
        print(f"foxden: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None


def cmd_stop(args) -> int:
    config = _config(args)
    from foxden import procs

    _check_state_dir(config)
    pid = _daemon_pid(config)
    tag = procs.state_tag(config.daemon.state_dir) + ":"
    if pid is None:
        leftovers: list = []
        survivors = procs.end_instance(tag, config.daemon.state_dir, on_found=leftovers.extend)
        if survivors:
            print(f"foxden: daemon not running; processes survive SIGKILL: {[p.pid for p in survivors]}",
                  file=sys.stderr)
            return EXIT_JOB
        if leftovers:
            print(f"foxden: daemon not running; killed {len(leftovers)} leftover processes", file=sys.stderr)
        else:
            print("foxden: daemon not running", file=sys.stderr)
        return EXIT_OK
    os.kill(pid, signal.SIGTERM)
    limit = config.daemon.grace_s + config.watchdog.close_timeout_s + 60
    deadline = time.monotonic() + limit
    while procs.pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if procs.pid_alive(pid):
        print(f"foxden: daemon {pid} did not stop within {limit:.0f}s; killing it", file=sys.stderr)
    survivors = procs.end_instance(tag, config.daemon.state_dir)
    if survivors:
        print(f"foxden: processes survive: {[p.pid for p in survivors]}", file=sys.stderr)
        return EXIT_JOB
    print(f"foxden: stopped (pid {pid})", file=sys.stderr)
    return EXIT_OK


# --- jobs ----------------------------------------------------------------------

def _print_answer(answer, as_json: bool) -> None:
    if as_json:
        print(json.dumps(answer.to_json_dict()))
        return
    line = f"{answer.id}: {answer.status}"
    if answer.result is not None:
        r = answer.result
        line += f" {r.http_status} {r.final_url} title={r.title!r} ({r.content_length} chars)"
        if r.eval is not None:
            line += f" eval={json.dumps(r.eval)}"
    if answer.error is not None:
        line += f" [{answer.error.code}] {answer.error.message}"
    line += f" attempts={answer.attempts} browser={answer.browser} {answer.elapsed_ms:.0f}ms"
    print(line)


def cmd_submit(args) -> int:
    if (args.full_page or args.screenshot_selector) and not args.screenshot:
        print("foxden: --full-page and --screenshot-selector need --screenshot FILE", file=sys.stderr)
        return EXIT_USAGE
    config = _config(args)
    from foxden.client import ClientError

    job = {"eval": args.eval, "wait_for": args.wait_for, "timeout_s": args.timeout, "session": args.session,
           "new_session": args.new_session, "screenshot": bool(args.screenshot), "id": args.id, **_option_fields(args)}
    with _client(config) as client:
        try:
            answer = client.submit(args.url, **job)
        except (ClientError, ValueError, TypeError) as exc:
            print(f"foxden: {exc}", file=sys.stderr)
            return EXIT_UNAVAILABLE if isinstance(exc, ClientError) else EXIT_USAGE
    _write_outputs(args, answer.result)
    _print_answer(answer, args.json)
    return EXIT_OK if answer.status == "ok" else EXIT_JOB


def _option_fields(args) -> dict:
    """The job's page options (#14) from submit's flags; only those given, so defaults stay off the wire."""
    given = {"wait_until": args.wait_until, "wait_for_function": args.wait_for_function,
             "headers": dict(args.header) if args.header else None, "user_agent": args.user_agent,
             "locale": args.locale, "timezone": args.timezone, "viewport": args.viewport,
             "cookies": [{"name": n, "value": v} for n, v in args.cookie] if args.cookie else None,
             "block": args.block, "proxy": args.proxy, "html": bool(args.html), "full_page": args.full_page,
             "screenshot_selector": args.screenshot_selector, "pdf": bool(args.pdf)}
    return {k: v for k, v in given.items() if v not in (None, False)}


def _write_outputs(args, result) -> None:
    """Screenshot, HTML and PDF go to the files their flags name, never into the printed answer."""
    if result is None:
        return
    for path, data in ((args.screenshot, result.screenshot), (args.pdf, result.pdf),
                       (args.html, None if result.html is None else result.html.encode("utf-8"))):
        if path and data is not None:
            with open(path, "wb") as f:
                f.write(data)


def _header_arg(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected \"Name: value\", got {text!r}")
    return name.strip(), value.strip()


def _cookie_arg(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected name=value, got {text!r}")
    return name.strip(), value


def _viewport_arg(text: str) -> dict:
    width, sep, height = text.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit():
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 1366x768, got {text!r}")
    return {"width": int(width), "height": int(height)}


# A batch line takes the wire's names (docs/protocol.md): every field of a job.
BATCH_KEYS = {"url", "eval", "timeout_s", "session", "id", "wait_for", "new_session", "screenshot",
              "wait_until", "wait_for_function", "headers", "user_agent", "locale", "timezone", "viewport", "cookies",
              "block", "proxy", "html", "full_page", "screenshot_selector", "pdf"}


def _batch_requests(path: str, bad: list):
    from foxden.client import job_request

    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                spec = json.loads(line)
                if not isinstance(spec, dict):
                    raise ValueError("a line must be a JSON object")
                unknown = set(spec) - BATCH_KEYS
                if unknown:
                    raise ValueError(f"unknown key(s) {sorted(unknown)}")
                yield _checked(job_request(**spec))
            except (ValueError, TypeError, wire.ProtocolError) as exc:
                bad.append({"id": spec.get("id") if isinstance(spec, dict) else None, "line": n,
                            "status": "rejected", "error": {"code": ErrorCode.BAD_INPUT.value, "message": f"line {n}: {exc}"},
                            "result": None, "attempts": 0, "browser": None, "elapsed_ms": 0})


def _checked(req):
    """`req` as the daemon will decode it: a line with a wrong type is a bad line, not the end of the batch."""
    return wire.decode_body(wire.encode(wire.Submit(0, req))[4:]).job


def cmd_batch(args) -> int:
    config = _config(args)
    from foxden.client import ClientError

    out = open(args.out, "w", encoding="utf-8") if args.out else sys.stdout
    bad: list = []
    counts: dict[str, int] = {}
    progress = _batch_progress(args.file) if sys.stderr.isatty() else None
    # Answers bound for the terminal that shows the bar go above the bar,
    # through rich; written around it they would tear it.
    via_bar = progress is not None and out is sys.stdout and out.isatty()

    def emit(doc: dict) -> None:
        counts[doc["status"]] = counts.get(doc["status"], 0) + 1
        line = json.dumps(doc)
        if via_bar:
            progress.console.print(line, markup=False, highlight=False, emoji=False, soft_wrap=True)
        else:
            out.write(line + "\n")
            out.flush()  # an interrupted batch keeps every answer it got
        if progress is not None:
            progress.update(progress.task_ids[0], advance=1, counts=_counts(counts))

    try:
        with _client(config) as client, progress or contextlib.nullcontext():
            for _, _, answer in client.submit_many(_batch_requests(args.file, bad), args.concurrency):
                while bad:
                    emit(bad.pop(0))
                emit(answer.to_json_dict())
            for doc in bad:
                emit(doc)
    except ClientError as exc:
        print(f"foxden: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except OSError as exc:
        print(f"foxden: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        if out is not sys.stdout:
            out.close()
    print(f"foxden: {sum(counts.values())} jobs: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
          file=sys.stderr)
    return EXIT_OK if set(counts) <= {"ok"} else EXIT_JOB


def _counts(counts: dict[str, int]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(counts.items()))


def _batch_progress(path: str):
    """A progress bar on stderr: done/total, rate, elapsed, ETA and counts by status."""
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    class RateColumn(ProgressColumn):
        def render(self, task):
            return f"{task.speed or 0:.1f}/s"

    try:
        with open(path, encoding="utf-8") as f:
            total = sum(1 for line in f if line.strip())
    except OSError:
        total = None  # the batch itself reports the error
    progress = Progress(TextColumn("batch"), BarColumn(), MofNCompleteColumn(), RateColumn(), TimeElapsedColumn(),
                        TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[counts]}"),
                        console=Console(stderr=True), redirect_stdout=False, redirect_stderr=False)
    progress.add_task("batch", total=total, counts="")
    return progress


def cmd_status(args) -> int:
    config = _config(args)
    from foxden.client import ClientError

    # A status answer takes milliseconds; a daemon that gives none is as good as down.
    client = _client(config, timeout=STATUS_TIMEOUT_S)
    try:
        status = client.status()
    except ClientError as exc:
        print(f"foxden: {exc}", file=sys.stderr)
        client.close()
        return EXIT_UNAVAILABLE
    if args.watch:
        try:
            _watch(config, client, status, args.interval)
        except KeyboardInterrupt:
            pass  # Ctrl-C is how a watch ends
        return EXIT_OK
    client.close()
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        from rich.console import Console

        from foxden.statusview import status_view

        Console().print(status_view(status))
    return EXIT_OK


def _watch(config, client, status: dict, interval: float) -> None:
    """Redraw the status every `interval` seconds until Ctrl-C; rides out a daemon restart."""
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    from foxden.client import Client, ClientError
    from foxden.statusview import status_view

    console = Console()
    error = None

    def view():
        return status_view(status) if error is None else Text(f"foxden: {error} (retrying)", style="red")

    # On a pipe or a log, print each sample in turn: Live would only print the last.
    live = Live(view(), console=console, auto_refresh=False) if console.is_terminal else None
    try:
        with live or contextlib.nullcontext():
            while True:
                if live is None:
                    console.print(view())
                    console.print()
                else:
                    live.update(view(), refresh=True)
                time.sleep(interval)
                try:
                    client = client or Client.from_config(config, timeout=STATUS_TIMEOUT_S)
                    status, error = client.status(), None
                except ClientError as exc:
                    error = exc
                    if client is not None:
                        client.close()
                        client = None
    finally:
        if client is not None:
            client.close()


def cmd_node_drain(args) -> int:
    """Stop assigning to a cluster node, let its jobs finish, then release it (docs/cluster.md)."""
    config = _config(args)
    from foxden.client import ClientError
    from foxden.cluster.drain import DrainFailed, ask_drain

    if config.cluster.role != "leader":
        print(f"foxden: {args.config}: [cluster] role is {config.cluster.role!r}; run `foxden node drain` on the "
              "leader, with its config", file=sys.stderr)
        return EXIT_USAGE

    with _client(config, timeout=STATUS_TIMEOUT_S) as client:  # the leader is up: no actor system starts here
        try:
            client.ping()
        except ClientError as exc:
            print(f"foxden: {exc}", file=sys.stderr)
            return EXIT_UNAVAILABLE
    try:
        reply = ask_drain(config, args.name)
    except DrainFailed as exc:
        print(f"foxden: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    if reply.error:
        print(f"foxden: {reply.error}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps({"node": reply.node, "state": reply.state, "jobs_in_flight": reply.jobs_in_flight}))
    return EXIT_OK


def cmd_session_end(args) -> int:
    config = _config(args)
    from foxden.client import ClientError, ServerError

    with _client(config) as client:
        try:
            existed = client.end_session(args.id)
        except ServerError as exc:
            print(f"foxden: {exc}", file=sys.stderr)
            return EXIT_USAGE if exc.code in ("bad_field", "missing_field") else EXIT_JOB
        except ClientError as exc:
            print(f"foxden: {exc}", file=sys.stderr)
            return EXIT_UNAVAILABLE
    print(f"session {args.id}: " + ("ended, its browser context closed" if existed else "not open (nothing to end)"))
    return EXIT_OK


def _ask(config, call):
    """Run call(client); ServerError -> exit 2 (bad request) or 1, unreachable -> 3. Returns (value, None) or (None, rc)."""
    from foxden.client import ClientError, ServerError

    with _client(config) as client:
        try:
            return call(client), None
        except ServerError as exc:
            print(f"foxden: {exc}", file=sys.stderr)
            return None, EXIT_USAGE if exc.code in ("bad_field", "missing_field", "bad_input") else EXIT_JOB
        except ClientError as exc:
            print(f"foxden: {exc}", file=sys.stderr)
            return None, EXIT_UNAVAILABLE


def cmd_cancel(args) -> int:
    reply, rc = _ask(_config(args), lambda client: client.cancel(args.id))
    if reply is None:
        return rc
    if args.json:
        print(json.dumps(reply))
    else:
        print(f"job {args.id}: " + ("cancelled" if reply["found"] else "not in flight (unknown, or already answered)"))
    return EXIT_OK if reply["found"] else EXIT_JOB


def cmd_session_export(args) -> int:
    state, rc = _ask(_config(args), lambda client: client.export_session(args.id))
    if rc is not None:
        return rc
    if state is None:
        print(f"foxden: session {args.id}: the daemon keeps no state for it", file=sys.stderr)
        return EXIT_JOB
    text = json.dumps(state, indent=2)
    if args.file == "-":
        print(text)
    else:
        with open(args.file, "w", encoding="utf-8") as f:
            f.write(text + "\n")
        print(f"session {args.id}: {len(state.get('cookies', []))} cookies, {len(state.get('origins', []))} origins "
              f"written to {args.file}", file=sys.stderr)
    return EXIT_OK


def cmd_session_import(args) -> int:
    from foxden.protocols.storage_state import BadState, check_state

    config = _config(args)
    try:
        with (sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")) as f:
            state = check_state(json.load(f))
    except (OSError, ValueError) as exc:  # BadState and json's errors are ValueErrors
        what = "" if isinstance(exc, BadState) else "not a storage-state JSON file: "
        print(f"foxden: {args.file}: {what}{exc}", file=sys.stderr)
        return EXIT_USAGE
    _, rc = _ask(config, lambda client: client.import_session(args.id, state))
    if rc is not None:
        return rc
    print(f"session {args.id}: its next job starts from {args.file} ({len(state['cookies'])} cookies, "
          f"{len(state['origins'])} origins)", file=sys.stderr)
    return EXIT_OK


def cmd_demo(args) -> int:
    from foxden import demo

    return demo.main(json_out=args.json)


# --- parser ----------------------------------------------------------------------

def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected seconds > 0, got {text!r}")
    return value


def _add_option_flags(s) -> None:
    """submit's page options (#14); docs/protocol.md has the same list under the wire names."""
    o = s.add_argument_group("page options (docs/protocol.md lists them under their wire names)")
    o.add_argument("--wait-until", choices=("load", "domcontentloaded", "networkidle", "commit"),
                   help="when navigation counts as done (default: load)")
    o.add_argument("--wait-for-function", metavar="JS", help="then wait until this JavaScript expression is truthy")
    o.add_argument("--header", action="append", type=_header_arg, metavar="'NAME: VALUE'",
                   help="extra request header (repeatable)")
    o.add_argument("--user-agent", metavar="UA", help="the User-Agent the page and servers see")
    o.add_argument("--locale", metavar="TAG", help="BCP 47 tag: navigator.language and Accept-Language, e.g. de-CH")
    o.add_argument("--timezone", metavar="ZONE", help="IANA time zone the page sees, e.g. Europe/Berlin")
    o.add_argument("--viewport", type=_viewport_arg, metavar="WxH", help="viewport in CSS pixels, e.g. 1366x768")
    o.add_argument("--cookie", action="append", type=_cookie_arg, metavar="NAME=VALUE",
                   help="cookie set before navigation, scoped to the URL (repeatable)")
    o.add_argument("--block", action="append", metavar="TYPE|GLOB",
                   help="never fetch this resource type (image, media, font, stylesheet, script, xhr, fetch, "
                        "websocket, other) or URLs matching this glob, e.g. '*.woff2' (repeatable)")
    o.add_argument("--proxy", metavar="URL", help="this job's proxy: http://, https:// or socks5://[user:pass@]host:port")
    o.add_argument("--html", metavar="FILE", help="write the serialized DOM after the waits to FILE")
    o.add_argument("--full-page", action="store_true", help="with --screenshot: the whole page, not the viewport")
    o.add_argument("--screenshot-selector", metavar="SEL", help="with --screenshot: only this element")
    o.add_argument("--pdf", metavar="FILE", help="write the page as PDF to FILE (Chromium only)")


def _add_session_commands(sub, with_config) -> None:
    """`foxden session end/export/import` and `foxden cancel`."""
    se = sub.add_parser("session", help="manage sessions (named browser contexts)")
    se_sub = se.add_subparsers(dest="session_command", required=True)
    end = with_config(se_sub.add_parser("end", help="end a session after its submitted jobs; closes its context"))
    end.add_argument("id", help="the session's name")
    end.set_defaults(fn=cmd_session_end)
    ex = with_config(se_sub.add_parser("export", help="write a session's storage state (Playwright's storage-state "
                                       "JSON: cookies + localStorage) to FILE"))
    ex.add_argument("id", help="the session's name")
    ex.add_argument("file", help="where to write the JSON ('-': stdout)")
    ex.set_defaults(fn=cmd_session_export)
    im = with_config(se_sub.add_parser("import", help="make the next job of a session start from a storage-state "
                                       "JSON file (e.g. Playwright's context.storage_state(path=...))"))
    im.add_argument("id", help="the session's name")
    im.add_argument("file", help="the JSON file to read ('-': stdin)")
    im.set_defaults(fn=cmd_session_import)

    c = with_config(sub.add_parser("cancel", help="cancel a queued or running job by its id; exit 0 if one was "
                                   "cancelled, 1 if none was in flight"))
    c.add_argument("id", help="the job's id as answered (its --id, or the id the daemon made up)")
    c.add_argument("--json", action="store_true", help='print {"id": ..., "found": ...}')
    c.set_defaults(fn=cmd_cancel)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="foxden", description="A supervised den of headless browsers.")
    sub = p.add_subparsers(dest="command", required=True)

    def with_config(sp):
        sp.add_argument("-c", "--config", default=os.environ.get("FOXDEN_CONFIG", DEFAULT_CONFIG),
                        help="config file (default: $FOXDEN_CONFIG or ./config.toml)")
        return sp

    with_config(sub.add_parser("run", help="run the daemon in the foreground (logs on stderr)")).set_defaults(fn=cmd_run)
    with_config(sub.add_parser("stop", help="stop the daemon gracefully; returns when all its processes are gone")
                ).set_defaults(fn=cmd_stop)

    s = with_config(sub.add_parser("submit", help="run one job and print its answer"))
    s.add_argument("url")
    s.add_argument("--timeout", type=float, help="seconds per attempt (default: [jobs] timeout_s)")
    s.add_argument("--eval", help="JavaScript expression evaluated after load; its JSON value is returned")
    s.add_argument("--wait-for", help="CSS selector to wait for after load")
    s.add_argument("--screenshot", metavar="FILE", help="write a PNG screenshot to FILE")
    s.add_argument("--session", help="run in this session's persistent browser context")
    s.add_argument("--new-session", action="store_true", help="start the session afresh")
    s.add_argument("--id", help="label for the answer")
    s.add_argument("--json", action="store_true", help="print the answer as one JSON object")
    _add_option_flags(s)
    s.set_defaults(fn=cmd_submit)

    b = with_config(sub.add_parser("batch", help="run one job per JSONL line; one result line per job"))
    b.add_argument("file")
    b.add_argument("--out", help="write results here (default: stdout)")
    b.add_argument("--concurrency", type=int, default=8)
    b.set_defaults(fn=cmd_batch)

    st = with_config(sub.add_parser("status", help="show the daemon's browsers, queue, totals and invariants"))
    how = st.add_mutually_exclusive_group()
    how.add_argument("--json", action="store_true")
    how.add_argument("--watch", action="store_true", help="redraw the table until Ctrl-C")
    st.add_argument("--interval", type=_positive_seconds, default=2.0, metavar="S",
                    help="seconds between redraws (default: 2)")
    st.set_defaults(fn=cmd_status)

    _add_session_commands(sub, with_config)

    nd = sub.add_parser("node", help="manage the nodes of a cluster (on the leader)")
    nd_sub = nd.add_subparsers(dest="node_command", required=True)
    drain = with_config(nd_sub.add_parser("drain", help="stop assigning to a node, let its jobs finish, release it"))
    drain.add_argument("name", help="the node's name ([cluster] node)")
    drain.set_defaults(fn=cmd_node_drain)

    from foxden.leases import cli as lease_cli

    lease_cli.add_parser(sub, with_config, _positive_seconds)

    d = sub.add_parser("demo", help="start a private daemon and site, run a mix of jobs and faults, report")
    d.add_argument("--json", action="store_true", help="print the report as JSON")
    d.set_defaults(fn=cmd_demo)

    # Listed here for --help; its own options are parsed by foxden.chaos (see main()).
    sub.add_parser("chaos", help="fault-injection run against a private daemon; JSON summary (see `foxden chaos -h`)",
                   add_help=False)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["chaos"]:
        from foxden import chaos

        return chaos.main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
