"""`ishan infer run`: load the model in this process and stream one completion."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ishan_tools.errors import InferenceError
from ishan_tools.infer.config import EngineSettings, GenerationRequest
from ishan_tools.infer.events import Done, Failed, Token
from ishan_tools.infer.timing import StreamTimer
from ishan_tools.infer.worker.engine import Engine


@dataclass(frozen=True)
class RunResult:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    ttft_s: float | None
    tokens_per_s: float | None
    elapsed_s: float


def run(
    settings: EngineSettings,
    request: GenerationRequest,
    on_token: Callable[[str], None] = lambda _text: None,
) -> RunResult:
    """Generate `request` locally, calling `on_token` for every piece as it arrives."""
    engine = Engine.load(settings)
    try:
        timer = StreamTimer()
        parts: list[str] = []
        for event in engine.stream(request):
            if isinstance(event, Token):
                timer.token()
                parts.append(event.text)
                on_token(event.text)
            elif isinstance(event, Failed):
                raise InferenceError(event.message)
            elif isinstance(event, Done):
                return RunResult(
                    text="".join(parts),
                    finish_reason=event.finish_reason,
                    prompt_tokens=event.prompt_tokens,
                    completion_tokens=event.completion_tokens,
                    ttft_s=timer.ttft_s,
                    tokens_per_s=timer.tokens_per_s,
                    elapsed_s=timer.elapsed_s,
                )
        raise InferenceError("the generation ended without a result")  # pragma: no cover
    finally:
        engine.close()
