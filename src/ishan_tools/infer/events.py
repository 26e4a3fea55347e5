"""The events of one generation, as the engine emits them and every stream carries them.

A stream is zero or more `Token`s, then exactly one `Done` or `Failed`. The worker sends them
as NDJSON (`protocol.encode_event`), the coordinator reads them back (`protocol.decode_event`)
and renders them for its clients.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Token:
    """A piece of generated text (one token, or a few held back to complete a character)."""

    text: str


@dataclass(frozen=True)
class Done:
    """The generation ended normally: `finish_reason` is "stop" or "length"."""

    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class Failed:
    """The generation ended with an error; `status` is the HTTP status that fits it best."""

    message: str
    status: int = 500


Event = Token | Done | Failed
