"""Local GGUF inference: a runner, and a coordinator that routes, streams and survives failures.

Importable without Typer. `run` generates in this process; `worker.create_app` and
`coordinator.create_app` build the two servers; `supervisor.serve` runs them together.
Only `engine` imports llama_cpp.
"""

from __future__ import annotations

from ishan_tools.infer.config import (
    CoordinatorSettings,
    EngineSettings,
    GenerationRequest,
    Limits,
    ModelSettings,
    ServeSettings,
    WorkerSettings,
)
from ishan_tools.infer.worker.runner import RunResult, run

__all__ = [
    "CoordinatorSettings",
    "EngineSettings",
    "GenerationRequest",
    "Limits",
    "ModelSettings",
    "RunResult",
    "ServeSettings",
    "WorkerSettings",
    "run",
]
