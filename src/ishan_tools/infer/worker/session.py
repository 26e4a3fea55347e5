"""The session types the engine and its decode loop share.

`Prompt` is a request read into tokens, with the KV cache it can fill; `Session` is one
generation inside the engine, whose events its reader takes from `channel`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ishan_tools.infer.config import GenerationRequest
from ishan_tools.infer.worker.channel import Channel


@dataclass(frozen=True)
class Prompt:
    """A request's prompt tokens, its stop strings and the KV cache it can fill."""

    tokens: list[int]
    stop: tuple[str, ...]
    max_tokens: int
    kv_bytes: int


class Session:
    """One generation inside the engine; read its events from `channel`."""

    def __init__(
        self, session_id: int, request: GenerationRequest, capacity: int, prompt: Prompt
    ) -> None:
        self.id = session_id
        self.request = request
        self.prompt = prompt
        self.channel = Channel(capacity)
        self.cancel_reason: str | None = None

    @property
    def cancelled(self) -> bool:
        return self.cancel_reason is not None
