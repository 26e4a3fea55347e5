"""Child processes that die with their parent: the migrate and infer supervisors start theirs so.

Standard library only; it imports nothing else of the project.
"""

from __future__ import annotations

import ctypes
import signal
import sys

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent() -> None:  # pragma: no cover - runs in the child
    """In the child (a `preexec_fn`): get SIGTERM if the parent dies without stopping us.

    Linux only; elsewhere a child outlives a parent that is killed.
    """
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
