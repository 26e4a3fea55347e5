"""The one exception tree of the toolkit.

    IshanError                      exit 1 unless the instance says otherwise
    ├── UsageError                  exit 2: bad options or arguments caught by a library
    ├── CrawlError                  ishan crawl
    ├── MigrationError              ishan migrate
    ├── PlayersError                ishan players
    ├── InferenceError              ishan infer
    └── CircuitBreakerOpenError     ishan_tools.breaker (defined there; carries name, retry_after)

Library code raises these; only the root CLI turns them into a red line and an exit code.
"""

from __future__ import annotations


class IshanError(Exception):
    """Base of every error the toolkit reports to a user; `exit_code` is the process status."""

    exit_code: int = 1

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


class UsageError(IshanError):
    """A bad option or argument that only the library could detect."""

    exit_code = 2


class CrawlError(IshanError):
    """The crawl could not start or its seed could not be fetched."""


class MigrationError(IshanError):
    """A migration could not run, resume or roll back."""


class PlayersError(IshanError):
    """The player data or a query was unusable."""


class InferenceError(IshanError):
    """A model could not be loaded or a generation failed."""
