"""The errors of `ishan infer`, in one place.

InferenceError (ishan_tools.errors)
├── BadRequest          a request refused with 400 (both servers)
├── PromptRejected      worker: the prompt cannot be read or does not fit the context
├── EngineBusy          worker: no session or KV budget left (503)
├── WorkerRefused       coordinator: the worker answered 4xx or busy (not its failure)
├── WorkerFailed        coordinator: the worker was unreachable, failed or silent
├── RelayError          coordinator: the request cannot be served (carries the status)
│   └── UnknownModel    coordinator: no worker ever served the model asked for (404)
└── WorkerConflict      coordinator: a heartbeat claims a live worker's id (409)
ClientTooSlow           coordinator: a client let its buffer fill up (internal signal)
"""

from __future__ import annotations

from ishan_tools.errors import InferenceError


class BadRequest(InferenceError):
    """A request the server refuses with 400 (the message says which field and why)."""


class PromptRejected(InferenceError):
    """The prompt cannot be read or does not fit the context (a client error)."""


class EngineBusy(InferenceError):
    """The engine holds its maximum number of sessions, or its KV budget is spent."""


class WorkerRefused(InferenceError):
    """The worker answered with a client error (4xx) or 'busy': not a failure of the worker."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class WorkerFailed(InferenceError):
    """The worker was unreachable, failed (5xx) or was silent before its first token."""


class RelayError(InferenceError):
    """The request cannot be served; `status` is the HTTP status for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class UnknownModel(RelayError):
    """The request names a model no worker has ever served here (404)."""

    def __init__(self, model: str) -> None:
        super().__init__(404, f"model '{model}' is not served")
        self.model = model


class WorkerConflict(InferenceError):
    """A heartbeat names a live worker with another URL or boot id (refused with 409)."""

    def __init__(self, url: str, boot_id: str, message: str) -> None:
        super().__init__(message)
        self.url = url
        self.boot_id = boot_id


class ClientTooSlow(Exception):
    """The client let the buffer fill up."""
