"""The aiohttp application: routes, the token check, limits; every job goes over the daemon's own socket."""
from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import time
import uuid

from aiohttp import web

from foxden.client import ServerError
from foxden.http.decide import authorized, http_status, readiness
from foxden.http.link import DaemonLink, LinkDown
from foxden.http.openapi import openapi
from foxden.http.results import Kept, ResultStore, StoreFull
from foxden.http.settings import HttpSettings
from foxden.protocols import wire
from foxden.protocols.errors import ErrorCode

__all__ = ["HttpApi", "make_app", "error_response"]

log = logging.getLogger("foxden.http")

OPEN_ROUTES = frozenset({"/healthz", "/readyz"})  # no token: load balancers and orchestrators probe them
PROBE_TIMEOUT_S = 5.0
STATUS_TIMEOUT_S = 30.0
LEASE_TIMEOUT_S = 180.0  # a lease launches a browser of its own (Firefox: a node server too) before it answers


def error_response(code: ErrorCode | str, message: str, status: int | None = None) -> web.Response:
    """The one error body: {"error": {"code", "message"}}, with the code's HTTP status."""
    code = ErrorCode(code).value if isinstance(code, ErrorCode) else code
    return web.json_response({"error": {"code": code, "message": message}},
                             status=status or http_status(code))


class HttpError(Exception):
    """A request refused with a registered code (turned into error_response by the middleware)."""

    def __init__(self, code: ErrorCode | str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def _no_repeats(pairs: list) -> dict:
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"key {key!r} appears twice")
        seen[key] = value
    return seen


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def parse_json_object(body: bytes, what: str = "body") -> dict:
    """One JSON object, strictly: no repeated keys, no NaN/Infinity; HttpError(bad_json) naming `what`."""
    try:
        doc = json.loads(body.decode("utf-8"), object_pairs_hook=_no_repeats, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise HttpError(ErrorCode.BAD_JSON, f"{what}: not one JSON object: {exc}") from None
    if type(doc) is not dict:
        raise HttpError(ErrorCode.BAD_JSON, f"{what}: expected one JSON object, got {type(doc).__name__}")
    return doc


def answer_body(answer: wire.Answer, binary: bool) -> dict:
    """The answer as `foxden submit --json` prints it; with `binary`, its screenshot and pdf as base64."""
    doc = answer.to_json_dict()
    if binary and answer.result is not None and doc.get("result") is not None:
        for name in ("screenshot", "pdf"):
            data = getattr(answer.result, name, None)
            if data is not None:
                doc["result"][name] = base64.b64encode(data).decode("ascii")
    return doc


def _flag(request: web.Request, name: str, default: bool) -> bool:
    raw = request.query.get(name)
    if raw is None:
        return default
    if raw not in ("true", "false"):
        raise HttpError(ErrorCode.BAD_FIELD, f"?{name}: expected true or false, got {raw[:60]!r}")
    return raw == "true"


def _binary(request: web.Request) -> bool:
    raw = request.query.get("binary")
    if raw not in (None, "base64"):
        raise HttpError(ErrorCode.BAD_FIELD, f"?binary: expected base64, got {raw[:60]!r}")
    return raw is not None


class HttpApi:
    """The routes' state: two links to the daemon (jobs; probes and status), the kept answers, the limits."""

    def __init__(self, settings: HttpSettings, version: str):
        self.settings = settings
        self.jobs = DaemonLink(settings.socket, settings.token, "jobs")
        self.control = DaemonLink(settings.socket, settings.token, "control")
        self.store = ResultStore(settings.results_ttl_s, settings.max_results, settings.max_results_mb << 20)
        self.slots = asyncio.Semaphore(settings.max_inflight)
        self.background: set[asyncio.Task] = set()
        self.spec = openapi(version)

    # --- middleware ------------------------------------------------------------

    @web.middleware
    async def guard(self, request: web.Request, handler):
        """Token (constant-time) on every route but the probes; every refusal as the one error body."""
        if request.path not in OPEN_ROUTES and not authorized(request.headers.get("Authorization"),
                                                             self.settings.token):
            return error_response(ErrorCode.UNAUTHORIZED, "send Authorization: Bearer <[daemon] token>")
        try:
            return await handler(request)
        except HttpError as exc:
            return error_response(exc.code, exc.message)
        except web.HTTPRequestEntityTooLarge:
            return error_response(ErrorCode.BODY_TOO_LARGE,
                                  f"body: larger than [http] max_body_kb ({self.settings.max_body_kb} KiB)")
        except web.HTTPException as exc:
            if exc.status in (404, 405):
                return error_response(ErrorCode.NOT_FOUND, f"{request.method} {request.path}: {exc.reason}")
            raise
        except LinkDown as exc:
            return error_response(ErrorCode.DAEMON_UNREACHABLE, str(exc))
        except asyncio.TimeoutError:
            return error_response(ErrorCode.DAEMON_UNREACHABLE, "the daemon did not answer in time")
        except ServerError as exc:
            return error_response(exc.code, exc.message)
        except Exception:  # noqa: BLE001 - a bug here must still answer in the one error shape
            log.exception("http: %s %s failed", request.method, request.path)
            return error_response(ErrorCode.INTERNAL_ERROR, "a bug in foxden's HTTP layer; see the daemon's log",
                                  status=500)

    # --- jobs ----------------------------------------------------------------

    async def _body(self, request: web.Request) -> bytes:
        try:
            return await asyncio.wait_for(request.read(), self.settings.body_timeout_s)
        except asyncio.TimeoutError:
            raise HttpError(ErrorCode.HEADER_TIMEOUT,
                            f"body: not received within [http] body_timeout_s ({self.settings.body_timeout_s:g}s)"
                            ) from None

    async def _job(self, request: web.Request) -> wire.JobRequest:
        doc = parse_json_object(await self._body(request))
        try:
            return wire.decode_job(doc)
        except wire.ProtocolError as exc:
            raise HttpError(exc.code, exc.message) from None

    async def submit(self, request: web.Request) -> web.Response:
        wait, binary = _flag(request, "wait", True), _binary(request)
        job = await self._job(request)
        if not wait:
            return self._accept(job, binary)
        if self.slots.locked():
            raise HttpError(ErrorCode.TOO_MANY_REQUESTS,
                            f"{self.settings.max_inflight} requests are in flight ([http] max_inflight); retry later")
        async with self.slots:
            answer = await self.jobs.call("submit", job.url, **_job_kwargs(job))
        return web.json_response(answer_body(answer, binary))

    def _accept(self, job: wire.JobRequest, binary: bool) -> web.Response:
        """?wait=false: keep the id as pending, run the job in the background, answer 202 at once."""
        if job.id is None:
            job = dataclasses.replace(job, id=uuid.uuid4().hex)
        try:
            fresh = self.store.reserve(job.id, time.monotonic())
        except StoreFull as exc:
            raise HttpError(ErrorCode.TOO_MANY_REQUESTS, str(exc)) from None
        if not fresh:
            raise HttpError(ErrorCode.DUPLICATE_ID, f"id: a job with id {job.id!r} is already kept; use another id")
        task = asyncio.get_running_loop().create_task(self._run_kept(job, binary))
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return web.json_response({"id": job.id, "status": "pending"}, status=202,
                                 headers={"Location": f"/v1/jobs/{job.id}"})

    async def _run_kept(self, job: wire.JobRequest, binary: bool) -> None:
        try:
            async with self.slots:  # waits for a slot: accepted jobs queue here rather than being refused
                answer = await self.jobs.call("submit", job.url, **_job_kwargs(job))
            status, body = 200, answer_body(answer, binary)
        except (LinkDown, ServerError) as exc:
            code = exc.code if isinstance(exc, ServerError) else ErrorCode.DAEMON_UNREACHABLE.value
            status, body = http_status(code), {"error": {"code": code, "message": str(exc)}}
        size = len(json.dumps(body))  # what it costs kept (base64 screenshots count in full)
        before = self.store.evicted
        self.store.answer(job.id, status, body, time.monotonic(), size)
        if self.store.evicted != before:
            log.warning("http: %d kept answers forgotten before their expiry ([http] max_results_mb %d)",
                        self.store.evicted - before, self.settings.max_results_mb)

    async def get_job(self, request: web.Request) -> web.Response:
        job_id = request.match_info["id"]
        kept, status, body = self.store.get(job_id, time.monotonic())
        if kept is Kept.UNKNOWN:
            raise HttpError(ErrorCode.NOT_FOUND, f"id: no job {job_id!r} is kept (never accepted with ?wait=false,"
                                                 f" or answered more than [http] results_ttl_s ago)")
        if kept is Kept.PENDING:
            return web.json_response({"id": job_id, "status": "pending"}, status=202)
        return web.json_response(body, status=status)

    async def cancel_job(self, request: web.Request) -> web.Response:
        return web.json_response(await self.control.call("cancel", request.match_info["id"], timeout=STATUS_TIMEOUT_S))

    # --- leases ----------------------------------------------------------------

    async def lease(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        doc = parse_json_object(body) if body.strip() else {}
        for key, value in doc.items():
            if key not in ("engine", "ttl_s", "idle_s"):
                raise HttpError(ErrorCode.BAD_FIELD, f"{key}: unknown field")
            number = type(value) in (int, float) and 0 < value < float("inf")
            if value is not None and not (isinstance(value, str) if key == "engine" else number):
                expected = "a string" if key == "engine" else "a finite number > 0"
                raise HttpError(ErrorCode.BAD_FIELD, f"{key}: expected {expected} or null, got {value!r}"[:200])
        return web.json_response(await self.control.call("lease", timeout=LEASE_TIMEOUT_S, **doc))

    async def end_lease(self, request: web.Request) -> web.Response:
        return web.json_response(await self.control.call("end_lease", request.match_info["id"],
                                                         timeout=LEASE_TIMEOUT_S))

    # --- status and probes -------------------------------------------------------

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response(await self.control.call("status", timeout=STATUS_TIMEOUT_S))

    async def healthz(self, request: web.Request) -> web.Response:
        try:
            await self.control.call("ping", timeout=PROBE_TIMEOUT_S)
        except (LinkDown, ServerError, asyncio.TimeoutError):
            return web.json_response({"ok": False}, status=503)
        return web.json_response({"ok": True})

    async def readyz(self, request: web.Request) -> web.Response:
        try:
            reason = readiness(await self.control.call("status", timeout=STATUS_TIMEOUT_S), self.settings.max_queue)
        except (LinkDown, ServerError, asyncio.TimeoutError) as exc:
            reason = f"the daemon does not answer: {exc or 'timed out'}"
        if reason is not None:
            return web.json_response({"ready": False, "reason": reason}, status=503)
        return web.json_response({"ready": True})

    async def metrics(self, request: web.Request) -> web.Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
        from prometheus_client.registry import CollectorRegistry

        from foxden.metrics import StatusCollector

        if not self.settings.serve_metrics:
            raise HttpError(ErrorCode.NOT_FOUND, "GET /metrics: served on [metrics] port, not here")
        try:
            doc, failure = await self.control.call("status", timeout=STATUS_TIMEOUT_S), None
        except (LinkDown, ServerError, asyncio.TimeoutError) as exc:
            doc, failure = None, exc
        registry = CollectorRegistry()
        registry.register(StatusCollector(lambda: doc if failure is None else _raise(failure)))
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def spec_json(self, request: web.Request) -> web.Response:
        return web.json_response(self.spec)


def _job_kwargs(job: wire.JobRequest) -> dict:
    """The fields of a checked job, as the public AsyncClient.submit takes them (url apart)."""
    return {f.name: getattr(job, f.name) for f in dataclasses.fields(job) if f.name != "url"}


def _raise(exc: BaseException):
    raise exc


def make_app(api: HttpApi) -> web.Application:
    """The application: every route of docs/http.md behind the guard middleware."""
    app = web.Application(middlewares=[api.guard], client_max_size=api.settings.max_body_kb * 1024)
    app.add_routes([
        web.post("/v1/jobs", api.submit),
        web.get("/v1/jobs/{id}", api.get_job),
        web.delete("/v1/jobs/{id}", api.cancel_job),
        web.get("/v1/status", api.status),
        web.post("/v1/leases", api.lease),
        web.delete("/v1/leases/{id}", api.end_lease),
        web.get("/healthz", api.healthz),
        web.get("/readyz", api.readyz),
        web.get("/metrics", api.metrics),
        web.get("/v1/openapi.json", api.spec_json),
    ])
    return app
