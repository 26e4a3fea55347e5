"""The coordinator's OpenAPI spec: every request body and error response, so tools can test it.

The endpoints read their JSON themselves (`protocol.parse_request`, `Registry.heartbeat`),
so FastAPI cannot infer their bodies; `describe` fills them in, and the responses each can
give, over the spec FastAPI generates. A field's `null` means "the default", as the parsers
read it. A few rules span fields and are told by a 400, not by the schema: one of
`grammar`/`json_schema`/`response_format`, no `system` with `raw`, no `ignore_eos` with a
constraint, `max_tokens` within the workers' context, a grammar llama.cpp can use.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from ishan_tools.infer.protocol import MAX_STOP_SEQUENCES
from ishan_tools.infer.web import COORDINATOR_BODY_BYTES, MAX_JSON_DEPTH


def _maybe(kind: str, **rules: Any) -> dict[str, Any]:
    return {"type": [kind, "null"], **rules}


TEXT = {"type": "string", "minLength": 1}
SAMPLING: dict[str, Any] = {
    "max_tokens": _maybe("integer", minimum=1),
    "temperature": _maybe("number", minimum=0, maximum=2),
    "top_p": _maybe("number", minimum=0, maximum=1),
    "seed": _maybe("integer", minimum=0, maximum=2**32 - 1),
    "stop": {
        "anyOf": [
            TEXT,
            {"type": "array", "items": TEXT, "maxItems": MAX_STOP_SEQUENCES},
            {"type": "null"},
        ]
    },
    "repeat_penalty": _maybe("number", exclusiveMinimum=0, maximum=10),
    "presence_penalty": _maybe("number", minimum=-2, maximum=2),
    "frequency_penalty": _maybe("number", minimum=-2, maximum=2),
    "ignore_eos": _maybe("boolean"),
    "grammar": _maybe("string", minLength=1, description="llama.cpp GBNF, with a root rule"),
    "json_schema": _maybe("object", description="the output's JSON schema"),
    "response_format": {
        "anyOf": [
            {
                "type": "object",
                "properties": {"type": {"enum": ["text", "json_object"]}},
                "required": ["type"],
            },
            {
                "type": "object",
                "properties": {
                    "type": {"const": "json_schema"},
                    "json_schema": {
                        "type": "object",
                        "properties": {"schema": {"type": "object"}},
                        "required": ["schema"],
                    },
                },
                "required": ["type", "json_schema"],
            },
            {"type": "null"},
        ]
    },
}
MESSAGES = {
    "type": "array",
    "minItems": 1,
    "items": {
        "type": "object",
        "properties": {
            "role": {"enum": ["system", "user", "assistant"]},
            "content": {"type": "string"},
        },
        "required": ["role", "content"],
    },
}
INFER = {
    "type": "object",
    "properties": {
        "prompt": TEXT,
        "model": TEXT,
        "system": _maybe("string", minLength=1),
        "raw": _maybe("boolean"),
        **SAMPLING,
    },
    "required": ["prompt", "model"],
}
COMPLETION = {
    "type": "object",
    "properties": {
        "prompt": {"anyOf": [TEXT, {"type": "array", "items": TEXT, "minItems": 1, "maxItems": 1}]},
        "model": TEXT,
        "stream": _maybe("boolean"),
        **SAMPLING,
    },
    "required": ["prompt", "model"],
}
CHAT = {
    "type": "object",
    "properties": {"messages": MESSAGES, "model": TEXT, "stream": _maybe("boolean"), **SAMPLING},
    "required": ["messages", "model"],
}
POSITIVE = {"type": "integer", "minimum": 1}
HEARTBEAT = {
    "type": "object",
    "properties": {
        "worker_id": {"type": "string", "minLength": 1, "maxLength": 256},
        "url": {"type": "string", "format": "uri", "pattern": "^https?://", "maxLength": 2048},
        "model": {"type": "string", "minLength": 1, "maxLength": 256},
        "model_file": {"type": "string", "maxLength": 256},
        "n_ctx": POSITIVE,
        "max_sessions": POSITIVE,
        "kv_capacity_bytes": POSITIVE,
        "session_kv_bytes": POSITIVE,
        "heartbeat_interval": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600},
        "slots": {"type": "integer", "minimum": 0},
        "boot_id": {"type": "string", "maxLength": 256},
        "sessions": {"type": "integer", "minimum": 0},
        "kv_used_bytes": {"type": "integer", "minimum": 0},
    },
    "required": [
        "worker_id",
        "url",
        "model",
        "n_ctx",
        "max_sessions",
        "kv_capacity_bytes",
        "session_kv_bytes",
        "heartbeat_interval",
    ],
}
ERROR = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
OPENAI_ERROR = {
    "type": "object",
    "properties": {"error": {"type": "object", "properties": {"message": {"type": "string"}}}},
    "required": ["error"],
}
TOKEN_EVENT = {
    "type": "object",
    "properties": {
        "token": {"type": "string"},
        "finished": {"type": "boolean"},
        "error": {"type": "string"},
    },
    "required": ["token", "finished"],
}
EVENTS = {  # each event (OpenAPI 3.2's reading of a text/event-stream schema)
    "text/event-stream": {
        "schema": {
            "type": "object",
            "properties": {
                "data": {
                    "type": "string",
                    "contentMediaType": "application/json",
                    "contentSchema": TOKEN_EVENT,
                }
            },
            "required": ["data"],
        }
    }
}
CHUNKS = {"text/event-stream": {"schema": {"description": "OpenAI's chunks, then [DONE]"}}}
WHY = {
    400: "a field is wrong, the body is not JSON or nests deeper than "
    f"{MAX_JSON_DEPTH} levels, or the worker cannot use the schema or grammar",
    401: "the API key is missing or wrong (with tenants: no tenant holds it)",
    403: "the key is not an admin tenant's",
    404: "no worker ever served the `model` asked for, or the tenant may not use it (OpenAI "
    "API: code `model_not_found`); while only one model was ever served, any name is accepted",
    409: "the heartbeat names a live worker with another URL or boot id",
    413: f"the body is over {COORDINATOR_BODY_BYTES} bytes",
    429: "the tenant is at its session limit or its tokens per minute; `Retry-After` says "
    "when to come back (OpenAI API: code `rate_limit_exceeded`)",
    499: "the client hung up before the answer",
    502: "the worker failed before the first token",
    503: "at capacity, or no healthy worker (of the model asked for)",
}


def _errors(statuses: tuple[int, ...], schema: dict[str, Any]) -> dict[str, Any]:
    body = {"application/json": {"schema": schema}}
    return {str(s): {"description": WHY[s], "content": body} for s in statuses}


GENERATION_ERRORS = (400, 401, 404, 413, 429, 499, 502, 503)
OPERATIONS: dict[tuple[str, str], tuple[dict[str, Any] | None, dict[str, Any]]] = {
    ("/coordinator/infer", "post"): (
        INFER,
        {
            "200": {"description": "the tokens, as server-sent events", "content": EVENTS},
            **_errors(GENERATION_ERRORS, ERROR),
        },
    ),
    ("/coordinator/heartbeat", "post"): (
        HEARTBEAT,
        {
            "200": {"description": "registered", "content": {"application/json": {}}},
            **_errors((400, 401, 409, 413), ERROR),
        },
    ),
    ("/v1/completions", "post"): (
        COMPLETION,
        {
            "200": {
                "description": "the completion (JSON), or its chunks with `stream`",
                "content": {"application/json": {"schema": {"type": "object"}}, **CHUNKS},
            },
            **_errors(GENERATION_ERRORS, OPENAI_ERROR),
        },
    ),
    ("/v1/chat/completions", "post"): (
        CHAT,
        {
            "200": {
                "description": "the chat completion (JSON), or its chunks with `stream`",
                "content": {"application/json": {"schema": {"type": "object"}}, **CHUNKS},
            },
            **_errors(GENERATION_ERRORS, OPENAI_ERROR),
        },
    ),
    ("/v1/models", "get"): (
        None,
        {
            "200": {
                "description": "the models known, each with `workers`: its live workers",
                "content": {"application/json": {}},
            },
            **_errors((401,), OPENAI_ERROR),
        },
    ),
    ("/coordinator/usage", "get"): (
        None,
        {
            "200": {
                "description": "every tenant's usage and limits (an admin tenant's key)",
                "content": {"application/json": {}},
            },
            **{
                **_errors((401, 403), ERROR),
                "404": {
                    "description": "the coordinator has no tenants file",
                    "content": {"application/json": {"schema": ERROR}},
                },
            },
        },
    ),
    ("/metrics", "get"): (
        None,
        {"200": {"description": "Prometheus metrics", "content": {"text/plain": {}}}},
    ),
}


def describe(app: FastAPI) -> None:
    """Make `app.openapi()` describe the request bodies and responses above."""
    generate = app.openapi

    def spec() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        for (path, method), (body, responses) in OPERATIONS.items():
            operation = schema["paths"].get(path, {}).get(method)
            if operation is None:
                continue
            if body is not None:
                content = {"application/json": {"schema": body}}
                operation["requestBody"] = {"required": True, "content": content}
            operation["responses"] = responses
        app.openapi_schema = schema
        return schema

    app.openapi = spec  # type: ignore[method-assign]
