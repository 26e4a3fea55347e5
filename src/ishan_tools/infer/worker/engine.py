"""The worker's engine: with `decoder` and `batch`, the only code that touches llama.cpp.

One engine owns one `llama_cpp.Llama` (weights, tokenizer, chat template), one batched
llama context (`batch.BatchContext`) and one decode thread. Callers `submit` a request and
read its session's channel. The decode thread admits waiting sessions into up to `slots`
sequences (in the order of `fair_queue`: first come, first served, or with tenants, FIFO
within each and weighted fair across them) and advances them together: each step is one
llama batch holding the next token of every running session plus, within the batch size,
a chunk of a newly admitted session's prompt (so running streams keep flowing while a
long prompt is read). Each session samples through its own llama.cpp sampler chain
(`sampling.Sampler`: penalties, grammar, its own seed); a finished or cancelled one leaves
the batch at once, its KV cells freed or kept as prefix cache (`decoder`). Cancellation is
checked between steps.

A solo greedy session decodes exactly as llama-cpp-python does on its own; when several
sessions share a batch the logits may differ in their last bits, so a greedy session can
pick another token where two are nearly tied.

KV accounting: `submit` tokenizes the prompt, so each session reserves exactly what it can
fill, `min(prompt tokens + max_tokens, n_ctx) * kv_bytes_per_token` (from the model's real
shape); admission checks that need against the KV budget. `kv_used_bytes` is the waiting
sessions' needs plus, for the running ones, the cells they hold (a prefix shared between
sessions counted once) and what each may still add. Finished sessions kept as prefix cache
are not in it: their cells give way to any live session (`decoder`). `kv_cached_bytes` is
every cell filled now, `prefix_cache_bytes` the part only the cache holds.
"""

from __future__ import annotations

import itertools
import logging
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ishan_tools.errors import InferenceError
from ishan_tools.infer.config import EngineSettings, GenerationRequest
from ishan_tools.infer.errors import EngineBusy, PromptRejected
from ishan_tools.infer.events import Event, Failed, Token
from ishan_tools.infer.worker.decoder import Decoder, Ended
from ishan_tools.infer.worker.fair_queue import FairQueue
from ishan_tools.infer.worker.grammar_check import GrammarChecker
from ishan_tools.infer.worker.session import Session

log = logging.getLogger(__name__)
F16_BYTES = 2
DEFAULT_MAX_SLOTS = 8


@dataclass(frozen=True)
class ModelShape:
    """What the coordinator needs to know about the loaded model."""

    name: str
    n_ctx: int
    kv_bytes_per_token: int

    @property
    def session_kv_bytes(self) -> int:
        return self.kv_bytes_per_token * self.n_ctx


@dataclass(frozen=True)
class EngineStats:
    sessions: int
    active: int
    waiting: int
    kv_used_bytes: int
    kv_capacity_bytes: int
    max_sessions: int
    slots: int
    kv_cached_bytes: int
    completed: int
    cancelled: int
    failed: int
    prefix_cache: bool
    prefix_cache_entries: int
    prefix_cache_bytes: int
    prefix_cache_hits: int
    prefix_cache_reused_tokens: int
    prefix_cache_evictions: int
    draft_tokens: int
    draft_kept_tokens: int


def model_shape(llama: Any, name: str) -> ModelShape:
    """Read the KV cache cost per token from the GGUF metadata (f16 K and V per layer)."""
    meta: dict[str, str] = llama.metadata
    arch = meta.get("general.architecture", "llama")

    def num(key: str, default: int | None = None) -> int:
        value = meta.get(f"{arch}.{key}")
        if value is None:
            if default is None:
                raise InferenceError(f"model metadata lacks {arch}.{key}: not a usable GGUF")
            return default
        return int(value)

    n_layer = num("block_count")
    n_head = num("attention.head_count")
    n_head_kv = num("attention.head_count_kv", n_head)
    head_dim = num("embedding_length") // n_head
    key_len = num("attention.key_length", head_dim)
    value_len = num("attention.value_length", head_dim)
    per_token = n_layer * n_head_kv * (key_len + value_len) * F16_BYTES
    return ModelShape(name=name, n_ctx=int(llama.n_ctx()), kv_bytes_per_token=per_token)


def load_llama(settings: EngineSettings) -> Any:
    """Create the llama.cpp model with explicit context, batch and thread settings."""
    try:
        from llama_cpp import Llama, llama_supports_gpu_offload
    except ImportError as exc:
        raise InferenceError(
            "llama-cpp-python is not installed: pip install 'ishan-tools[infer]'"
        ) from exc
    model = settings.model
    if model.n_gpu_layers and not llama_supports_gpu_offload():
        log.warning(
            "--gpu-layers %d has no effect: this llama-cpp-python build has no GPU support, "
            'so every layer runs on the CPU (reinstall it with CMAKE_ARGS="-DGGML_CUDA=on" '
            "for CUDA)",
            model.n_gpu_layers,
        )
    try:
        return Llama(
            model_path=str(model.path),
            n_ctx=model.n_ctx,
            n_batch=model.n_batch,
            n_threads=model.n_threads,
            n_threads_batch=model.threads_batch,
            n_gpu_layers=model.n_gpu_layers,
            flash_attn=model.flash_attn,
            verbose=False,
        )
    except (ValueError, RuntimeError) as exc:
        raise InferenceError(f"cannot load model {model.path}: {exc}") from exc


def default_slots(settings: EngineSettings, shape: ModelShape, max_sessions: int) -> int:
    """`settings.slots`, or as many full contexts as the KV budget holds (at most 8)."""
    by_memory = max(1, settings.kv_capacity_bytes // shape.session_kv_bytes)
    if settings.slots is None:
        return max(1, min(max_sessions, by_memory, DEFAULT_MAX_SLOTS))
    if settings.slots > settings.model.n_batch:
        raise InferenceError(
            f"--slots {settings.slots} is more than --batch {settings.model.n_batch}: one "
            "batch must hold the next token of every slot"
        )
    if settings.slots > by_memory:
        raise InferenceError(
            f"--slots {settings.slots} needs {settings.slots * shape.session_kv_bytes} bytes of "
            f"KV cache, over the {settings.kv_capacity_bytes}-byte budget: lower --slots or --ctx"
        )
    return settings.slots


class Engine:
    """Runs generations on one model in a dedicated decode thread, `slots` at a time."""

    def __init__(self, settings: EngineSettings, llama: Any) -> None:
        self.settings = settings
        self.llama = llama
        self.shape = model_shape(llama, settings.model.path.name)
        if self.shape.session_kv_bytes > settings.max_kv_per_session_bytes:
            raise InferenceError(
                f"a {self.shape.n_ctx}-token context needs {self.shape.session_kv_bytes} bytes "
                f"of KV cache, over the {settings.max_kv_per_session_bytes}-byte limit per "
                "session: lower --ctx"
            )
        self.max_sessions = max(1, settings.max_sessions)
        self.kv_capacity_bytes = settings.kv_capacity_bytes
        self.slots = default_slots(settings, self.shape, self.max_sessions)
        self._decoder = Decoder(
            llama,
            self.shape.n_ctx,
            self.slots,
            self.shape.kv_bytes_per_token,
            self.shape.name,
            prefix_cache=settings.prefix_cache,
            draft_max=settings.draft_max,
        )
        self._cells = {"filled": 0, "live": 0, "cache_only": 0}
        self._cache_counts = {"entries": 0, "hits": 0, "reused": 0, "evictions": 0}
        self._drafts = {"drafted": 0, "kept": 0}
        self._kv_waiting = 0  # the needs of the sessions not yet running
        self.grammars = GrammarChecker(settings.model.path)  # its child starts on first use
        self.boot_id = uuid.uuid4().hex  # tells the coordinator this is a new process
        self._ids = itertools.count(1)
        self._cond = threading.Condition(threading.Lock())
        self._waiting = FairQueue()
        self._active: list[Session] = []
        self._closed = False
        self._counts = {"completed": 0, "cancelled": 0, "failed": 0}
        self._thread = threading.Thread(target=self._decode_loop, name="engine", daemon=True)
        self._thread.start()

    @classmethod
    def load(cls, settings: EngineSettings) -> Engine:
        return cls(settings, load_llama(settings))

    # -- the public side --------------------------------------------------------------

    def submit(self, request: GenerationRequest) -> Session:
        """Tokenize and queue a generation.

        Its grammar or schema is tried in a child process first (`grammar_check`). Raises
        `PromptRejected` for a prompt, grammar or schema that cannot be used, and `EngineBusy`
        when the engine holds `max_sessions` already or the session's KV need (prompt plus
        `max_tokens`, at most a full context) does not fit the KV budget left.
        """
        prompt = self._decoder.prepare(request, self.grammars.grammar_for(request))
        with self._cond:
            if self._closed:
                raise EngineBusy("the engine is shutting down")
            if len(self._waiting) + len(self._active) >= self.max_sessions:
                raise EngineBusy(f"worker is at capacity ({self.max_sessions} sessions)")
            used = self._kv_used()
            if used + prompt.kv_bytes > self.kv_capacity_bytes:
                raise EngineBusy(
                    f"worker is at capacity: {prompt.kv_bytes} bytes of KV cache needed, "
                    f"{self.kv_capacity_bytes - used} free"
                )
            session = Session(next(self._ids), request, self.settings.channel_capacity, prompt)
            session.ahead = len(self._waiting) + len(self._active)
            self._kv_waiting += prompt.kv_bytes
            self._waiting.append(session)
            self._cond.notify()
        return session

    def cancel(self, session: Session, reason: str = "cancelled") -> None:
        """Stop a session now if it waits, or before its next token if it runs."""
        with self._cond:
            if session.cancelled or session.channel.closed:
                return
            session.cancel_reason = reason
            if session in self._waiting:
                self._waiting.remove(session)
                self._kv_waiting -= session.prompt.kv_bytes
                self._counts["cancelled"] += 1
                session.channel.close_with(Failed(reason, status=499))

    def stream(self, request: GenerationRequest) -> Iterator[Event]:
        """Submit and yield the session's events until the last one (for in-process use)."""
        try:
            session = self.submit(request)
        except PromptRejected as exc:
            yield Failed(exc.message, status=400)
            return
        try:
            while True:
                event = session.channel.get()
                assert event is not None
                yield event
                if not isinstance(event, Token):
                    return
        finally:
            self.cancel(session)

    def _kv_used(self) -> int:
        return self._kv_waiting + self._cells["live"] * self.shape.kv_bytes_per_token

    def stats(self) -> EngineStats:
        per_token = self.shape.kv_bytes_per_token
        with self._cond:
            sessions = len(self._waiting) + len(self._active)
            cache = self._cache_counts
            return EngineStats(
                sessions=sessions,
                active=len(self._active),
                waiting=len(self._waiting),
                kv_used_bytes=self._kv_used(),
                kv_capacity_bytes=self.kv_capacity_bytes,
                max_sessions=self.max_sessions,
                slots=self.slots,
                kv_cached_bytes=self._cells["filled"] * per_token,
                **self._counts,
                prefix_cache=self._decoder.cache is not None,
                prefix_cache_entries=cache["entries"],
                prefix_cache_bytes=self._cells["cache_only"] * per_token,
                prefix_cache_hits=cache["hits"],
                prefix_cache_reused_tokens=cache["reused"],
                prefix_cache_evictions=cache["evictions"],
                draft_tokens=self._drafts["drafted"],
                draft_kept_tokens=self._drafts["kept"],
            )

    def close(self) -> None:
        """Cancel everything and stop the decode thread."""
        with self._cond:
            self._closed = True
            waiting = list(self._waiting)
            for session in self._active:
                session.cancel_reason = "worker shutting down"
            self._cond.notify_all()
        for session in waiting:
            self.cancel(session, "worker shutting down")
        self._thread.join(timeout=30)
        self.grammars.close()

    # -- the decode thread ------------------------------------------------------------

    def _decode_loop(self) -> None:
        decoder = self._decoder
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(
                        lambda: bool(self._waiting) or bool(decoder.runs) or self._closed
                    )
                    if self._closed:
                        return
                    admitted: list[Session] = []
                    while self._waiting and len(admitted) < decoder.free_slots:
                        admitted.append(self._waiting.popleft())
                    self._active.extend(admitted)
                for session in admitted:
                    decoder.start(session)
                ended = decoder.reap()
                try:
                    if decoder.runs:
                        ended += decoder.step()
                except Exception as exc:  # never let one bad step stop the decode thread
                    ended += decoder.abort_all(f"generation failed: {exc}", status=500)
                self._record(ended, admitted)
        finally:
            self._record(decoder.abort_all("worker shutting down"), [])
            decoder.close()

    def _record(self, ended: Ended, admitted: list[Session]) -> None:
        """Settle the accounts (sessions that started or ended, KV cells), then send the
        ended sessions' last events."""
        decoder = self._decoder
        live, filled = decoder.live_tokens(), decoder.cached_tokens
        cache_only = decoder.cache_only_tokens()
        cache = decoder.cache
        with self._cond:
            self._kv_waiting -= sum(session.prompt.kv_bytes for session in admitted)
            self._cells.update(filled=filled, live=live, cache_only=cache_only)
            self._drafts.update(drafted=decoder.drafted, kept=decoder.draft_kept)
            if cache is not None:
                self._cache_counts.update(
                    entries=len(cache),
                    hits=cache.hits,
                    reused=cache.reused_tokens,
                    evictions=cache.evictions,
                )
            for session, outcome, _ in ended:
                self._active.remove(session)
                self._counts[outcome] += 1
        for session, _, event in ended:
            session.channel.close_with(event)
