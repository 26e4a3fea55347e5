"""The decode thread's state: running sessions in their slots, advanced one batch per step.

Only the engine's decode thread touches a `Decoder`. `start` reads a session's prompt into
a free slot (its prefill runs in the following steps), `reap` drops cancelled sessions,
`step` decodes one batch and streams each session's next token. Every method returns the
sessions that ended, with the counter each ends in ("completed", "cancelled", "failed") and
its last event, for the engine to send once its accounts are settled.

Prefix cache (unless `prefix_cache=False`): a new session first looks for the longest
common token prefix among the running sessions and the finished ones kept as cache, of its
own cache group only (`request.cache_group`: with tenants, KV is never shared across
groups; None is the group of requests without one), and copies those KV cells
(`BatchContext.copy`) instead of prefilling them; its last prompt token is always decoded,
since its logits are needed. A running session still reading a prompt that shares a
prefix with the newcomer is waited for: the newcomer copies the prefix once it is in the
KV cache, so concurrent sessions with one system prompt prefill it once. A finished
session's prompt stays as cache (`PrefixCache`, LRU) until its cells or its sequence id
are needed; its answer's cells are freed at once. All sequences share one KV cache, and
attention visits every filled cell of it for every token (flash attention skips the masked
ones, but not for free): four sessions decoded 5-9% faster without the answers of finished
ones beside them, and an answer is the part least often sent again (a chat's next turn
prefills it). `Ledger` counts shared cells once.

Drafts (`draft_max` > 0): each step, a greedy session without a grammar adds up to that
many tokens behind its next one, drafted by `Lookup` from its own text. After the decode,
its sampler reads the logits position by position and stops at the first draft token it
would not have picked; the cells after that one are dropped. The tokens kept are the ones
the session would have produced one step at a time. A session drafts 1 token at first and
twice as many after each step whose drafts were all kept; after one that refused some, as
many as it kept (at least 1). One that keeps less than 70% of its drafts (judged once it
has drafted 4) stops drafting. No session drafts while more than 2 are generating: on
these CPUs a batch is compute-bound, and beside three others a draft token costs 86% of
a step's token, more than drafts save.
"""

from __future__ import annotations

from typing import Any

from ishan_tools.infer.config import GenerationRequest
from ishan_tools.infer.errors import PromptRejected
from ishan_tools.infer.events import Done, Failed, Token
from ishan_tools.infer.worker.batch import BatchContext
from ishan_tools.infer.worker.lookup import Lookup
from ishan_tools.infer.worker.prefix_cache import Ledger, PrefixCache, common_prefix
from ishan_tools.infer.worker.sampling import GrammarDeadEnd, Sampler, TextAssembler, end_tokens
from ishan_tools.infer.worker.session import Prompt, Session
from ishan_tools.infer.worker.template import ChatTemplate

PREFILL_CHUNK = 128  # prompt tokens per step while other sessions are generating
MIN_REUSE = 4  # shorter common prefixes are prefilled, not copied
MAX_SEQUENCES = 256  # llama.cpp's LLAMA_MAX_SEQ
CACHED_PER_SLOT = 4  # finished sequences kept per slot, at most
# A draft token costs about 70% of a decode step's token beside one other session, 86%
# beside three (2 CPU cores): drafts are added while at most DRAFT_SESSIONS sessions are
# generating, by a session that keeps 70% of its drafts (judged after 4 of them).
DRAFT_SESSIONS, DRAFT_TRIAL, DRAFT_KEEP = 2, 4, 0.7
Ending = tuple[Session, str, Done | Failed]
Ended = list[Ending]


class Run:
    """One session inside the decode loop."""

    def __init__(
        self, session: Session, seq: int, n_ctx: int, sampler: Sampler, drafts: bool = False
    ) -> None:
        prompt = session.prompt
        self.session = session
        self.seq = seq
        self.prompt = prompt.tokens
        self.fed = 0  # prompt tokens already in the batch or the KV cache
        self.pos = 0
        self.tokens: list[int] = []  # the tokens at positions 0..pos-1 of this sequence
        self.reserve = min(len(prompt.tokens) + prompt.max_tokens, n_ctx)  # cells it may fill
        self.max_tokens = prompt.max_tokens
        self.generated = 0
        self.next_token: int | None = None
        self.logit_index: int | None = None
        self.wait: tuple[Run, int] | None = None  # copy this run's first n cells when there
        self.left = False
        self.sampler = sampler  # its own chain: penalties, grammar, ignore_eos's logit bias
        self.text = TextAssembler(prompt.stop)
        self.lookup = Lookup() if drafts and sampler.greedy else None
        self.draft_max = 1  # drafts per step now: trust grows as drafts are kept
        self.draft: list[int] = []  # this step's draft tokens behind `next_token`
        self.draft_at: list[int] = []  # their batch positions
        self.drafted = self.draft_kept = 0

    @property
    def prefilling(self) -> bool:
        return self.fed < len(self.prompt)


class Decoder:
    def __init__(
        self,
        llama: Any,
        n_ctx: int,
        slots: int,
        kv_bytes_per_token: int,
        name: str = "the model",
        prefix_cache: bool = True,
        draft_max: int = 0,
    ) -> None:
        self.llama = llama
        self.n_ctx = n_ctx
        self.slots = slots
        self.kv_bytes_per_token = kv_bytes_per_token
        cached = min(MAX_SEQUENCES - slots, CACHED_PER_SLOT * slots) if prefix_cache else 0
        self.ctx = BatchContext(llama, n_ctx, slots, slots + cached)
        self.cache = PrefixCache(cached) if cached > 0 else None
        self.cache_cells = n_ctx  # cells the cache may hold beyond the running sessions'
        self.ledger = Ledger()
        self.free = list(range(slots + cached - 1, -1, -1))  # sequence ids
        self.runs: list[Run] = []
        self.draft_max = draft_max
        self.drafted = 0  # draft tokens decoded
        self.draft_kept = 0  # those the sampler agreed with
        self.template = ChatTemplate(llama, name)
        self._end_tokens: list[int] | None = None  # banned for ignore_eos; found on first use
        self._longest_piece: int | None = None  # bytes one token stands for; found on first use

    @property
    def free_slots(self) -> int:
        return self.slots - len(self.runs)

    @property
    def cached_tokens(self) -> int:
        """KV cells filled now, shared ones counted once."""
        return self.ledger.cells()

    def live_tokens(self) -> int:
        """The cells the running sessions hold (shared ones once) plus what each may still add."""
        held = self.ledger.cells({run.seq for run in self.runs})
        return held + sum(max(0, run.reserve - run.pos) for run in self.runs)

    def cache_only_tokens(self) -> int:
        """Cells that only finished (cached) sequences hold: what evicting them all frees."""
        return self.ledger.cells() - self.ledger.cells({run.seq for run in self.runs})

    def _refuse_if_too_long(self, request: GenerationRequest) -> None:
        """Refuse, before tokenizing it, a prompt that cannot fit the context: a token stands
        for at most `longest_piece` bytes, so a text of N bytes is at least N / that tokens
        (a chat template only adds to it)."""
        texts = [request.prompt or "", request.system or ""]
        texts += [content for _, content in request.messages or ()]
        size = sum(len(text.encode("utf-8", "surrogatepass")) for text in texts)
        if size < self.n_ctx:
            return  # fewer bytes than the context has cells: tokenizing it is cheap
        if self._longest_piece is None:
            self._longest_piece = self.ctx.longest_piece()
        at_least = -(-size // max(1, self._longest_piece))
        if at_least >= self.n_ctx:
            raise PromptRejected(
                f"the prompt is {size} bytes, so at least {at_least} tokens: over the context "
                f"window of {self.n_ctx} (one token is at most {self._longest_piece} bytes)"
            )

    def _prompt(self, request: GenerationRequest) -> tuple[list[int], tuple[str, ...]]:
        self._refuse_if_too_long(request)
        chat = request.chat()
        if chat is not None:
            tokens, extra = self.template.tokens(chat)
            return tokens, request.stop + tuple(extra)
        text = request.prompt or ""
        tokens = list(self.llama.tokenize(text.encode("utf-8"), add_bos=True, special=True))
        return tokens or [int(self.llama.token_bos())], request.stop

    def prepare(self, request: GenerationRequest, grammar: str | None = None) -> Prompt:
        """Tokenize `request`, whose output follows `grammar` (checked by `grammar_check`):
        read-only on the model, safe outside the decode thread; raises `PromptRejected` for
        a prompt that cannot be served."""
        try:
            tokens, stop = self._prompt(request)
        except PromptRejected:
            raise
        except Exception as exc:
            raise PromptRejected(f"cannot read the prompt: {exc}") from exc
        if len(tokens) >= self.n_ctx:
            raise PromptRejected(
                f"Requested tokens ({len(tokens)}) exceed context window of {self.n_ctx}"
            )
        max_tokens = min(request.max_tokens, self.n_ctx - len(tokens))
        kv_bytes = (len(tokens) + max_tokens) * self.kv_bytes_per_token
        return Prompt(tokens, stop, max_tokens, kv_bytes, grammar)

    def start(self, session: Session) -> None:
        """Give `session` a slot, a sequence and its own sampler chain; its prompt is read by
        the next steps (from the longest prefix already in the KV cache: a grammar only
        affects sampling, so grammar sessions reuse prefixes too)."""
        p, request = session.prompt, session.request
        if request.ignore_eos and self._end_tokens is None:
            self._end_tokens = end_tokens(self.ctx.vocab, self.ctx.n_vocab)
        sampler = Sampler(
            request,
            vocab=self.ctx.vocab,
            n_vocab=self.ctx.n_vocab,
            grammar=p.grammar,
            banned=self._end_tokens,
        )
        run = Run(session, self.free.pop(), self.n_ctx, sampler, self.draft_max > 0)
        self._reuse(run)
        self.runs.append(run)

    def _reuse(self, run: Run) -> None:
        """Copy the longest prefix of `run`'s prompt that its cache group has in the KV
        cache, or wait for it."""
        if self.cache is None:
            return
        limit = len(run.prompt) - 1  # the last prompt token is decoded for its logits
        best = MIN_REUSE - 1
        source: Run | int | None = None  # a running session, or a cached sequence id
        group = run.session.request.cache_group
        for other in self.runs:  # only those admitted before `run`: no waiting in circles
            if other is run:
                break
            if other.session.request.cache_group != group:
                continue
            known = other.prompt if other.prefilling else other.tokens
            if (n := common_prefix(known, run.prompt, limit)) > best:
                best, source = n, other
        for seq, tokens in self.cache.items(group):
            if (n := common_prefix(tokens, run.prompt, limit)) > best:
                best, source = n, seq
        if source is None:
            return
        if isinstance(source, Run):
            if source.pos < best:
                run.wait = (source, best)
                return
            self._copy(run, source.seq, best)
        else:
            self.cache.touch(source)
            self._copy(run, source, best)

    def _copy(self, run: Run, src: int, n: int) -> None:
        assert self.cache is not None
        self.ctx.copy(src, run.seq, n)
        self.ledger.copy(src, run.seq, n)
        run.fed = run.pos = n
        run.tokens = run.prompt[:n]
        self.cache.hits += 1
        self.cache.reused_tokens += n

    def _resolve_waits(self) -> None:
        """Followers whose leader has its shared prefix in the KV cache now copy it."""
        for run in self.runs:
            if run.wait is None:
                continue
            leader, n = run.wait
            if leader.left:
                run.wait = None
                self._reuse(run)
            elif leader.pos >= n:
                run.wait = None
                self._copy(run, leader.seq, n)

    def _forget(self, seq: int) -> None:
        self.ctx.free(seq)
        self.ledger.drop(seq)
        self.free.append(seq)

    def _evict_oldest(self) -> bool:
        seq = self.cache.pop_oldest() if self.cache is not None else None
        if seq is None:
            return False
        self._forget(seq)
        return True

    def _leave(self, run: Run, event: Done | Failed, outcome: str) -> Ending:
        run.left = True
        run.sampler.close()
        self.runs.remove(run)
        if self.cache is not None and outcome != "failed" and run.pos >= MIN_REUSE:
            if run.pos > len(run.prompt):  # the prompt stays as cache, the answer goes
                self.ctx.truncate(run.seq, len(run.prompt))
                self.ledger.truncate(run.seq, len(run.prompt))
                del run.tokens[len(run.prompt) :]
            for seq in self.cache.add(run.seq, run.tokens, run.session.request.cache_group):
                self._forget(seq)
            while len(self.cache) > self.cache.max_entries:
                self._evict_oldest()
            while self.cache_only_tokens() > self.cache_cells and self._evict_oldest():
                pass
        else:
            self._forget(run.seq)
        return run.session, outcome, event

    def reap(self) -> Ended:
        """End the sessions cancelled since the last step."""
        return [
            self._leave(run, Failed(run.session.cancel_reason or "cancelled", 499), "cancelled")
            for run in list(self.runs)
            if run.session.cancelled
        ]

    def abort_all(self, reason: str, status: int = 499) -> Ended:
        outcome = "cancelled" if status == 499 else "failed"
        return [
            self._leave(run, Failed(run.session.cancel_reason or reason, status), outcome)
            for run in list(self.runs)
        ]

    def step(self) -> Ended:
        """Decode one batch: the next token of each generating session, then prompt chunks."""
        ctx, ledger = self.ctx, self.ledger
        self._resolve_waits()
        generating = [run for run in self.runs if run.next_token is not None]
        drafting = len(generating) <= DRAFT_SESSIONS
        for run in generating:
            assert run.next_token is not None
            run.logit_index = ctx.add(run.next_token, run.pos, run.seq, logits=True)
            run.tokens.append(run.next_token)
            run.pos += 1
            if drafting and run.lookup is not None:
                self._add_draft(run, ctx.room - len(generating))
            ledger.grow(run.seq, run.pos)
        budget = min(ctx.room, PREFILL_CHUNK) if generating else ctx.room
        for run in self.runs:
            if run.next_token is not None or run.wait is not None or budget <= 0:
                continue
            take = min(budget, len(run.prompt) - run.fed)
            for token in run.prompt[run.fed : run.fed + take]:
                run.fed += 1
                index = ctx.add(token, run.pos, run.seq, logits=run.fed == len(run.prompt))
                run.pos += 1
            run.tokens.extend(run.prompt[run.fed - take : run.fed])
            ledger.grow(run.seq, run.pos)
            if run.fed == len(run.prompt):
                run.logit_index = index
            budget -= take
        while ledger.cells() > ctx.n_cells and self._evict_oldest():
            pass  # running sessions' cells come before the cache's
        if ctx.n_tokens == 0:
            return []  # every prompt waits for a leader's prefix
        try:
            ctx.decode()
        except Exception as exc:
            failed = Failed(f"generation failed: {exc}", status=500)
            return [self._leave(run, failed, "failed") for run in list(self.runs)]
        ended: Ended = []
        for run in list(self.runs):
            if run.logit_index is not None:
                try:
                    token = run.sampler.sample(ctx.ctx, run.logit_index)
                except GrammarDeadEnd as exc:  # this session's grammar: it alone ends
                    ended.append(self._leave(run, Failed(str(exc), 400), "failed"))
                    continue
                run.logit_index = None
                settle = self._verify if run.draft else self._accept
                if (outcome := settle(run, token)) is not None:
                    ended.append(outcome)
        return ended

    def _add_draft(self, run: Run, room: int) -> None:
        """Put `run`'s draft for this step in the batch, behind its next token."""
        assert run.lookup is not None
        # every draft token kept is one more token out: stay within max_tokens
        k = min(run.draft_max, room, run.max_tokens - run.generated - 1)
        run.draft = run.lookup.draft(run.tokens, k)
        run.draft_at = []
        for token in run.draft:
            run.draft_at.append(self.ctx.add(token, run.pos, run.seq, logits=True))
            run.tokens.append(token)
            run.pos += 1

    def _verify(self, run: Run, token: int) -> Ending | None:
        """Stream the draft tokens the sampler agrees with, one by one (`token` is its pick
        after the next token), drop the cells of the rest, and go on from its first pick
        that differs (or the one after the last draft token)."""
        draft, run.draft = run.draft, []
        kept = 0
        for guess, index in zip(draft, run.draft_at, strict=True):
            if token != guess:
                break
            if (outcome := self._accept(run, token)) is not None:
                self._count_draft(run, len(draft), kept + 1)
                return outcome  # leaving dropped the answer's cells, drafts with them
            token = run.sampler.sample(self.ctx.ctx, index)
            kept += 1
        self._count_draft(run, len(draft), kept)
        if (refused := len(draft) - kept) > 0:
            run.pos -= refused
            del run.tokens[run.pos :]
            self.ctx.truncate(run.seq, run.pos)
            self.ledger.truncate(run.seq, run.pos)
        return self._accept(run, token)

    def _count_draft(self, run: Run, drafted: int, kept: int) -> None:
        self.drafted += drafted
        self.draft_kept += kept
        if kept == drafted:
            run.draft_max = min(self.draft_max, run.draft_max * 2)
        else:
            run.draft_max = max(1, kept)
        run.drafted += drafted
        run.draft_kept += kept
        if run.drafted >= DRAFT_TRIAL and run.draft_kept < DRAFT_KEEP * run.drafted:
            run.lookup = None  # its text does not repeat enough to pay for the drafts

    def _accept(self, run: Run, token: int) -> Ending | None:
        """Stream `token`'s text; the session and its counter when this ends it."""
        session = run.session
        if self.ctx.is_end(token):
            tail = run.text.flush()
            if tail:
                session.channel.offer(Token(tail))
            return self._leave(run, Done("stop", len(run.prompt), run.generated), "completed")
        run.generated += 1
        text = run.text.feed(self.ctx.piece(token))
        if run.generated >= run.max_tokens and not run.text.stopped:
            text += run.text.flush()
        if text and not session.channel.offer(Token(text)):
            session.cancel_reason = "reader too slow: its buffer is full"
            return self._leave(run, Failed(session.cancel_reason, 499), "cancelled")
        if run.text.stopped:
            return self._leave(run, Done("stop", len(run.prompt), run.generated), "completed")
        if run.generated >= run.max_tokens:
            return self._leave(run, Done("length", len(run.prompt), run.generated), "completed")
        run.next_token = token
        return None

    def close(self) -> None:
        self.ctx.close()
