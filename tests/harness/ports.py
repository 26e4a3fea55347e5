"""Free ports of 127.0.0.1, for servers that cannot bind port 0 themselves."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A port of `host` with nothing listening on it (the OS picks it; it may be taken again
    by the time it is used, which on a test machine does not happen in practice)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
    return port
