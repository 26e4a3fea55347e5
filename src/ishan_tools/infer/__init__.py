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
    from ishan_tools.infer.config import CoordinatorSettings as CoordinatorSettings
    from ishan_tools.infer.config import EngineSettings as EngineSettings
    from ishan_tools.infer.config import GenerationRequest as GenerationRequest
    from ishan_tools.infer.config import Limits as Limits
    from ishan_tools.infer.config import ModelSettings as ModelSettings
    from ishan_tools.infer.config import ServeSettings as ServeSettings
    from ishan_tools.infer.config import WorkerSettings as WorkerSettings
    from ishan_tools.infer.worker.runner import RunResult as RunResult
    from ishan_tools.infer.worker.runner import run as run

__all__, __getattr__ = lazy_exports(__name__, __file__)
