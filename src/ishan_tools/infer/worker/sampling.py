"""Per-session sampling and text assembly for the batched decode loop.

Each session owns a `Sampler` (its own temperature, top_p and seeded generator, with
llama-cpp-python's default top_k=40 and min_p=0.05 before them) and a `TextAssembler`
that turns token bytes into text: it holds back incomplete UTF-8 characters and any tail
that could still become one of the session's stop strings.
"""

from __future__ import annotations

import codecs

import numpy as np
import numpy.typing as npt

TOP_K = 40  # llama-cpp-python's create_completion defaults
MIN_P = 0.05


class Sampler:
    """Picks the next token from one session's logits."""

    def __init__(self, temperature: float, top_p: float, seed: int | None) -> None:
        self.temperature = temperature
        self.top_p = top_p
        self.rng = np.random.default_rng(seed)

    def sample(self, logits: npt.NDArray[np.float32]) -> int:
        if self.temperature <= 0.0:
            return int(np.argmax(logits))
        k = min(TOP_K, logits.shape[0])
        top = np.argpartition(logits, -k)[-k:]
        top = top[np.argsort(-logits[top], kind="stable")]
        scaled = logits[top].astype(np.float64)
        scaled -= scaled[0]
        probs = np.exp(scaled) / np.exp(scaled).sum()
        if self.top_p < 1.0:  # llama.cpp's order: top_k, top_p, min_p, then temperature
            keep = int(np.searchsorted(np.cumsum(probs), self.top_p)) + 1
            top, scaled, probs = top[:keep], scaled[:keep], probs[:keep]
        mask = probs >= MIN_P * probs[0]
        top, scaled = top[mask], scaled[mask]
        probs = np.exp(scaled / self.temperature)
        probs /= probs.sum()
        return int(self.rng.choice(top, p=probs))


class TextAssembler:
    """Bytes in, text out: whole characters only, and never part of a stop string."""

    def __init__(self, stop: tuple[str, ...]) -> None:
        self.stop = stop
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""
        self.stopped = False

    def feed(self, piece: bytes) -> str:
        """The text that is now safe to send; sets `stopped` when a stop string appears."""
        self._pending += self._decoder.decode(piece)
        if not self.stop:
            text, self._pending = self._pending, ""
            return text
        hits = [i for i in (self._pending.find(s) for s in self.stop) if i >= 0]
        if hits:
            self.stopped = True
            text, self._pending = self._pending[: min(hits)], ""
            return text
        hold = 0
        for s in self.stop:
            for n in range(min(len(s) - 1, len(self._pending)), hold, -1):
                if self._pending.endswith(s[:n]):
                    hold = n
                    break
        cut = len(self._pending) - hold
        text, self._pending = self._pending[:cut], self._pending[cut:]
        return text

    def flush(self) -> str:
        """Whatever is held back, at the end of a generation that did not hit a stop."""
        text, self._pending = self._pending + self._decoder.decode(b"", final=True), ""
        return text
