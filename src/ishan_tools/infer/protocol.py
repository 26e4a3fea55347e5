"""The wire formats: request validation, bearer tokens, worker NDJSON events, SSE framing.

Worker stream (`POST /worker/generate`, one JSON object per line):
    {"token": "..."}  ...  then {"done": true, "finish_reason", "prompt_tokens",
    "completion_tokens"} or {"error": "...", "status": 400|499|500}
Its response header `x-ishan-kv-bytes` carries the KV cache the session reserved.
"""

from __future__ import annotations

import json
import math
from typing import Any

from ishan_tools.infer.config import GenerationRequest
from ishan_tools.infer.errors import BadRequest
from ishan_tools.infer.events import Done, Event, Failed, Token

MAX_STOP_SEQUENCES = 4
KV_HEADER = "x-ishan-kv-bytes"  # the worker's real KV figure for the session
WORKER_HEADER = "x-ishan-worker"  # on a coordinator's stream: the worker that serves it


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


def parse_request(
    body: Any,
    *,
    chat: bool = False,
    require_model: bool = False,
    default_max_tokens: int = 256,
    n_ctx: int | None = None,
) -> GenerationRequest:
    """Validate a JSON body (coordinator API, OpenAI API or worker) into a `GenerationRequest`."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    if require_model and (not isinstance(body.get("model"), str) or not body["model"]):
        raise BadRequest("'model' is required (any name is accepted while one model is served)")
    prompt: str | None = None
    messages: tuple[tuple[str, str], ...] | None = None
    if chat or body.get("messages") is not None:
        messages = _messages(body.get("messages"))
    else:
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
            prompt = prompt[0]  # OpenAI clients may send a one-element list
        if not isinstance(prompt, str) or not prompt:
            raise BadRequest("'prompt' is required and must be a non-empty string")
    return GenerationRequest(
        prompt=prompt,
        messages=messages,
        max_tokens=_max_tokens(body, default_max_tokens, n_ctx),
        temperature=_number(body, "temperature", 0.8, 0.0, 2.0),
        top_p=_number(body, "top_p", 0.95, 0.0, 1.0),
        seed=_seed(body),
        stop=_stop(body),
    )


def bearer_header(api_key: str | None) -> dict[str, str]:
    """The `Authorization` header that carries `api_key` (none without a key)."""
    return {"authorization": f"Bearer {api_key}"} if api_key else {}


def bearer_matches(authorization: str | None, api_key: str | None) -> bool:
    """True when no key is required or the `Authorization` header carries it."""
    return api_key is None or authorization == f"Bearer {api_key}"


def encode_event(event: Event) -> bytes:
    """One worker event as an NDJSON line."""
    if isinstance(event, Token):
        data: dict[str, Any] = {"token": event.text}
    elif isinstance(event, Done):
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
