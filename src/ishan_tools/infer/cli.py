"""`ishan infer`: run a GGUF model locally, or serve it through a coordinator and workers.

Imports only Typer and the standard library at import time; everything heavy (llama_cpp,
fastapi, uvicorn, httpx) loads inside the command that needs it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ishan_tools._cli.extras import require_extra
from ishan_tools._cli.options import port_option
from ishan_tools._server import run_loop
from ishan_tools.errors import UsageError
from ishan_tools.infer.config import (
    DEFAULT_WORKER_PORT,
    CoordinatorSettings,
    EngineSettings,
    GenerationRequest,
    ModelSettings,
    ServeSettings,
    WorkerSettings,
    cpu_count,
    model_name_of,
    resolve_model_path,
)
from ishan_tools.infer.options import (
    PORT_ENV,
    ApiKeyOpt,
    BatchOpt,
    BreakerSlowOpt,
    ChatOpt,
    ClientBufferOpt,
    CoordinatorUrlOpt,
    CoordPortOpt,
    CtxOpt,
    DraftMaxOpt,
    FirstTokenOpt,
    FlashAttnOpt,
    GpuLayersOpt,
    GraceOpt,
    HeartbeatOpt,
    HostOpt,
    LimitOpt,
    MaxSessionsOpt,
    MaxTokensOpt,
    ModelNameOpt,
    ModelOpt,
    PrefixCacheOpt,
    RawOpt,
    RoutingMarginOpt,
    ServeModelOpt,
    SlotsOpt,
    StateLeaseOpt,
    StateOpt,
    SystemOpt,
    TenantsOpt,
    ThreadsOpt,
    TtlOpt,
    WorkerUrlOpt,
    WriteTimeoutOpt,
    check_url,
    coordinator_settings,
    coordinator_urls,
)
from ishan_tools.infer.tenants.cli import app as tenants_app

app = typer.Typer(
    help="Run a GGUF model locally, or serve it: coordinator + workers, streaming, OpenAI API.",
    no_args_is_help=True,
)
app.add_typer(tenants_app, name="tenants")
# the defaults below are the settings classes' own
C, W, S = CoordinatorSettings, WorkerSettings, ServeSettings
E, M, G = EngineSettings, ModelSettings, GenerationRequest
ASK_MAX_TOKENS = 128  # a quick question to a running service
MAX_MODEL_NAME = 256  # the coordinator's limit on a heartbeat's names
SERVER_MODULES = ("fastapi", "uvicorn", "httpx", "prometheus_client")


def _model(
    model: Path | None,
    ctx: int,
    threads: int | None,
    batch: int,
    gpu_layers: int,
    flash_attn: bool,
) -> ModelSettings:
    return ModelSettings(
        path=resolve_model_path(model),
        n_ctx=ctx,
        n_threads=threads or cpu_count(),
        n_batch=batch,
        n_gpu_layers=gpu_layers,
        flash_attn=flash_attn,
    )


def _served_models(items: list[str] | None) -> tuple[tuple[str | None, Path], ...]:
    """`serve --model` values: PATH or NAME=PATH, each file checked, each name once."""
    models: list[tuple[str | None, Path]] = []
    for item in items or []:
        name, sep, path = item.partition("=")
        if not sep or "/" in name or Path(item).is_file():
            name, path = "", item
        elif not name or not path:
            raise UsageError(f"bad --model {item!r}: use PATH or NAME=PATH")
        models.append((name or None, resolve_model_path(Path(path))))
    names = [name or model_name_of(path) for name, path in models]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UsageError(
            f"--model names {', '.join(twice)} more than once: give each model its own NAME=PATH"
        )
    return tuple(models)


def _check_raw(raw: bool, system: str | None) -> None:
    if raw and system is not None:
        raise UsageError("--system needs the chat template: leave out --raw or --system")


def _show_notices() -> None:
    """The library's notices (no chat template in the model, no GPU in llama.cpp) as plain
    lines on stderr; at most one handler however often a command runs in this process."""
    import logging

    logger = logging.getLogger("ishan_tools.infer")
    logger.handlers = [h for h in logger.handlers if h.get_name() != "ishan-notices"]
    handler = logging.StreamHandler()  # the stderr of this command
    handler.set_name("ishan-notices")
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logging.getLogger("ishan_tools.infer.tenants").setLevel(logging.INFO)  # reloads


def _say(line: str) -> None:
    """One status line on stdout, flushed at once (tests and scripts read it from a pipe)."""
    typer.echo(line)
    sys.stdout.flush()


@app.command()
def run(
    prompt: Annotated[
        str, typer.Argument(help="The user message (with --raw: the prompt, verbatim).")
    ],
    model: ModelOpt = None,
    system: SystemOpt = None,
    raw: RawOpt = G.raw,
    chat: ChatOpt = False,
    max_tokens: MaxTokensOpt = G.max_tokens,
    temperature: Annotated[float, typer.Option("--temperature", min=0.0)] = G.temperature,
    top_p: Annotated[float, typer.Option("--top-p", min=0.0, max=1.0)] = G.top_p,
    seed: Annotated[int | None, typer.Option("--seed", help="Sampling seed.")] = None,
    ctx: CtxOpt = M.n_ctx,
    threads: ThreadsOpt = None,
    batch: BatchOpt = M.n_batch,
    gpu_layers: GpuLayersOpt = M.n_gpu_layers,
    flash_attn: FlashAttnOpt = M.flash_attn,
    draft_max: DraftMaxOpt = E.draft_max,
) -> None:
    """Stream an answer from a local GGUF model (through its chat template), then tok/s."""
    require_extra("ishan infer run", "infer", ("llama_cpp",))
    from ishan_tools.infer.worker.runner import run as run_model

    del chat  # the chat template is the default
    _check_raw(raw, system)
    _show_notices()
    settings = _model(model, ctx, threads, batch, gpu_layers, flash_attn)
    request = GenerationRequest(
        prompt=prompt,
        system=system,
        raw=raw,
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
    )

    engine = EngineSettings(model=settings, slots=1, draft_max=draft_max)
    result = run_model(engine, request, on_token=_show)
    typer.echo()
    _summary(
        result.completion_tokens,
        result.tokens_per_s,
        result.ttft_s,
        f"{result.prompt_tokens} prompt tokens, finish: {result.finish_reason}",
    )


def _show(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _summary(tokens: int, rate: float | None, ttft: float | None, extra: str) -> None:
    """The closing line on stderr, so stdout carries only the generated text."""
    rate_text = f"{rate:.1f} tok/s" if rate else "n/a tok/s"
    ttft_text = f"{ttft * 1000:.0f} ms" if ttft is not None else "n/a"
    typer.secho(
        f"{tokens} tokens, {rate_text}, first token after {ttft_text} ({extra})",
        err=True,
        dim=True,
    )


def _check_name(name: str | None) -> str | None:
    if name is not None and not 0 < len(name) <= MAX_MODEL_NAME:
        raise UsageError(f"--model-name must be 1 to {MAX_MODEL_NAME} characters")
    return name


@app.command()
def ask(
    prompt: Annotated[
        str, typer.Argument(help="The user message (with --raw: the prompt, verbatim).")
    ],
    system: SystemOpt = None,
    raw: RawOpt = G.raw,
    chat: ChatOpt = False,
    url: Annotated[
        str, typer.Option("--url", envvar="ISHAN_INFER_URL", help="Coordinator URL.")
    ] = f"http://127.0.0.1:{C.port}",
    max_tokens: MaxTokensOpt = ASK_MAX_TOKENS,
    temperature: Annotated[float, typer.Option("--temperature", min=0.0, max=2.0)] = G.temperature,
    seed: Annotated[int | None, typer.Option("--seed", help="Sampling seed.")] = None,
    model: Annotated[str, typer.Option("--model-name", help="Model name sent.")] = "default",
    api_key: ApiKeyOpt = None,
) -> None:
    """Stream an answer from a running coordinator; print time to first token and tok/s."""
    require_extra("ishan infer ask", "infer", ("httpx",))
    from ishan_tools.infer.client import ask as ask_coordinator

    del chat  # the chat template is the default
    _check_raw(raw, system)
    request = GenerationRequest(
        prompt=prompt,
        system=system,
        raw=raw,
        max_tokens=max_tokens,
        temperature=temperature,
        seed=seed,
    )
    result = ask_coordinator(check_url(url, "--url"), request, _show, model=model, api_key=api_key)
    typer.echo()
    _summary(result.tokens, result.tokens_per_s, result.ttft_s, f"{result.elapsed_s:.2f} s")


@app.command()
def serve(
    host: HostOpt = C.host,
    port: CoordPortOpt = C.port,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            envvar="ISHAN_INFER_WORKERS",
            min=1,
            help="Local workers, spread over the models round robin (at least one per model).",
        ),
    ] = S.workers,
    worker_port: Annotated[
        int | None,
        typer.Option(
            "--worker-port",
            min=0,
            max=65535,
            show_default=False,
            help="First worker's port, the next ones counting up (0: any free ones) "
            f"[default: {DEFAULT_WORKER_PORT} and up, a free port where one is taken]",
        ),
    ] = S.worker_port,
    model: ServeModelOpt = None,
    ctx: CtxOpt = M.n_ctx,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads",
            envvar="ISHAN_INFER_THREADS",
            min=1,
            help="CPU threads per worker [default: the cores split between the workers]",
        ),
    ] = None,
    batch: BatchOpt = M.n_batch,
    gpu_layers: GpuLayersOpt = M.n_gpu_layers,
    flash_attn: FlashAttnOpt = M.flash_attn,
    max_sessions: MaxSessionsOpt = E.max_sessions,
    slots: SlotsOpt = None,
    prefix_cache: PrefixCacheOpt = S.prefix_cache,
    draft_max: DraftMaxOpt = S.draft_max,
    heartbeat_interval: HeartbeatOpt = W.heartbeat_interval,
    session_ttl: TtlOpt = C.session_ttl,
    first_token_timeout: FirstTokenOpt = C.first_token_timeout,
    breaker_slow_first_token: BreakerSlowOpt = C.breaker_slow_first_token,
    grace: GraceOpt = S.grace,
    client_buffer: ClientBufferOpt = C.client_buffer,
    limit: LimitOpt = None,
    routing_margin: RoutingMarginOpt = C.routing_margin,
    api_key: ApiKeyOpt = None,
    tenants: TenantsOpt = None,
    state: StateOpt = None,
    state_lease: StateLeaseOpt = C.state_lease,
) -> None:
    """Start the coordinator and N local workers; restart dead workers; drain on Ctrl-C.

    With several --model NAME=PATH, worker i serves model i modulo their number (round
    robin), and --workers is raised to one per model when it is lower."""

    require_extra("ishan infer serve", "infer")
    from ishan_tools.infer.coordinator.supervisor import run_serve

    _show_notices()
    models = _served_models(model)
    settings = ServeSettings(
        coordinator=coordinator_settings(
            host,
            port,
            api_key,
            session_ttl,
            first_token_timeout,
            client_buffer,
            limit,
            routing_margin,
            breaker_slow_first_token,
            tenants,
            state,
            state_lease,
        ),
        model=_model(models[0][1] if models else None, ctx, threads, batch, gpu_layers, flash_attn),
        models=models if len(models) > 1 or (models and models[0][0]) else (),
        workers=max(workers, len(models)),
        threads=threads,
        worker_port=worker_port,
        heartbeat_interval=heartbeat_interval,
        max_sessions=max_sessions,
        slots=slots,
        prefix_cache=prefix_cache,
        draft_max=draft_max,
        grace=grace,
    )
    run_loop(run_serve(settings, _say))


@app.command()
def coordinator(
    host: HostOpt = C.host,
    port: CoordPortOpt = C.port,
    session_ttl: TtlOpt = C.session_ttl,
    first_token_timeout: FirstTokenOpt = C.first_token_timeout,
    breaker_slow_first_token: BreakerSlowOpt = C.breaker_slow_first_token,
    client_buffer: ClientBufferOpt = C.client_buffer,
    limit: LimitOpt = None,
    routing_margin: RoutingMarginOpt = C.routing_margin,
    api_key: ApiKeyOpt = None,
    tenants: TenantsOpt = None,
    state: StateOpt = None,
    state_lease: StateLeaseOpt = C.state_lease,
) -> None:
    """Run only the coordinator; workers join it with `ishan infer worker`."""

    require_extra("ishan infer coordinator", "infer", SERVER_MODULES)
    from ishan_tools.infer.coordinator.app import run_coordinator

    _show_notices()
    settings = coordinator_settings(
        host,
        port,
        api_key,
        session_ttl,
        first_token_timeout,
        client_buffer,
        limit,
        routing_margin,
        breaker_slow_first_token,
        tenants,
        state,
        state_lease,
    )
    if tenants is not None and api_key is None:
        raise UsageError(
            "--tenants needs --api-key: the cluster key that workers' heartbeats and the "
            "coordinator's calls to them carry (tenant keys are for clients only)"
        )
    run_loop(run_coordinator(settings, lambda url: _say(f"coordinator listening on {url}")))


@app.command()
def worker(
    coordinator_url: CoordinatorUrlOpt = None,
    worker_url: WorkerUrlOpt = None,
    worker_id: Annotated[
        str,
        typer.Option(
            "--worker-id",
            envvar=["ISHAN_INFER_WORKER_ID", "WORKER_ID"],
            help="Name in the registry.",
        ),
    ] = W.worker_id,
    host: HostOpt = W.host,
    port: Annotated[int, port_option(PORT_ENV)] = W.port,
    model: ModelOpt = None,
    model_name: ModelNameOpt = None,
    ctx: CtxOpt = M.n_ctx,
    threads: ThreadsOpt = None,
    batch: BatchOpt = M.n_batch,
    gpu_layers: GpuLayersOpt = M.n_gpu_layers,
    flash_attn: FlashAttnOpt = M.flash_attn,
    max_sessions: MaxSessionsOpt = E.max_sessions,
    slots: SlotsOpt = None,
    prefix_cache: PrefixCacheOpt = E.prefix_cache,
    draft_max: DraftMaxOpt = E.draft_max,
    heartbeat_interval: HeartbeatOpt = W.heartbeat_interval,
    write_timeout: WriteTimeoutOpt = W.write_timeout,
    api_key: ApiKeyOpt = None,
) -> None:
    """Run one worker: it loads the model and reports to the coordinator."""

    require_extra("ishan infer worker", "infer")
    from ishan_tools.infer.worker.app import run_worker

    _show_notices()
    settings = WorkerSettings(
        engine=EngineSettings(
            model=_model(model, ctx, threads, batch, gpu_layers, flash_attn),
            max_sessions=max_sessions,
            slots=slots,
            prefix_cache=prefix_cache,
            draft_max=draft_max,
        ),
        host=host,
        port=port,
        worker_id=worker_id,
        model_name=_check_name(model_name),
        worker_url=check_url(worker_url, "--worker-url") if worker_url else None,
        coordinators=coordinator_urls(coordinator_url),
        heartbeat_interval=heartbeat_interval,
        api_key=api_key,
        write_timeout=write_timeout,
    )
    run_loop(run_worker(settings, lambda url: _say(f"worker {worker_id} listening on {url}")))
