"""The decode thread's state: running sessions in their slots, advanced one batch per step.

Only the engine's decode thread touches a `Decoder`. `start` reads a session's prompt into
a free slot (its prefill runs in the following steps), `reap` drops cancelled sessions,
`step` decodes one batch and streams each session's next token. Every method returns the
sessions that ended, with the counter each ends in ("completed", "cancelled", "failed") and
its last event, for the engine to send once its accounts are settled.
"""

from __future__ import annotations

from typing import Any

from ishan_tools.infer.config import GenerationRequest
from ishan_tools.infer.errors import PromptRejected
from ishan_tools.infer.events import Done, Failed, Token
from ishan_tools.infer.worker.batch import BatchContext
from ishan_tools.infer.worker.sampling import Sampler, TextAssembler, end_tokens, grammar_for
from ishan_tools.infer.worker.session import Prompt, Session
from ishan_tools.infer.worker.template import ChatTemplate

PREFILL_CHUNK = 128  # prompt tokens per step while other sessions are generating
Ending = tuple[Session, str, Done | Failed]
Ended = list[Ending]


class Run:
    """One session inside the decode loop."""

    def __init__(
        self,
        session: Session,
        seq: int,
        prompt: list[int],
        max_tokens: int,
        stop: tuple[str, ...],
        sampler: Sampler,
    ) -> None:
        self.session = session
        self.seq = seq
        self.prompt = prompt
        self.fed = 0  # prompt tokens already in the batch or the KV cache
        self.pos = 0
        self.max_tokens = max_tokens
        self.generated = 0
        self.next_token: int | None = None
        self.logit_index: int | None = None
        self.sampler = sampler
        self.text = TextAssembler(stop)


class Decoder:
    def __init__(
        self, llama: Any, n_ctx: int, slots: int, kv_bytes_per_token: int, name: str = "the model"
    ) -> None:
        self.llama = llama
        self.n_ctx = n_ctx
        self.kv_bytes_per_token = kv_bytes_per_token
        self.ctx = BatchContext(llama, n_ctx, slots)
        self.free = list(range(slots - 1, -1, -1))
        self.runs: list[Run] = []
        self.template = ChatTemplate(llama, name)
        self._end_tokens: list[int] | None = None  # banned for ignore_eos; found on first use

    @property
    def cached_tokens(self) -> int:
        return sum(run.pos for run in self.runs)

    def _prompt(self, request: GenerationRequest) -> tuple[list[int], tuple[str, ...]]:
        chat = request.chat()
        if chat is not None:
            tokens, extra = self.template.tokens(chat)
            return tokens, request.stop + tuple(extra)
        text = request.prompt or ""
        tokens = list(self.llama.tokenize(text.encode("utf-8"), add_bos=True, special=True))
        return tokens or [int(self.llama.token_bos())], request.stop

    def prepare(self, request: GenerationRequest) -> Prompt:
        """Tokenize `request` and compile its grammar (read-only on the model: safe outside
        the decode thread); raises `PromptRejected` for what cannot be served."""
        grammar = grammar_for(request, self.ctx.vocab)
        try:
            tokens, stop = self._prompt(request)
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
        """Give `session` a slot and its own sampler chain; its prompt is read by the next
        steps."""
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
        self.runs.append(Run(session, self.free.pop(), p.tokens, p.max_tokens, p.stop, sampler))

    def _leave(self, run: Run, event: Done | Failed, outcome: str) -> Ending:
        run.sampler.close()
        self.ctx.free(run.seq)
        self.free.append(run.seq)
        self.runs.remove(run)
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
        ctx = self.ctx
        generating = [run for run in self.runs if run.next_token is not None]
        for run in generating:
            assert run.next_token is not None
            run.logit_index = ctx.add(run.next_token, run.pos, run.seq, logits=True)
            run.pos += 1
        budget = min(ctx.room, PREFILL_CHUNK) if generating else ctx.room
        for run in self.runs:
            if run.next_token is not None or budget <= 0:
                continue
            take = min(budget, len(run.prompt) - run.fed)
            for token in run.prompt[run.fed : run.fed + take]:
                run.fed += 1
                index = ctx.add(token, run.pos, run.seq, logits=run.fed == len(run.prompt))
                run.pos += 1
            if run.fed == len(run.prompt):
                run.logit_index = index
            budget -= take
        try:
            ctx.decode()
        except Exception as exc:
            failed = Failed(f"generation failed: {exc}", status=500)
            return [self._leave(run, failed, "failed") for run in list(self.runs)]
        ended: Ended = []
        for run in list(self.runs):
            if run.logit_index is not None:
                token = run.sampler.sample(ctx.ctx, run.logit_index)
                run.logit_index = None
                if (outcome := self._accept(run, token)) is not None:
                    ended.append(outcome)
        return ended

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
