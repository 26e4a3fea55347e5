"""The options the `ishan infer` commands share, as `Annotated` types for their signatures,
and the checks of option values that are more than a type (URLs, `--coordinator-url` lists).

Defaults stay in the command signatures, read from the settings classes (`infer.config`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ishan_tools._cli.extras import require_extra
from ishan_tools._cli.options import host_option, port_option
from ishan_tools.errors import UsageError
from ishan_tools.infer.config import CoordinatorSettings, parse_limits

# `--port` of serve, coordinator and worker; the bare name is the original engine's
PORT_ENV = ["ISHAN_INFER_PORT", "PORT"]

ModelOpt = Annotated[
    Path | None,
    typer.Option(
        "--model",
        envvar=["ISHAN_INFER_MODEL", "MODEL_PATH"],
        help="GGUF file [default: SmolLM2-135M-Instruct]",
    ),
]
ModelNameOpt = Annotated[
    str | None,
    typer.Option(
        "--model-name",
        envvar="ISHAN_INFER_MODEL_NAME",
        help="The name clients send for this model [default: the file's stem, e.g. "
        "SmolLM2-135M-Instruct.Q4_1; the file name with .gguf is accepted too]",
    ),
]
ServeModelOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--model",
        envvar=["ISHAN_INFER_MODEL", "MODEL_PATH"],
        help="GGUF file, or NAME=PATH to serve it under NAME (default name: the file's stem); "
        "repeatable: worker i serves model i modulo their number (round robin), and "
        "--workers is raised to one per model [default: SmolLM2-135M-Instruct]",
    ),
]
CtxOpt = Annotated[
    int, typer.Option("--ctx", envvar="ISHAN_INFER_CTX", min=16, help="Context tokens per session.")
]
ThreadsOpt = Annotated[
    int | None,
    typer.Option(
        "--threads", envvar="ISHAN_INFER_THREADS", min=1, help="CPU threads [default: all]"
    ),
]
BatchOpt = Annotated[int, typer.Option("--batch", min=1, help="Prompt tokens per llama batch.")]
GpuLayersOpt = Annotated[
    int,
    typer.Option(
        "--gpu-layers",
        envvar="ISHAN_INFER_GPU_LAYERS",
        min=-1,
        help="Model layers offloaded to the GPU (-1: all); no effect on a CPU-only build.",
    ),
]
FlashAttnOpt = Annotated[
    bool,
    typer.Option(
        "--flash-attn/--no-flash-attn",
        envvar="ISHAN_INFER_FLASH_ATTN",
        help="llama.cpp's flash attention (llama-server's default on CPU): attention skips "
        "the KV cells a session cannot see.",
    ),
]
SystemOpt = Annotated[
    str | None, typer.Option("--system", help="System message before the prompt.")
]
RawOpt = Annotated[
    bool, typer.Option("--raw", help="Send the prompt verbatim, without the chat template.")
]
ChatOpt = Annotated[
    bool,
    typer.Option("--chat", help="The chat template (the default now; kept for old scripts)."),
]
MaxTokensOpt = Annotated[int, typer.Option("--max-tokens", min=1, help="Tokens to generate.")]
ApiKeyOpt = Annotated[
    str | None,
    typer.Option("--api-key", envvar="ISHAN_INFER_API_KEY", help="Require this bearer token."),
]
TenantsOpt = Annotated[
    Path | None,
    typer.Option(
        "--tenants",
        envvar="ISHAN_INFER_TENANTS",
        help="Tenants file (TOML; `ishan infer tenants add` writes it): clients then need a "
        "tenant's key and keep to its quotas; --api-key is the cluster key only. SIGHUP "
        "reloads it.",
    ),
]
StateOpt = Annotated[
    str | None,
    typer.Option(
        "--state",
        envvar="ISHAN_INFER_STATE",
        help="redis://HOST:PORT/DB: keep the tenants' sessions and token windows there, so "
        "their limits hold across every coordinator sharing it (needs --tenants). While "
        "Redis is away, each coordinator enforces them alone.",
    ),
]
StateLeaseOpt = Annotated[
    float,
    typer.Option(
        "--state-lease",
        min=0.5,
        help="Seconds a coordinator's sessions stay counted in --state after its last "
        "renewal (every third of it): a killed coordinator's are freed then.",
    ),
]
HeartbeatOpt = Annotated[
    float, typer.Option("--heartbeat-interval", min=0.05, help="Seconds between heartbeats.")
]
WriteTimeoutOpt = Annotated[
    float,
    typer.Option(
        "--write-timeout",
        envvar="ISHAN_INFER_WRITE_TIMEOUT",
        min=0.0,
        help="Seconds a coordinator may leave this worker's writes unacknowledged (cut off by "
        "the network) before the worker drops the connection and frees the session "
        "(TCP_USER_TIMEOUT; a slow reader is not cut off). 0: the kernel's own, ~15 min.",
    ),
]
MaxSessionsOpt = Annotated[
    int,
    typer.Option("--max-sessions", min=1, help="Sessions one worker holds (running + waiting)."),
]
SlotsOpt = Annotated[
    int | None,
    typer.Option(
        "--slots",
        envvar="ISHAN_INFER_SLOTS",
        min=1,
        help="Sessions one worker decodes together in one batch [default: what the KV budget "
        "holds, at most 8].",
    ),
]

DraftMaxOpt = Annotated[
    int,
    typer.Option(
        "--draft-max",
        min=0,
        max=16,
        help="Tokens a greedy session drafts from its own text per step and checks in the "
        "same batch (prompt lookup; the output is unchanged). 0 turns drafting off.",
    ),
]
PrefixCacheOpt = Annotated[
    bool,
    typer.Option(
        "--prefix-cache/--no-prefix-cache",
        help="Reuse the KV cache of a prompt prefix already in the worker (running or "
        "finished sessions) instead of prefilling it again.",
    ),
]
RoutingMarginOpt = Annotated[
    float,
    typer.Option(
        "--routing-margin",
        min=0.0,
        help="Send a request to the worker that served its leading text unless that worker's "
        "load score is worse than the best by more than this.",
    ),
]

HostOpt = Annotated[str, host_option(["ISHAN_INFER_HOST", "HOST"])]
CoordPortOpt = Annotated[int, port_option(PORT_ENV, "Coordinator port (0: any free port).")]
TtlOpt = Annotated[
    float, typer.Option("--session-ttl", min=0.1, help="Seconds a session may sit idle.")
]
GraceOpt = Annotated[
    int, typer.Option("--grace", min=0, help="Seconds running streams get on shutdown.")
]
FirstTokenOpt = Annotated[
    float,
    typer.Option("--first-token-timeout", min=0.1, help="Seconds before a silent worker failed."),
]

BreakerSlowOpt = Annotated[
    float | None,
    typer.Option(
        "--breaker-slow-first-token",
        min=0.001,
        show_default=False,
        help="Seconds: a worker whose first token takes longer made a slow call; 3 in a row "
        "open its breaker (off by default).",
    ),
]

ClientBufferOpt = Annotated[
    int, typer.Option("--client-buffer", min=1, help="Events held for a slow client.")
]
LimitOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--limit",
        help="KEY=VALUE admission limit, repeatable: worker-sessions (100), worker-kv (8GB), "
        "session-kv (512MB), sessions (1000), kv (64GB).",
    ),
]


CoordinatorUrlOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--coordinator-url",
        envvar=["ISHAN_INFER_COORDINATOR_URL", "COORDINATOR_URL"],
        help="Send heartbeats here; repeatable, or several comma- or space-separated. "
        "URL=WORKER_URL: give that coordinator another URL of this worker.",
    ),
]

WorkerUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--worker-url",
        envvar=["ISHAN_INFER_WORKER_URL", "WORKER_URL"],
        help="URL the coordinator uses.",
    ),
]


def check_url(url: str, option: str) -> str:
    """`url` without its trailing slash; a usage error unless it is http:// or https://."""
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"{option} must be an http:// or https:// URL, got {url!r}")
    return url.rstrip("/")


def coordinator_urls(values: list[str] | None) -> tuple[tuple[str, str | None], ...]:
    """`--coordinator-url` values (each may hold several, comma- or space-separated), each
    `COORDINATOR` or `COORDINATOR=WORKER_URL`: the URL this worker gives that coordinator
    (when it reaches the worker by another address than the others do)."""
    found: list[tuple[str, str | None]] = []
    for value in values or []:
        for item in value.replace(",", " ").split():
            coordinator, sep, advertised = item.partition("=")
            if sep and not advertised.startswith(("http://", "https://")):
                raise UsageError(
                    "--coordinator-url takes URL or URL=WORKER_URL (both http:// or https://),"
                    f" got {item!r}"
                )
            entry = (
                check_url(coordinator, "--coordinator-url"),
                check_url(advertised, "--coordinator-url's WORKER_URL") if sep else None,
            )
            if entry[0] not in (known for known, _ in found):
                found.append(entry)
    return tuple(found)


def coordinator_settings(
    host: str,
    port: int,
    api_key: str | None,
    ttl: float,
    first_token_timeout: float,
    client_buffer: int,
    limits: list[str] | None,
    routing_margin: float,
    breaker_slow_first_token: float | None = None,
    tenants: Path | None = None,
    state: str | None = None,
    state_lease: float = CoordinatorSettings.state_lease,
) -> CoordinatorSettings:
    """The coordinator's settings from the options `serve` and `coordinator` share."""
    if state is not None:
        check_state(state, tenants)
    return CoordinatorSettings(
        host=host,
        breaker_slow_first_token=breaker_slow_first_token,
        routing_margin=routing_margin,
        port=port,
        api_key=api_key,
        session_ttl=ttl,
        first_token_timeout=first_token_timeout,
        client_buffer=client_buffer,
        limits=parse_limits(limits or []),
        tenants=tenants,
        state=state,
        state_lease=state_lease,
    )


def check_state(url: str, tenants: Path | None) -> None:
    """A usage error unless `--state` is a Redis URL next to `--tenants`; a one-line hint
    when the redis package is missing."""
    if tenants is None:
        raise UsageError("--state keeps the tenants' limits in Redis: it needs --tenants PATH")
    if not url.startswith(("redis://", "rediss://", "unix://")):
        scheme, sep, _ = url.partition("://")
        shown = f"{scheme}://..." if sep else url  # never a password
        raise UsageError(f"--state must be a redis://HOST:PORT/DB URL, got {shown!r}")
    require_extra("--state", "infer", ("redis",))
