"""Cache-aware routing that every coordinator agrees on without sharing any state.

The coordinator has no tokenizer and no chat template, so it keys on text: the prompt, or a
chat's messages in order (role and content), cut into blocks of `BLOCK_CHARS` characters.
The key of block i hashes blocks 0..i, so one key stands for a whole leading text, and two
requests share key i exactly when their first i + 1 blocks match. Only whole blocks count:
a text shorter than one block has no key and is routed by load alone.

A request's owner is chosen by rendezvous (highest random weight) hashing of its first key
over the candidate workers: each worker scores `hash(key, worker id)` and the highest wins.
It is a pure function of the key and the list of workers, so two coordinators behind a
round-robin balancer send the same leading text to the same worker (and its prefix cache)
with nothing exchanged; a worker leaving a coordinator's list moves only its own keys, to
the worker that ranked second, and they come back when it returns. The first key is the
one hashed, so a shared system prompt keeps every conversation that starts with it on one
worker whatever the questions after it; the scheduler's load margin and free-slot rule
(`scheduler.pick`) send the overflow of a hot prefix elsewhere.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from ishan_tools.infer.config import GenerationRequest

BLOCK_CHARS = 256
MAX_BLOCKS = 64  # texts longer than 16k characters are keyed by their first 16k


def leading_text(request: GenerationRequest) -> str:
    if request.messages is not None:
        return "".join(f"\x1e{role}\x1f{content}" for role, content in request.messages)
    return request.prompt or ""


def prefix_keys(text: str, group: str | None = None) -> list[bytes]:
    """One key per whole leading block of `text`, shortest prefix first; a tenant's cache
    `group` makes keys of its own (its text goes where its own cache is, not another's)."""
    digest = hashlib.blake2b(digest_size=12)
    if group is not None:
        digest.update(group.encode() + b"\x00")
    keys = []
    for start in range(0, min(len(text) // BLOCK_CHARS, MAX_BLOCKS) * BLOCK_CHARS, BLOCK_CHARS):
        digest.update(text[start : start + BLOCK_CHARS].encode("utf-8", "surrogatepass"))
        keys.append(digest.copy().digest())
    return keys


def weight(key: bytes, worker_id: str) -> int:
    """The worker's random weight for `key` (the same in every process)."""
    digest = hashlib.blake2b(key, digest_size=8, person=b"ishan-hrw")
    digest.update(worker_id.encode("utf-8", "surrogatepass"))
    return int.from_bytes(digest.digest(), "big")


def owner(keys: list[bytes], worker_ids: Iterable[str]) -> str | None:
    """The worker that owns this leading text among `worker_ids` (None: no key, or none)."""
    if not keys:
        return None
    key = keys[0]
    best: tuple[int, str] | None = None
    for worker_id in worker_ids:
        candidate = (weight(key, worker_id), worker_id)
        if best is None or candidate > best:
            best = candidate
    return None if best is None else best[1]


class Affinity:
    """How often a request's owner took it (followed), or load or a failure sent it
    elsewhere (overridden)."""

    def __init__(self) -> None:
        self.routed = {"followed": 0, "overridden": 0}  # requests with a leading-text key
