"""Cache-aware routing: which worker most recently served a request's leading text.

The coordinator has no tokenizer and no chat template, so it keys on text: the prompt, or a
chat's messages in order (role and content), cut into blocks of `BLOCK_CHARS` characters.
The key of block i hashes blocks 0..i, so one key stands for a whole leading text, and two
requests share key i exactly when their first i + 1 blocks match. Only whole blocks count:
a text shorter than one block has no key and is routed by load alone.

`Affinity` maps keys to the worker that last got them, bounded in LRU order (as SGLang's
cache-aware router keeps a tree of prefixes per worker). A worker that restarts (its cache
is empty) or leaves the rotation is forgotten.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from ishan_tools.infer.config import GenerationRequest

BLOCK_CHARS = 256
MAX_BLOCKS = 64  # texts longer than 16k characters are keyed by their first 16k


def leading_text(request: GenerationRequest) -> str:
    if request.messages is not None:
        return "".join(f"\x1e{role}\x1f{content}" for role, content in request.messages)
    return request.prompt or ""


def prefix_keys(text: str) -> list[bytes]:
    """One key per whole leading block of `text`, shortest prefix first."""
    digest = hashlib.blake2b(digest_size=12)
    keys = []
    for start in range(0, min(len(text) // BLOCK_CHARS, MAX_BLOCKS) * BLOCK_CHARS, BLOCK_CHARS):
        digest.update(text[start : start + BLOCK_CHARS].encode("utf-8", "surrogatepass"))
        keys.append(digest.copy().digest())
    return keys


class Affinity:
    """Leading-text keys -> the worker that last served them (LRU, `max_entries` keys)."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._workers: OrderedDict[bytes, str] = OrderedDict()
        self.routed = {"followed": 0, "overridden": 0}  # requests with a known leading text

    def __len__(self) -> int:
        return len(self._workers)

    def lookup(self, keys: list[bytes]) -> str | None:
        """The worker that served the longest of these leading texts, if any."""
        for key in reversed(keys):
            worker_id = self._workers.get(key)
            if worker_id is not None:
                return worker_id
        return None

    def record(self, keys: list[bytes], worker_id: str) -> None:
        for key in keys:
            self._workers[key] = worker_id
            self._workers.move_to_end(key)
        while len(self._workers) > self.max_entries:
            self._workers.popitem(last=False)

    def forget(self, worker_id: str) -> None:
        """Drop every key of `worker_id` (it restarted, or left the rotation)."""
        for key in [k for k, w in self._workers.items() if w == worker_id]:
            del self._workers[key]
