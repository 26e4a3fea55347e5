"""Time to first token and tokens per second, measured the same way everywhere.

`tokens_per_s` is the decode rate: the tokens after the first, over the time since the first
arrived (the first token's wait is prefill, reported separately as `ttft_s`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class StreamTimer:
    started: float = field(default_factory=time.perf_counter)
    first_at: float | None = None
    last_at: float | None = None
    tokens: int = 0

    def token(self) -> None:
        now = time.perf_counter()
        if self.first_at is None:
            self.first_at = now
        self.last_at = now
        self.tokens += 1

    @property
    def ttft_s(self) -> float | None:
        return None if self.first_at is None else self.first_at - self.started

    @property
    def elapsed_s(self) -> float:
        return (self.last_at or time.perf_counter()) - self.started

    @property
    def tokens_per_s(self) -> float | None:
        if self.tokens < 2 or self.first_at is None or self.last_at is None:
            return None
        span = self.last_at - self.first_at
        return (self.tokens - 1) / span if span > 0 else None
