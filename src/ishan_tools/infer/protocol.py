"""The wire formats: request validation, bearer tokens, worker NDJSON events, SSE framing.

Worker stream (`POST /worker/generate`, one JSON object per line):
    {"token": "..."}  ...  then {"done": true, "finish_reason", "prompt_tokens",
    "completion_tokens"} or {"error": "...", "status": 400|499|500}
Its response header `x-ishan-kv-bytes` carries the KV cache the session reserved.
"""

from __future__ import annotations

import contextlib
import json
import math
from _json import scanstring  # the C scanner behind json.loads: a string literal alone
from json.encoder import encode_basestring_ascii
from typing import Any

from ishan_tools.infer.config import GenerationRequest
from ishan_tools.infer.errors import BadRequest
from ishan_tools.infer.events import Done, Event, Failed, Token

MAX_STOP_SEQUENCES = 4
KV_HEADER = "x-ishan-kv-bytes"  # the worker's real KV figure for the session
SESSIONS_HEADER = "x-ishan-worker-sessions"  # the worker's load as it answers: sessions ...
KV_USED_HEADER = "x-ishan-worker-kv-used-bytes"  # ... and KV used, every coordinator's
QUEUED_HEADER = "x-ishan-queued"  # "1": the session waits for a busy slot to free
WORKER_HEADER = "x-ishan-worker"  # on a coordinator's stream: the worker that serves it
# A coordinator with tenants tells the worker whose session it opens (requests to workers
# carry the cluster key, so no client can set these): the key its wait queue shares slots
# fairly by, that tenant's weight, and the prefix-cache group whose cached KV it may reuse.
TENANT_HEADER = "x-ishan-tenant"
WEIGHT_HEADER = "x-ishan-tenant-weight"
CACHE_GROUP_HEADER = "x-ishan-cache-group"
WEIGHTS = (0.01, 10_000.0)  # the weights a tenant may have, least and most


def _number(body: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadRequest(f"'{key}' must be a number")
    if not low <= value <= high:
        raise BadRequest(f"'{key}' must be between {low:g} and {high:g}, got {value}")
    return float(value)


def _max_tokens(body: dict[str, Any], default: int, n_ctx: int | None) -> int:
    value = body.get("max_tokens", default)
    if value is None:
        value = default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequest("'max_tokens' must be a positive integer")
    if n_ctx is not None and value > n_ctx:
        raise BadRequest(
            f"'max_tokens' is {value} but the context holds {n_ctx} tokens: ask for fewer"
        )
    return value


def _stop(body: dict[str, Any]) -> tuple[str, ...]:
    stop = body.get("stop")
    if stop is None:
        return ()
    if isinstance(stop, str):
        stop = [stop]
    if (
        not isinstance(stop, list)
        or len(stop) > MAX_STOP_SEQUENCES
        or not all(isinstance(s, str) and s for s in stop)
    ):
        raise BadRequest("'stop' must be a string or a list of up to 4 non-empty strings")
    return tuple(stop)


def _seed(body: dict[str, Any]) -> int | None:
    seed = body.get("seed")
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise BadRequest("'seed' must be an integer from 0 to 2**32 - 1")
    return seed


def _messages(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, list) or not value:
        raise BadRequest("'messages' must be a non-empty list of {role, content} objects")
    pairs = []
    for message in value:
        if not isinstance(message, dict):
            raise BadRequest("each message must be an object with 'role' and 'content'")
        role, content = message.get("role"), message.get("content")
        if role not in ("system", "user", "assistant") or not isinstance(content, str):
            raise BadRequest("each message needs a role (system/user/assistant) and content")
        pairs.append((role, content))
    return tuple(pairs)


def _flag(body: dict[str, Any], key: str) -> bool:
    value = body.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise BadRequest(f"'{key}' must be true or false")
    return value


def _text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise BadRequest(f"'{key}' must be a non-empty string")
    return value


def _schema(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest(f"'{name}' must be a JSON schema (an object)")
    return value


def _constraint(body: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """The JSON schema or GBNF grammar the output must follow, from whichever field set it.

    `response_format` is OpenAI's: `{"type": "json_object"}` (any JSON object) or
    `{"type": "json_schema", "json_schema": {"schema": {...}}}`; `json_schema` and `grammar`
    are llama-server's. The worker converts and compiles them (it has llama.cpp).
    """
    given = [k for k in ("response_format", "json_schema", "grammar") if body.get(k) is not None]
    if len(given) > 1:
        raise BadRequest(f"give one of 'response_format', 'json_schema', 'grammar', not {given}")
    if body.get("grammar") is not None:
        return None, _text(body, "grammar")
    if body.get("json_schema") is not None:
        return _schema(body["json_schema"], "json_schema"), None
    response_format = body.get("response_format")
    if response_format is None:
        return None, None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "text":
        return None, None
    if kind == "json_object":
        return {"type": "object"}, None
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict) or spec.get("schema") is None:
            raise BadRequest("'response_format.json_schema.schema' is required")
        return _schema(spec["schema"], "response_format.json_schema.schema"), None
    raise BadRequest("'response_format.type' must be 'text', 'json_object' or 'json_schema'")


def parse_request(
    body: Any,
    *,
    chat: bool = False,
    raw: bool | None = None,
    require_model: bool = False,
    default_max_tokens: int = 256,
    n_ctx: int | None = None,
) -> GenerationRequest:
    """Validate a JSON body (coordinator API, OpenAI API or worker) into a `GenerationRequest`.

    `chat`: the body carries `messages` (OpenAI chat). `raw`: the prompt is always verbatim
    (OpenAI completions); None reads the body's own `raw` flag (coordinator API, worker).
    """
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    if require_model and (not isinstance(body.get("model"), str) or not body["model"]):
        raise BadRequest("'model' is required (any name is accepted while one model is served)")
    prompt: str | None = None
    messages: tuple[tuple[str, str], ...] | None = None
    system: str | None = None
    verbatim = False
    if chat or body.get("messages") is not None:
        messages = _messages(body.get("messages"))
    else:
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
            prompt = prompt[0]  # OpenAI clients may send a one-element list
        if not isinstance(prompt, str) or not prompt:
            raise BadRequest("'prompt' is required and must be a non-empty string")
        verbatim = _flag(body, "raw") if raw is None else raw
        if raw is None:
            system = _text(body, "system")
            if verbatim and system is not None:
                raise BadRequest("'system' needs the chat template: leave out 'raw' or 'system'")
    json_schema, grammar = _constraint(body)
    ignore_eos = _flag(body, "ignore_eos")
    if ignore_eos and (json_schema is not None or grammar is not None):
        raise BadRequest("'ignore_eos' cannot be combined with a schema or grammar: it ends them")
    repeat_penalty = _number(body, "repeat_penalty", 1.0, 0.0, 10.0)
    if repeat_penalty == 0.0:
        raise BadRequest("'repeat_penalty' must be above 0 (1.0 turns it off)")
    return GenerationRequest(
        prompt=prompt,
        messages=messages,
        system=system,
        raw=verbatim,
        max_tokens=_max_tokens(body, default_max_tokens, n_ctx),
        temperature=_number(body, "temperature", 0.8, 0.0, 2.0),
        top_p=_number(body, "top_p", 0.95, 0.0, 1.0),
        seed=_seed(body),
        stop=_stop(body),
        repeat_penalty=repeat_penalty,
        presence_penalty=_number(body, "presence_penalty", 0.0, -2.0, 2.0),
        frequency_penalty=_number(body, "frequency_penalty", 0.0, -2.0, 2.0),
        ignore_eos=ignore_eos,
        json_schema=json_schema,
        grammar=grammar,
    )


def bearer_header(api_key: str | None) -> dict[str, str]:
    """The `Authorization` header that carries `api_key` (none without a key)."""
    return {"authorization": f"Bearer {api_key}"} if api_key else {}


def bearer_matches(authorization: str | None, api_key: str | None) -> bool:
    """True when no key is required or the `Authorization` header carries it."""
    return api_key is None or authorization == f"Bearer {api_key}"


TOKEN_LINE = '{"token": '  # how a token's line starts; the rest is its text's JSON literal


def json_literal(token: Token) -> str:
    """The token's text as a JSON string literal (as `json.dumps` would write it)."""
    return token.json if token.json is not None else encode_basestring_ascii(token.text)


def encode_event(event: Event) -> bytes:
    """One worker event as an NDJSON line."""
    if isinstance(event, Token):
        return f"{TOKEN_LINE}{json_literal(event)}}}\n".encode()
    data: dict[str, Any]
    if isinstance(event, Done):
        data = {
            "done": True,
            "finish_reason": event.finish_reason,
            "prompt_tokens": event.prompt_tokens,
            "completion_tokens": event.completion_tokens,
        }
    else:
        data = {"error": event.message, "status": event.status}
    return json.dumps(data).encode() + b"\n"


def decode_event(line: str) -> Event:
    """The inverse of `encode_event`; a malformed line is a failed worker."""
    if line.startswith(TOKEN_LINE + '"') and line.endswith('"}'):  # the hot path: a token
        literal = line[len(TOKEN_LINE) : -1]
        with contextlib.suppress(ValueError):
            text, end = scanstring(literal, 1)
            if end == len(literal):
                return Token(text, literal)
    try:
        data = json.loads(line)
        if "token" in data:
            return Token(str(data["token"]))
        if data.get("done"):
            return Done(
                str(data["finish_reason"]),
                int(data["prompt_tokens"]),
                int(data["completion_tokens"]),
            )
        return Failed(str(data["error"]), int(data.get("status", 500)))
    except (ValueError, KeyError, TypeError):
        return Failed(f"malformed event from worker: {line[:80]!r}", 502)


def sse(data: Any) -> bytes:
    """One server-sent event carrying JSON (or the literal `[DONE]`)."""
    payload = data if isinstance(data, str) else json.dumps(data)
    return f"data: {payload}\n\n".encode()
