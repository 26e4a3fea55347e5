"""Draft tokens from a sequence's own text (prompt lookup), for the decode loop to verify.

A greedy session's next tokens often repeat text it has seen: a name from the prompt, a
line of code being edited, a phrase the answer said before. `Lookup` finds the latest
earlier place where the sequence's last `n` tokens occurred and proposes the tokens that
followed there, once the text has confirmed it: the n-gram's two latest earlier copies
were followed by the same token. The decoder adds them to the batch behind the session's
next token and keeps those the model would have picked anyway, so the output does not
change. On this machine's CPUs a batch of 5 tokens of one sequence costs 27.8 ms against
8.1 ms for one token: a kept draft saves most of a step, a refused one costs most of one.
Replaying the benchmark's greedy answers, the confirmation took the share of drafts kept
on its story prompts from 37% to 77%, and on its bookshop prompts from 97% to 98%.
"""

from __future__ import annotations

NGRAM = 4  # tokens matched: fewer, surer drafts than with 2


class Lookup:
    """An index of a sequence's n-grams, grown as the sequence grows."""

    def __init__(self, n: int = NGRAM) -> None:
        self.n = n
        # n-gram -> where its latest copy ends, and whether the copy before was followed
        # by the same token
        self._latest: dict[tuple[int, ...], tuple[int, bool]] = {}
        self._indexed = n - 1  # n-grams ending before this position are in `_latest`

    def draft(self, tokens: list[int], k: int) -> list[int]:
        """Up to `k` tokens that followed the latest earlier copy of `tokens`' last n, if
        the copy before that was followed by the same token; otherwise none.

        `tokens` only ever grows between calls, or loses positions after the last call's
        end (drafts that were refused): the index holds no n-gram that ends there, nor
        reads a follower from there.
        """
        n, end = self.n, len(tokens) - 1  # the tail n-gram ends at `end`
        latest = self._latest
        for i in range(self._indexed, end):
            gram = tuple(tokens[i - n + 1 : i + 1])
            before = latest.get(gram)
            latest[gram] = (i, before is not None and tokens[before[0] + 1] == tokens[i + 1])
        self._indexed = max(self._indexed, end)
        if k <= 0 or end < n - 1:
            return []
        at, confirmed = latest.get(tuple(tokens[end - n + 1 :]), (0, False))
        return tokens[at + 1 : at + 1 + k] if confirmed else []
