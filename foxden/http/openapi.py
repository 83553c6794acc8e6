"""GET /v1/openapi.json: OpenAPI 3.1 generated from the wire's own dataclasses and field table."""
from __future__ import annotations

import dataclasses
import enum
import types
import typing
from pathlib import Path
from typing import Any

from foxden.protocols import wire
from foxden.protocols.errors import ErrorCode

__all__ = ["openapi", "schema_of", "job_fields"]

_REF = "#/components/schemas/"
_SCALARS = {str: {"type": "string"}, int: {"type": "integer"}, float: {"type": "number"},
            bool: {"type": "boolean"}, dict: {"type": "object"}, Path: {"type": "string"},
            type(None): {"type": "null"}}
_BYTES = {"type": "string", "contentEncoding": "base64",
          "description": "binary data: left out of JSON answers unless the request asks ?binary=base64"}


def job_fields() -> list[tuple[str, Any]]:
    """(name, default) of every job field, in the wire's own table (wire._JOB): what a body may carry."""
    return [(name, default) for name, default, _ in wire._JOB.fields]


def schema_of(hint: Any, components: dict) -> dict:
    """The JSON Schema of a type hint; dataclasses become components, referenced by name."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return {}
    if hint is bytes:
        return dict(_BYTES)
    if hint in _SCALARS:
        return dict(_SCALARS[hint])
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return {"type": "string", "enum": [m.value for m in hint]}
    if dataclasses.is_dataclass(hint):
        if hint.__name__ not in components:
            components[hint.__name__] = {}  # placed first: a type may refer to itself
            components[hint.__name__] = dataclass_schema(hint, components)
        return {"$ref": _REF + hint.__name__}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [schema_of(a, components) for a in args]}
    if origin in (tuple, list):
        items = args[0] if args and (len(args) == 1 or args[-1] is Ellipsis) else Any
        return {"type": "array", "items": schema_of(items, components)}
    if origin is dict:
        return {"type": "object", "additionalProperties": schema_of(args[1], components) if args else {}}
    return {}


def _json_default(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return [_json_default(v) for v in value]
    return value


def dataclass_schema(cls: type, components: dict, fields: list[tuple[str, Any]] | None = None) -> dict:
    """An object schema of `cls`'s fields (or of `fields`, (name, default) pairs): unknown keys refused."""
    hints = typing.get_type_hints(cls)
    pairs = fields if fields is not None else [(f.name, f.default) for f in dataclasses.fields(cls)]
    props, required = {}, []
    for name, default in pairs:
        prop = schema_of(hints[name], components)
        if default is dataclasses.MISSING:
            required.append(name)
        elif isinstance(default, (str, int, float, bool, tuple, enum.Enum)) or default is None:
            prop["default"] = _json_default(default)
        props[name] = prop
    schema = {"type": "object", "properties": props, "additionalProperties": False}
    if cls.__doc__:
        schema["description"] = " ".join(cls.__doc__.split())
    if required:
        schema["required"] = required
    return schema


def _error_body() -> dict:
    return {"type": "object", "required": ["error"], "additionalProperties": False, "properties": {
        "error": {"type": "object", "required": ["code", "message"], "additionalProperties": False, "properties": {
            "code": {"type": "string", "description": "a code of docs/protocol.md; treat unknown ones as failures",
                     "examples": sorted(c.value for c in ErrorCode)},
            "message": {"type": "string", "description": "for people; names the offending field"}}}}}


def _resp(description: str, schema: str | dict | None = None) -> dict:
    out: dict = {"description": description}
    if schema is not None:
        ref = {"$ref": _REF + schema} if isinstance(schema, str) else schema
        out["content"] = {"application/json": {"schema": ref}}
    return out


def _errors(*statuses: int) -> dict:
    meaning = {400: "not a job (bad JSON, unknown field, bad type): nothing was run", 401: "token missing or wrong",
               404: "not found", 409: "a kept job has this id", 413: "body over [http] max_body_kb",
               429: "a limit was reached; retry later", 503: "the daemon cannot be reached or is stopping"}
    return {str(s): _resp(meaning[s], "ErrorBody") for s in statuses}


def _paths() -> dict:
    job_id = [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}]
    lease_id = [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}]
    ok_200 = _resp("the job's one terminal answer, whatever its status (ok, failed, timeout, rejected)", "Answer")
    return {
        "/v1/jobs": {"post": {
            "summary": "run one job (the fields of a `foxden batch` line)",
            "parameters": [
                {"name": "wait", "in": "query", "schema": {"type": "boolean", "default": True},
                 "description": "false: answer 202 {id} at once; GET /v1/jobs/{id} gives the answer"},
                {"name": "binary", "in": "query", "schema": {"enum": ["base64"]},
                 "description": "include screenshot and pdf bytes as base64 strings"}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": _REF + "JobRequest"}}}},
            "responses": {"200": ok_200, "202": _resp("accepted (?wait=false)", "Accepted"),
                          **_errors(400, 401, 409, 413, 429, 503)}}},
        "/v1/jobs/{id}": {
            "get": {"summary": "the answer of a ?wait=false job", "parameters": job_id, "responses": {
                "200": ok_200, "202": _resp("accepted, not answered yet: poll again", "Accepted"),
                **_errors(401, 404)}},
            "delete": {"summary": "cancel the job(s) in flight with this id", "parameters": job_id, "responses": {
                "200": _resp("{id, found}", {"type": "object"}), **_errors(401, 404, 503)}}},
        "/v1/status": {"get": {"summary": "the status document of `foxden status --json`", "responses": {
            "200": _resp("status", {"type": "object"}), **_errors(401, 503)}}},
        "/v1/leases": {"post": {
            "summary": "lease one browser for your own Playwright or Puppeteer (docs/leases.md)",
            "requestBody": {"content": {"application/json": {"schema": {"$ref": _REF + "LeaseRequest"}}}},
            "responses": {"200": _resp("{lease, engine, endpoint, playwright_version?, expires_at}",
                                       {"type": "object"}), **_errors(400, 401, 429, 503)}}},
        "/v1/leases/{id}": {"delete": {"summary": "end a lease", "parameters": lease_id, "responses": {
            "200": _resp("{lease, existed}", {"type": "object"}), **_errors(401, 404, 503)}}},
        "/healthz": {"get": {"summary": "200 {ok: true} while the daemon answers a ping; no token", "security": [],
                             "responses": {"200": _resp("alive", {"type": "object"}),
                                           "503": _resp("the daemon does not answer", {"type": "object"})}}},
        "/readyz": {"get": {"summary": "200 when jobs can be served now; no token", "security": [], "responses": {
            "200": _resp("ready", {"type": "object"}),
            "503": _resp("{ready: false, reason}: pool given up, shutting down, queue full, unreachable",
                         {"type": "object"})}}},
        "/metrics": {"get": {"summary": "Prometheus text (when [metrics] port is 0)", "responses": {
            "200": {"description": "metrics", "content": {"text/plain": {"schema": {"type": "string"}}}},
            **_errors(401, 404)}}},
        "/v1/openapi.json": {"get": {"summary": "this document", "responses": {"200": _resp("OpenAPI 3.1")}}},
    }


def openapi(version: str) -> dict:
    """The whole OpenAPI 3.1 document; JobRequest is the wire's job table, Answer the wire's Answer."""
    components: dict = {}
    components["JobRequest"] = dataclass_schema(wire.JobRequest, components, job_fields())
    schema_of(wire.Answer, components)
    components["ErrorBody"] = _error_body()
    components["Accepted"] = {"type": "object", "required": ["id", "status"], "properties": {
        "id": {"type": "string"}, "status": {"const": "pending"}}}
    components["LeaseRequest"] = {"type": "object", "additionalProperties": False, "properties": {
        "engine": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "ttl_s": {"anyOf": [{"type": "number", "exclusiveMinimum": 0}, {"type": "null"}]},
        "idle_s": {"anyOf": [{"type": "number", "exclusiveMinimum": 0}, {"type": "null"}]}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "foxden HTTP API", "version": version,
                 "description": "Browser jobs over HTTP; every field is the wire protocol's (docs/protocol.md)."},
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                      "description": "[daemon] token, when set"}}},
        "security": [{"bearer": []}],
        "paths": _paths(),
    }
