"""`ishan infer ask`: stream one completion from a running coordinator, over the coordinator API."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ishan_tools.errors import InferenceError
from ishan_tools.infer.config import GenerationRequest
from ishan_tools.infer.protocol import bearer_header
from ishan_tools.infer.timing import StreamTimer


@dataclass(frozen=True)
class AskResult:
    text: str
    tokens: int
    ttft_s: float | None
    tokens_per_s: float | None
    elapsed_s: float


def _check_status(resp: Any, endpoint: str) -> None:
    if resp.status_code != 200:
        resp.read()
        try:
            message = resp.json().get("error", resp.text)
        except ValueError:
            message = resp.text
        raise InferenceError(f"{endpoint} answered {resp.status_code}: {message}")


def ask(
    url: str,
    request: GenerationRequest,
    on_token: Callable[[str], None] = lambda _text: None,
    *,
    model: str = "default",
    api_key: str | None = None,
    timeout: float = 300.0,
) -> AskResult:
    """POST to `/coordinator/infer` and read the SSE stream to its end."""
    import httpx

    body = {**request.to_json(), "model": model}
    headers = bearer_header(api_key)
    endpoint = f"{url.rstrip('/')}/coordinator/infer"
    parts: list[str] = []
    try:
        with httpx.Client(timeout=timeout) as client:  # built before the clock starts
            timer = StreamTimer()
            http_request = client.build_request("POST", endpoint, json=body, headers=headers)
            resp = client.send(http_request, stream=True)
            try:
                _check_status(resp, endpoint)
                for line in resp.iter_lines():
                    if not line.startswith("data: "):
                        continue
                    event = json.loads(line[6:])
                    if event.get("error"):
                        raise InferenceError(f"the stream failed midway: {event['error']}")
                    if event.get("finished"):
                        break
                    timer.token()
                    parts.append(event["token"])
                    on_token(event["token"])
            finally:
                resp.close()
    except httpx.HTTPError as exc:
        raise InferenceError(
            f"cannot reach the coordinator at {url} ({exc}): start it with `ishan infer serve`"
        ) from exc
    return AskResult(
        "".join(parts), timer.tokens, timer.ttft_s, timer.tokens_per_s, timer.elapsed_s
    )
