"""llama.cpp's low-level batch API, as the engine's decode loop uses it.

`BatchContext` owns a llama context over a unified KV cache of `n_ctx * slots` cells (so
every slot may hold a full context) and `sequences` sequence ids: one per running session
plus the finished ones kept as prefix cache. Each step the engine `add`s tokens (any mix
of sequences), `decode`s them in one call, and reads the logits of the tokens it asked
logits for. `copy(src, dst, n)` makes `dst` share `src`'s first `n` cells (metadata only:
one KV stream), `free(seq)` lets go of a sequence's cells.
"""

from __future__ import annotations

import ctypes
import logging
from typing import Any

import numpy as np
import numpy.typing as npt

from ishan_tools.errors import InferenceError


class BatchContext:
    """A llama context for `slots` concurrent sequences and one reusable batch."""

    def __init__(self, llama: Any, n_ctx: int, slots: int, sequences: int) -> None:
        import llama_cpp
        from llama_cpp._internals import LlamaContext

        self._lib = llama_cpp
        params = llama_cpp.llama_context_params.from_buffer_copy(llama.context_params)
        params.n_ctx = n_ctx * slots
        params.n_seq_max = sequences
        params.kv_unified = True
        if params.flash_attn_type != llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED:
            # llama-server's default: on wherever the device supports it, off elsewhere
            params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_AUTO
        # llama.cpp warns that the unified cache's n_ctx_seq (all slots' cells) exceeds the
        # model's training context; no sequence gets more than n_ctx positions, so it does not
        # apply. llama-cpp-python maps llama.cpp's warnings to errors: quiet them here.
        llama_log = logging.getLogger("llama-cpp-python")
        level = llama_log.level
        llama_log.setLevel(logging.CRITICAL)
        try:
            self._context = LlamaContext(model=llama._model, params=params, verbose=False)
        except ValueError as exc:
            raise InferenceError(f"cannot create a context for {slots} slots: {exc}") from exc
        finally:
            llama_log.setLevel(level)
        self.ctx = self._context.ctx
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.n_batch = int(params.n_batch)
        self.n_vocab = int(llama.n_vocab())
        self.vocab = llama._model.vocab
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        self._piece = ctypes.create_string_buffer(256)
        self.n_tokens = 0
        self.n_cells = n_ctx * slots

    def add(self, token: int, pos: int, seq: int, *, logits: bool) -> int:
        """Append one token; returns its index in the batch (for `logits_of`)."""
        i = self.n_tokens
        if i >= self.n_batch:
            raise InferenceError("batch is full")
        batch = self._batch
        batch.token[i] = token
        batch.pos[i] = pos
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = seq
        batch.logits[i] = logits
        self.n_tokens = i + 1
        return i

    @property
    def room(self) -> int:
        return self.n_batch - self.n_tokens

    def decode(self) -> None:
        """Run the model over the batch, then empty it; raises on a llama.cpp error."""
        self._batch.n_tokens = self.n_tokens
        self.n_tokens = 0
        rc = int(self._lib.llama_decode(self.ctx, self._batch))
        if rc != 0:
            raise InferenceError(f"llama_decode failed with code {rc}")

    def logits_of(self, index: int) -> npt.NDArray[np.float32]:
        pointer = self._lib.llama_get_logits_ith(self.ctx, index)
        return np.ctypeslib.as_array(pointer, shape=(self.n_vocab,))

    def free(self, seq: int) -> None:
        """Drop sequence `seq` from its KV cells (cells no other sequence holds are free)."""
        self._lib.llama_memory_seq_rm(self.memory, seq, -1, -1)

    def truncate(self, seq: int, n: int) -> None:
        """Sequence `seq` keeps only its cells at positions below `n`."""
        self._lib.llama_memory_seq_rm(self.memory, seq, n, -1)

    def copy(self, src: int, dst: int, n: int) -> None:
        """Sequence `dst` now holds `src`'s cells at positions 0..n-1 too (no data copied)."""
        self._lib.llama_memory_seq_cp(self.memory, src, dst, 0, n)

    def is_end(self, token: int) -> bool:
        return bool(self._lib.llama_vocab_is_eog(self.vocab, token))

    def piece(self, token: int) -> bytes:
        n = int(self._lib.llama_token_to_piece(self.vocab, token, self._piece, 256, 0, False))
        return self._piece.raw[: max(0, n)]

    def longest_piece(self) -> int:
        """The most bytes of text one token stands for (special tokens as their text)."""
        buf = ctypes.create_string_buffer(256)
        lib, vocab = self._lib, self.vocab
        return max(
            abs(int(lib.llama_token_to_piece(vocab, token, buf, 256, 0, True)))
            for token in range(self.n_vocab)
        )

    def close(self) -> None:
        if self._batch is not None:
            self._lib.llama_batch_free(self._batch)
            self._batch = None
        self._context.close()  # type: ignore[no-untyped-call]
