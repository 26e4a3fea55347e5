"""Draft tokens from a sequence's own text (prompt lookup), for the decode loop to verify.

A greedy session's next tokens often repeat text it has seen: a name from the prompt, a
line of code being edited, a phrase the answer said before. `Lookup` finds the latest
earlier place where the sequence's last `n` tokens occurred and proposes the tokens that
followed there. The decoder adds them to the batch behind the session's next token and
keeps those the model would have picked anyway, so the output does not change. On this
machine's CPUs a batch of 5 tokens of one sequence costs 27.8 ms against 8.1 ms for one
token: a kept draft saves most of a step, a refused one costs most of one.
"""

from __future__ import annotations

NGRAM = 4  # tokens matched: fewer, surer drafts than with 2


class Lookup:
    """An index of a sequence's n-grams, grown as the sequence grows."""

    def __init__(self, n: int = NGRAM) -> None:
        self.n = n
        self._latest: dict[tuple[int, ...], int] = {}  # n-gram -> where its latest copy ends
        self._indexed = n - 1  # n-grams ending before this position are in `_latest`

    def draft(self, tokens: list[int], k: int) -> list[int]:
        """Up to `k` tokens that followed the latest earlier copy of `tokens`' last n.

        `tokens` only ever grows between calls, or loses positions after the last call's
        end (drafts that were refused): the index holds no n-gram that ends there.
        """
        n, end = self.n, len(tokens) - 1  # the tail n-gram ends at `end`
        latest = self._latest
        for i in range(self._indexed, end):
            latest[tuple(tokens[i - n + 1 : i + 1])] = i
        self._indexed = max(self._indexed, end)
        if k <= 0 or end < n - 1:
            return []
        at = latest.get(tuple(tokens[end - n + 1 :]))
        return [] if at is None else tokens[at + 1 : at + 1 + k]
