"""The original library's import path: `from agent_circuit_breaker import circuit_breaker`, ...

Everything here is `ishan_tools.breaker`; see its docstring.
"""

from __future__ import annotations

from ishan_tools.breaker import (
    BreakerStats,
    CircuitBreaker,
    CircuitBreakerOpenError,
    CircuitState,
    circuit_breaker,
)

__all__ = [
    "BreakerStats",
    "CircuitBreaker",
    "CircuitBreakerOpenError",
    "CircuitState",
    "circuit_breaker",
]
