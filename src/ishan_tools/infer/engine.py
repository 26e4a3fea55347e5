"""The worker's engine: the only code that touches the llama.cpp model.

One engine owns one `llama_cpp.Llama` (weights, tokenizer, KV cache) and one decode thread.
Callers `submit` a request and read its session's channel; the decode thread admits waiting
sessions into `slots` (one today) and advances them token by token, checking for
cancellation between tokens. Batched decoding plugs in at `_decode_loop`: admit up to N
sessions into slots and advance them with one llama batch per step; the session, channel
and accounting interfaces stay as they are.

KV accounting: every session reserves the KV cache of a full context (`kv_bytes_per_token *
n_ctx`), computed from the model's real shape, so memory, not a nominal count, bounds how
many sessions one worker holds.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ishan_tools.errors import InferenceError
from ishan_tools.infer.channel import Channel, Done, Event, Failed, Token
from ishan_tools.infer.config import EngineSettings, GenerationRequest

F16_BYTES = 2


class EngineBusy(InferenceError):
    """The engine already holds its maximum number of sessions."""


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
    completed: int
    cancelled: int
    failed: int


class Session:
    """One generation inside the engine; read its events from `channel`."""

    def __init__(self, session_id: int, request: GenerationRequest, capacity: int) -> None:
        self.id = session_id
        self.request = request
        self.channel = Channel(capacity)
        self.cancel_reason: str | None = None

    @property
    def cancelled(self) -> bool:
        return self.cancel_reason is not None


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
        from llama_cpp import Llama
    except ImportError as exc:
        raise InferenceError(
            "llama-cpp-python is not installed: pip install 'ishan-tools[infer]'"
        ) from exc
    model = settings.model
    try:
        return Llama(
            model_path=str(model.path),
            n_ctx=model.n_ctx,
            n_batch=model.n_batch,
            n_threads=model.n_threads,
            n_threads_batch=model.threads_batch,
            verbose=False,
        )
    except (ValueError, RuntimeError) as exc:
        raise InferenceError(f"cannot load model {model.path}: {exc}") from exc


class Engine:
    """Runs generations on one model in a dedicated decode thread."""

    slots = 1  # sessions decoded at once; the rest wait in order

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
        by_memory = settings.kv_capacity_bytes // self.shape.session_kv_bytes
        self.max_sessions = max(1, min(settings.max_sessions, by_memory))
        self._ids = itertools.count(1)
        self._cond = threading.Condition(threading.Lock())
        self._waiting: deque[Session] = deque()
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
        """Queue a generation; `EngineBusy` when the engine holds `max_sessions` already."""
        with self._cond:
            if self._closed:
                raise EngineBusy("the engine is shutting down")
            if len(self._waiting) + len(self._active) >= self.max_sessions:
                raise EngineBusy(f"worker is at capacity ({self.max_sessions} sessions)")
            session = Session(next(self._ids), request, self.settings.channel_capacity)
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
                self._counts["cancelled"] += 1
                session.channel.close_with(Failed(reason, status=499))

    def stream(self, request: GenerationRequest) -> Iterator[Event]:
        """Submit and yield the session's events until the last one (for in-process use)."""
        session = self.submit(request)
        try:
            while True:
                event = session.channel.get()
                assert event is not None
                yield event
                if not isinstance(event, Token):
                    return
        finally:
            self.cancel(session)

    def stats(self) -> EngineStats:
        with self._cond:
            sessions = len(self._waiting) + len(self._active)
            return EngineStats(
                sessions=sessions,
                active=len(self._active),
                waiting=len(self._waiting),
                kv_used_bytes=sessions * self.shape.session_kv_bytes,
                kv_capacity_bytes=self.max_sessions * self.shape.session_kv_bytes,
                max_sessions=self.max_sessions,
                **self._counts,
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

    # -- the decode thread ------------------------------------------------------------

    def _decode_loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._waiting) or self._closed)
                if self._closed:
                    return
                session = self._waiting.popleft()
                self._active.append(session)
            outcome = self._generate(session)
            with self._cond:
                self._active.remove(session)
                self._counts[outcome] += 1

    def _generate(self, session: Session) -> str:
        """Run one session to its end; returns which counter it ends in."""
        request = session.request
        options: dict[str, Any] = {
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "seed": request.seed,
            "stop": list(request.stop) or None,
            "stream": True,
        }
        chat = request.messages is not None
        pieces = 0
        prompt_tokens = 0
        chunks: Iterator[Any] | None = None
        try:
            if request.messages is not None:
                messages = [{"role": role, "content": text} for role, text in request.messages]
                chunks = self.llama.create_chat_completion(messages=messages, **options)
            else:
                chunks = self.llama.create_completion(request.prompt or "", **options)
            assert chunks is not None
            for chunk in chunks:
                if session.cancelled:
                    session.channel.close_with(Failed(session.cancel_reason or "", status=499))
                    return "cancelled"
                if not prompt_tokens:
                    prompt_tokens = int(self.llama.n_tokens)
                choice = chunk["choices"][0]
                text = (choice["delta"].get("content") if chat else choice["text"]) or ""
                if text:
                    pieces += 1
                    if not session.channel.offer(Token(text)):
                        session.cancel_reason = "reader too slow: its buffer is full"
                        session.channel.close_with(Failed(session.cancel_reason, status=499))
                        return "cancelled"
                if choice.get("finish_reason"):
                    session.channel.close_with(Done(choice["finish_reason"], prompt_tokens, pieces))
                    return "completed"
            session.channel.close_with(Done("stop", prompt_tokens, pieces))
            return "completed"
        except ValueError as exc:  # llama-cpp-python's "prompt exceeds the context window"
            session.channel.close_with(Failed(str(exc), status=400))
            return "failed"
        except Exception as exc:
            session.channel.close_with(Failed(f"generation failed: {exc}", status=500))
            return "failed"
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
