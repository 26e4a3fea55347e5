"""Local GGUF inference: a runner, and a coordinator that routes, streams and survives failures.

    from ishan_tools.infer import EngineSettings, GenerationRequest, ModelSettings, run
    from ishan_tools.infer.config import default_model_path
    settings = EngineSettings(model=ModelSettings(path=default_model_path()))
    result = run(settings, GenerationRequest(prompt="The sky is", max_tokens=8))

Importable without Typer. The sub-packages are the two processes: `worker` (the model, its
decode loop and the worker app; the only code that imports llama_cpp) and `coordinator`
(the clients' APIs, the registry, scheduler and relay, and the supervisor of `ishan infer
serve`). What both share sits here: `config`, `events`, `protocol`, `errors`, `metrics`,
`web`, `timing`, plus the coordinator API's `client`. The names below load on first use,
so importing the CLI module does not import numpy or llama_cpp.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ishan_tools._lazy import lazy_exports

if TYPE_CHECKING:
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

_EXPORTS = {
    "CoordinatorSettings": "config",
    "EngineSettings": "config",
    "GenerationRequest": "config",
    "Limits": "config",
    "ModelSettings": "config",
    "ServeSettings": "config",
    "WorkerSettings": "config",
    "RunResult": "worker.runner",
    "run": "worker.runner",
}

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


__getattr__ = lazy_exports(__name__, _EXPORTS)
