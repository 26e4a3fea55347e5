"""Per-session sampling and text assembly for the batched decode loop.

Each session owns a `Sampler`: its own llama.cpp sampler chain (`llama_sampler_*`), built
in the order llama-cpp-python builds its own, so a session samples exactly as
`Llama.create_completion` would with the same settings and seed: logit bias (only for
`ignore_eos`: the end-of-generation tokens at -inf), penalties (`repeat_penalty`,
`frequency_penalty`, `presence_penalty` over the last 64 generated tokens), the grammar
(when the output is constrained), then greedy, or top_k 40, typical 1.0, top_p, min_p 0.05,
temperature and a seeded draw. A chain is one session's state, so sessions in one batch
never share penalties or grammar position, and a session without a grammar pays nothing
for another's. A plain greedy session skips its chain for numpy's argmax, the same pick.

A grammar reaches a `Sampler` only once `grammar_check` has tried it in a child process.
A `TextAssembler` turns token bytes into text: it holds back incomplete UTF-8 characters
and any tail that could still become one of the session's stop strings.
"""

from __future__ import annotations

import codecs
import ctypes
from typing import Any

import llama_cpp
import numpy as np
import numpy.typing as npt

from ishan_tools.infer.config import GenerationRequest

TOP_K = 40  # llama-cpp-python's create_completion defaults
MIN_P = 0.05
TYPICAL_P = 1.0
PENALTY_LAST_N = 64  # llama-cpp-python's last_n_tokens_size, llama-server's repeat_last_n
GRAMMAR_ROOT = b"root"
TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])


class GrammarDeadEnd(Exception):
    """The grammar allows no token of the vocabulary here: the session cannot go on."""


def end_tokens(vocab: Any, n_vocab: int) -> list[int]:
    """Every end-of-generation token of the vocabulary."""
    return [t for t in range(n_vocab) if llama_cpp.llama_vocab_is_eog(vocab, t)]


class Sampler:
    """One session's llama.cpp sampler chain, and its grammar; `close` frees them.

    A greedy session without penalties or a grammar takes the argmax of its logits (the
    end-of-generation tokens at -inf first, for `ignore_eos`): the chain's greedy sampler
    picks the first highest logit too, and `llama_sampler_sample` spends 85 us per token
    filling and scanning a candidate array that numpy's argmax does without in 8 us.
    Otherwise, without a grammar, a token is one `llama_sampler_sample` call. With one,
    the grammar stays out of the chain, as in llama.cpp's own `common_sampler`
    (llama-server): the chain picks a token from the raw logits, the grammar checks that
    one token, and only when it is refused does the grammar mask the whole vocabulary (the
    costly part) before the chain picks again. A greedy session gets the same token either way.
    """

    def __init__(
        self,
        request: GenerationRequest,
        *,
        vocab: Any,
        n_vocab: int,
        grammar: str | None = None,
        banned: list[int] | None = None,
    ) -> None:
        lib = llama_cpp
        self._chain: Any = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())

        def add(sampler: Any) -> None:
            lib.llama_sampler_chain_add(self._chain, sampler)

        if request.ignore_eos and banned:
            bias = (lib.llama_logit_bias * len(banned))(
                *(lib.llama_logit_bias(token, float("-inf")) for token in banned)
            )
            add(lib.llama_sampler_init_logit_bias(n_vocab, len(banned), bias))
        penalties = (request.repeat_penalty, request.frequency_penalty, request.presence_penalty)
        if penalties != (1.0, 0.0, 0.0):
            add(lib.llama_sampler_init_penalties(n_vocab, PENALTY_LAST_N, *penalties))
        if request.temperature <= 0.0:
            add(lib.llama_sampler_init_greedy())
        else:
            add(lib.llama_sampler_init_top_k(TOP_K))
            add(lib.llama_sampler_init_typical(TYPICAL_P, 1))
            add(lib.llama_sampler_init_top_p(request.top_p, 1))
            add(lib.llama_sampler_init_min_p(MIN_P, 1))
            add(lib.llama_sampler_init_temp(request.temperature))
            seed = lib.LLAMA_DEFAULT_SEED if request.seed is None else request.seed
            add(lib.llama_sampler_init_dist(seed))
        self._grammar: Any = None
        self._n_vocab = n_vocab
        # the chain always picks the same token from the same logits: drafts may be checked
        self.greedy = request.temperature <= 0.0 and grammar is None
        self._argmax = self.greedy and penalties == (1.0, 0.0, 0.0)
        self._banned = np.array(banned if request.ignore_eos and banned else [], dtype=np.intp)
        if grammar is not None:
            self._grammar = lib.llama_sampler_init_grammar(vocab, grammar.encode(), GRAMMAR_ROOT)
            self._cells = (lib.llama_token_data * n_vocab)()
            self._ids = np.arange(n_vocab, dtype=np.int32)
            self._view = np.frombuffer(memoryview(self._cells), dtype=TOKEN_DATA)
            self._all = lib.llama_token_data_array(self._cells, n_vocab, -1, False)
            self._one_cell = (lib.llama_token_data * 1)()
            self._one = lib.llama_token_data_array(self._one_cell, 1, -1, False)

    def sample(self, ctx: Any, index: int) -> int:
        """Pick the next token from the logits of batch position `index`, and accept it
        (raises `GrammarDeadEnd` where the grammar allows no token)."""
        if self._grammar is None and not self._argmax:
            return int(llama_cpp.llama_sampler_sample(self._chain, ctx, index))
        lib = llama_cpp
        logits = np.ctypeslib.as_array(lib.llama_get_logits_ith(ctx, index), shape=(self._n_vocab,))
        if self._argmax:  # the chain would keep no state: nothing to accept
            if self._banned.size:
                logits[self._banned] = -np.inf  # this position's logits are ours alone
            return int(logits.argmax())
        token = self._pick(logits, constrained=False)
        if not self._allowed(token):
            token = self._pick(logits, constrained=True)
        lib.llama_sampler_accept(self._grammar, token)
        lib.llama_sampler_accept(self._chain, token)
        return token

    def _pick(self, logits: npt.NDArray[np.float32], *, constrained: bool) -> int:
        """The chain's choice over the whole vocabulary (masked by the grammar first)."""
        self._view["id"] = self._ids  # the samplers sort and cut the array in place
        self._view["logit"] = logits
        self._all.data = self._cells
        self._all.size = self._n_vocab
        self._all.selected = -1
        self._all.sorted = False
        array = ctypes.byref(self._all)
        if constrained:
            llama_cpp.llama_sampler_apply(self._grammar, array)
            # llama.cpp would pick among -inf logits and abort accepting the token
            if not np.isfinite(self._view["logit"][: self._all.size]).any():
                raise GrammarDeadEnd("the grammar allows no token of the vocabulary here")
        llama_cpp.llama_sampler_apply(self._chain, array)
        return int(self._all.data[self._all.selected].id)

    def _allowed(self, token: int) -> bool:
        """Whether the grammar accepts `token` next."""
        self._one_cell[0] = llama_cpp.llama_token_data(token, 0.0, 0.0)
        self._one.size, self._one.selected, self._one.sorted = 1, -1, False
        llama_cpp.llama_sampler_apply(self._grammar, ctypes.byref(self._one))
        return bool(np.isfinite(self._one_cell[0].logit))

    def close(self) -> None:
        for sampler in (self._chain, self._grammar):
            if sampler is not None:
                llama_cpp.llama_sampler_free(sampler)
        self._chain = self._grammar = None


class TextAssembler:
    """Bytes in, text out: whole characters only, and never part of a stop string."""

    def __init__(self, stop: tuple[str, ...]) -> None:
        self.stop = stop
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""
        self.stopped = False

    def feed(self, piece: bytes) -> str:
        """The text that is now safe to send; sets `stopped` when a stop string appears."""
        self._pending += self._decoder.decode(piece)
        if not self.stop:
            text, self._pending = self._pending, ""
            return text
        hits = [i for i in (self._pending.find(s) for s in self.stop) if i >= 0]
        if hits:
            self.stopped = True
            text, self._pending = self._pending[: min(hits)], ""
            return text
        hold = 0
        for s in self.stop:
            for n in range(min(len(s) - 1, len(self._pending)), hold, -1):
                if self._pending.endswith(s[:n]):
                    hold = n
                    break
        cut = len(self._pending) - hold
        text, self._pending = self._pending[:cut], self._pending[cut:]
        return text

    def flush(self) -> str:
        """Whatever is held back, at the end of a generation that did not hit a stop."""
        text, self._pending = self._pending + self._decoder.decode(b"", final=True), ""
        return text
