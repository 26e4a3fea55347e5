"""Grammars and JSON schemas are tried in a disposable child before the worker compiles them.

llama.cpp aborts (`root ::= [z-a]`), overflows its stack (a string schema with a `maxLength`
of 30,000 becomes a grammar nested that deep) or allocates without bound (`"a"{0,100000000}`)
on some grammars, and each takes the whole process with it. So a `GrammarChecker` hands each
new grammar or schema to one child process (`grammar_child`: the model's vocabulary only,
under an address-space limit of `CHILD_MEMORY_BYTES`), which converts it, compiles it as the
sampler will and samples a few steps. A child that dies or takes longer than
`CHECK_TIMEOUT_S` is killed, the request refused with 400 (`PromptRejected`), and the next
check starts a fresh child. Verdicts are cached by hash (`CACHE_ENTRIES`, LRU), so a good
grammar costs the child once; the child starts on the first grammar, not before.

Thread-safe: the worker submits from threads; checks run one at a time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import resource
import select
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import IO

from ishan_tools._process import die_with_parent
from ishan_tools.infer.config import GenerationRequest
from ishan_tools.infer.errors import PromptRejected

log = logging.getLogger(__name__)
CHILD_MEMORY_BYTES = 1024**3  # the child's address space, at most
CHECK_TIMEOUT_S = 10.0  # one grammar's conversion, compilation and trial steps, at most
START_TIMEOUT_S = 60.0  # the child's start (imports, the vocabulary), at most
CACHE_ENTRIES = 512
HEADER_BYTES = 4


class _ChildGone(Exception):
    """The child died or ran out of time."""


def _limits() -> None:  # pragma: no cover - runs in the child, before exec
    die_with_parent()
    resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY_BYTES, CHILD_MEMORY_BYTES))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


class GrammarChecker:
    """Turns a request's schema or grammar into GBNF the worker may compile, or refuses it."""

    def __init__(self, model_path: Path) -> None:
        self.model_path = model_path
        self._lock = threading.Lock()
        self._child: subprocess.Popen[bytes] | None = None
        self._verdicts: OrderedDict[str, tuple[str | None, str | None]] = OrderedDict()
        self.children_started = 0

    def grammar_for(self, request: GenerationRequest) -> str | None:
        """The GBNF grammar `request`'s output must follow (None: unconstrained).

        Raises `PromptRejected`, naming the problem, for a schema or grammar that cannot
        be served: the request fails with 400 before its prefill.
        """
        if request.json_schema is not None:
            kind, text = "schema", json.dumps(request.json_schema)
        elif request.grammar is not None:
            kind, text = "grammar", request.grammar
        else:
            return None
        key = hashlib.sha256(f"{kind}\0{text}".encode()).hexdigest()
        with self._lock:
            verdict = self._verdicts.get(key)
            if verdict is None:
                verdict = self._ask(kind, text)
                self._verdicts[key] = verdict
                while len(self._verdicts) > CACHE_ENTRIES:
                    self._verdicts.popitem(last=False)
            else:
                self._verdicts.move_to_end(key)
        grammar, error = verdict
        if error is not None:
            raise PromptRejected(error)
        return grammar

    def _ask(self, kind: str, text: str) -> tuple[str | None, str | None]:
        what = "JSON schema" if kind == "schema" else "grammar"
        try:
            child = self._running()
            assert child.stdin is not None and child.stdout is not None
            payload = json.dumps({"kind": kind, "text": text}).encode()
            child.stdin.write(len(payload).to_bytes(HEADER_BYTES, "big") + payload)
            child.stdin.flush()
            answer = json.loads(_read_frame(child.stdout, CHECK_TIMEOUT_S))
        except (_ChildGone, OSError, ValueError) as exc:
            code = self._kill()
            log.warning("the grammar check's child failed on a %s (%s, exit %s)", what, exc, code)
            return None, (
                f"the {what} cannot be used: llama.cpp crashed, ran out of memory or took over "
                f"{CHECK_TIMEOUT_S:g} s compiling it (simplify it: smaller repetition bounds, "
                "maxLength or maxItems, less nesting)"
            )
        if "error" in answer:
            return None, str(answer["error"])
        return str(answer["grammar"]), None

    def _running(self) -> subprocess.Popen[bytes]:
        if self._child is not None and self._child.poll() is None:
            return self._child
        self._child = subprocess.Popen(
            [sys.executable, "-m", "ishan_tools.infer.worker.grammar_child", str(self.model_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            preexec_fn=_limits,
        )
        self.children_started += 1
        assert self._child.stdout is not None
        _read_frame(self._child.stdout, START_TIMEOUT_S)  # {"ready": true}
        return self._child

    def _kill(self) -> int | None:
        child, self._child = self._child, None
        if child is None:
            return None
        if child.poll() is None:
            child.kill()
        code = child.wait()
        for pipe in (child.stdin, child.stdout):
            if pipe is not None:
                pipe.close()
        return code

    def close(self) -> None:
        with self._lock:
            self._kill()


def _read_exactly(stream: IO[bytes], size: int, deadline: float) -> bytes:
    data = b""
    fd = stream.fileno()
    while len(data) < size:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise _ChildGone("no answer in time")
        chunk = os.read(fd, size - len(data))
        if not chunk:
            raise _ChildGone("the child exited")
        data += chunk
    return data


def _read_frame(stream: IO[bytes], timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    size = int.from_bytes(_read_exactly(stream, HEADER_BYTES, deadline), "big")
    return _read_exactly(stream, size, deadline)
