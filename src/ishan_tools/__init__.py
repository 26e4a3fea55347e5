"""ishan: a command-line toolkit of five small production-grade systems.

`ishan_tools.breaker` is the circuit breaker; `ishan_tools.crawl`, `.migrate`, `.players`
and `.infer` are the systems behind the `ishan` subcommands.
"""

from __future__ import annotations

__version__ = "0.1.0"
