"""The disposable process that tries grammars and JSON schemas before the worker uses them.

`python -m ishan_tools.infer.worker.grammar_child MODEL` loads the model's vocabulary only
(no weights, no context) and answers requests on stdin/stdout, one frame each way: a 4-byte
big-endian length, then JSON. A request is `{"kind": "grammar" | "schema", "text": ...}`;
the answer `{"grammar": GBNF}` (the grammar the worker may compile) or `{"error": reason}`.

A JSON schema is turned into GBNF here too (llama-cpp-python's port of llama.cpp's
converter), since a hostile schema can send the converter into deep recursion or build a
grammar of gigabytes. Then llama.cpp compiles the grammar exactly as the worker's sampler
does (`llama_sampler_init_grammar`) and samples a few steps with it, masking the whole
vocabulary each time, as a session's first tokens would. llama.cpp aborts, overflows its
stack or allocates without bound on some grammars: that kills this process, not the worker,
and the parent (`grammar_check`) reads the death as the verdict. The parent starts this
process under an address-space limit (RLIMIT_AS) and a time limit per request.
"""

from __future__ import annotations

import ctypes
import json
import os
import struct
import sys
import tempfile
from typing import Any, BinaryIO

import llama_cpp
import numpy as np

GRAMMAR_ROOT = b"root"
# llama-cpp-python's schema converter lets control characters into strings, which JSON
# forbids; llama.cpp's own converter (llama-server's) keeps them out, and so do we.
LOOSE_CHAR = r'char ::= [^"\\] |'
JSON_CHAR = r'char ::= [^"\\\x7F\x00-\x1F] |'
MAX_GRAMMAR_BYTES = 256 * 1024  # a converted schema's grammar, at most
TRIAL_STEPS = 4  # sampling steps tried with each grammar
HEADER = struct.Struct(">I")
TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])

_log_lines: list[str] = []


@llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
def _keep_log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    """Keep llama.cpp's log lines: a grammar's parse error is told there."""
    del level, user_data
    _log_lines.append(text.decode("utf-8", "replace"))


def _reason(stderr: BinaryIO | None = None) -> str:
    """llama.cpp's own words for the last failure (its parse error), on one line: from its
    log, or from what it wrote to stderr (`stderr`, this process's fd 2)."""
    text = "".join(_log_lines).strip()
    _log_lines.clear()
    if stderr is not None:
        stderr.seek(0)
        text = (stderr.read().decode("utf-8", "replace") + "\n" + text).strip()
    for line in text.splitlines():
        if "error" in line.lower():
            return line.strip()[:300]
    return text.splitlines()[-1].strip()[:300] if text else ""


def schema_grammar(text: str) -> str:
    """The GBNF grammar of a JSON schema (raises ValueError with the converter's reason)."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        grammar = str(json_schema_to_gbnf(text))
    except RecursionError as exc:
        raise ValueError("the schema nests too deeply") from exc
    except Exception as exc:  # the converter raises assertions, value and key errors
        reason = str(exc).replace(" (use --allow-fetch for force)", "") or type(exc).__name__
        raise ValueError(reason) from exc
    if len(grammar) > MAX_GRAMMAR_BYTES:
        raise ValueError(
            f"its grammar would be {len(grammar)} bytes, over the {MAX_GRAMMAR_BYTES}-byte "
            "limit (lower maxLength, maxItems or the nesting)"
        )
    return grammar.replace(LOOSE_CHAR, JSON_CHAR)


class Trial:
    """The vocabulary, and one grammar at a time compiled and sampled against it."""

    def __init__(self, model_path: str) -> None:
        # llama.cpp prints a grammar's parse error on stderr: keep it to read it back
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 - open while the process runs
        os.dup2(self.stderr.fileno(), 2)
        llama_cpp.llama_log_set(_keep_log, ctypes.c_void_p(0))
        llama_cpp.llama_backend_init()
        params = llama_cpp.llama_model_default_params()
        params.vocab_only = True
        self.model = llama_cpp.llama_model_load_from_file(model_path.encode(), params)
        if not self.model:
            raise SystemExit(f"cannot load the vocabulary of {model_path}: {_reason()}")
        self.vocab = llama_cpp.llama_model_get_vocab(self.model)
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self.vocab))
        self.cells = (llama_cpp.llama_token_data * self.n_vocab)()
        self.view = np.frombuffer(memoryview(self.cells), dtype=TOKEN_DATA)
        self.ids = np.arange(self.n_vocab, dtype=np.int32)
        self.array = llama_cpp.llama_token_data_array(self.cells, self.n_vocab, -1, False)

    def check(self, grammar: str, what: str = "grammar") -> str | None:
        """None when llama.cpp compiles `grammar` and samples with it, else why not."""
        _log_lines.clear()
        self.stderr.seek(0)
        self.stderr.truncate()
        sampler = llama_cpp.llama_sampler_init_grammar(self.vocab, grammar.encode(), GRAMMAR_ROOT)
        if not sampler:
            detail = _reason(self.stderr)
            return (
                f"llama.cpp cannot parse the {what}: "
                + (f"{detail}: " if detail else "")
                + "check its GBNF syntax and that it has a 'root' rule"
            )
        try:
            for step in range(TRIAL_STEPS):
                token = self._first_allowed(sampler)
                if token is None:  # the worker's sampler would refuse every token
                    return f"the {what} allows no token of the vocabulary after {step} token(s)"
                if llama_cpp.llama_vocab_is_eog(self.vocab, token):
                    break
                llama_cpp.llama_sampler_accept(sampler, token)
        finally:
            llama_cpp.llama_sampler_free(sampler)
        return None

    def _first_allowed(self, sampler: Any) -> int | None:
        """The first token the grammar allows now (None: none)."""
        self.view["id"], self.view["logit"], self.view["p"] = self.ids, 0.0, 0.0
        self.array.data = self.cells
        self.array.size, self.array.selected, self.array.sorted = self.n_vocab, -1, False
        llama_cpp.llama_sampler_apply(sampler, ctypes.byref(self.array))
        allowed = np.flatnonzero(np.isfinite(self.view["logit"][: self.array.size]))
        return int(self.view["id"][allowed[0]]) if allowed.size else None

    def answer(self, request: dict[str, Any]) -> dict[str, str]:
        kind, text = request.get("kind"), request.get("text")
        if not isinstance(text, str):
            return {"error": "no text"}
        if kind == "schema":
            try:
                grammar = schema_grammar(text)
            except ValueError as exc:
                return {"error": f"cannot turn the JSON schema into a grammar: {exc}"}
            what = "JSON schema's grammar"
        else:
            grammar, what = text, "grammar"
        problem = self.check(grammar, what)
        return {"error": problem} if problem else {"grammar": grammar}


def read_frame(stream: BinaryIO) -> bytes | None:
    head = stream.read(HEADER.size)
    if len(head) < HEADER.size:
        return None
    (size,) = HEADER.unpack(head)
    return stream.read(size)


def write_frame(stream: BinaryIO, data: bytes) -> None:
    stream.write(HEADER.pack(len(data)) + data)
    stream.flush()


def main() -> None:  # pragma: no cover - runs in the child
    trial = Trial(sys.argv[1])
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    write_frame(stdout, b'{"ready": true}')
    while (frame := read_frame(stdin)) is not None:
        write_frame(stdout, json.dumps(trial.answer(json.loads(frame))).encode())


if __name__ == "__main__":
    main()
