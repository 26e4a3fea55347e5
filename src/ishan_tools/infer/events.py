"""The events of one generation, as the engine emits them and every stream carries them.

A stream is zero or more `Token`s, then exactly one `Done` or `Failed`. The worker sends them
as NDJSON (`protocol.encode_event`), the coordinator reads them back (`protocol.decode_event`)
and renders them for its clients.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Token:
    """A piece of generated text (one token, or a few held back to complete a character).

    `json` is the text as a JSON string literal when the stream that carried it had one:
    every hop after the worker splices it into its own format instead of encoding again.
    """

    text: str
    json: str | None = field(default=None, compare=False, repr=False)


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
