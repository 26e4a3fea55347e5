"""Which KV cells each sequence holds, counted once, and the cache of finished sequences.

llama.cpp's unified KV cache lets one cell belong to several sequences: `llama_memory_seq_cp`
within one stream only adds the destination's id to the source's cells, and a cell is free
again once no sequence holds it. So a sequence's KV is a chain of `Span`s: the leading
spans it shares (copied from another sequence, each up to some position), then the span of
cells it wrote itself. `Ledger` keeps those chains and counts every cell once, as llama.cpp
does; it never touches llama.cpp itself (pure bookkeeping, tested on its own).

`PrefixCache` holds finished sequences (their token ids and sequence id) in LRU order, so a
new prompt can copy the longest common token prefix instead of prefilling it again. Each
entry belongs to the cache group of the request that filled it, and only a prompt of the
same group may reuse it: with tenants, cached KV never crosses from one group to another
(None, requests without a group, is one group of its own).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Iterable, Sequence


def common_prefix(a: Sequence[int], b: Sequence[int], limit: int) -> int:
    """How many leading tokens `a` and `b` share, at most `limit` (slices compare in C)."""
    high = min(len(a), len(b), limit)
    if high <= 0 or a[0] != b[0]:
        return 0
    if a[:high] == b[:high]:
        return high
    low = 1  # a[:low] == b[:low]; a[:high] != b[:high]
    while high - low > 1:
        middle = (low + high) // 2
        if a[low:middle] == b[low:middle]:
            low = middle
        else:
            high = middle
    return low


class Span:
    """Cells written by one sequence from position `start`; `users` maps seq -> end used."""

    __slots__ = ("start", "users")

    def __init__(self, start: int) -> None:
        self.start = start
        self.users: dict[int, int] = {}

    def cells(self, among: Collection[int] | None = None) -> int:
        ends = [e for s, e in self.users.items() if among is None or s in among]
        return max(ends) - self.start if ends else 0


class Ledger:
    """The KV cells of every sequence, shared cells counted once."""

    def __init__(self) -> None:
        self._chains: dict[int, list[Span]] = {}
        self._own: dict[int, Span] = {}
        self._spans: dict[int, Span] = {}  # id(span) -> span, for every span in use

    def length(self, seq: int) -> int:
        """Positions 0..length-1 of `seq` hold KV."""
        chain = self._chains.get(seq)
        return chain[-1].users[seq] if chain else 0

    def copy(self, src: int, dst: int, n: int) -> None:
        """`dst` (empty) now shares `src`'s cells at positions below `n`."""
        assert not self._chains.get(dst), "copy into an empty sequence only"
        chain: list[Span] = []
        for span in self._chains.get(src, []):
            if span.start >= n:
                break
            span.users[dst] = min(span.users[src], n)
            chain.append(span)
        self._chains[dst] = chain

    def grow(self, seq: int, length: int) -> None:
        """`seq` wrote its own cells up to position `length` (exclusive)."""
        own = self._own.get(seq)
        if own is None:
            own = Span(self.length(seq))
            self._own[seq] = own
            self._spans[id(own)] = own
            self._chains.setdefault(seq, []).append(own)
        own.users[seq] = length

    def truncate(self, seq: int, length: int) -> None:
        """`seq` keeps only its cells at positions below `length` (others may still hold the
        rest)."""
        kept: list[Span] = []
        for span in self._chains.get(seq, []):
            if span.start < length:
                span.users[seq] = min(span.users[seq], length)
                kept.append(span)
                continue
            del span.users[seq]
            if not span.users:
                del self._spans[id(span)]
            if self._own.get(seq) is span:
                del self._own[seq]
        if seq in self._chains:
            self._chains[seq] = kept

    def drop(self, seq: int) -> None:
        """`seq` let go of all its cells (those no other sequence holds are free)."""
        for span in self._chains.pop(seq, []):
            del span.users[seq]
            if not span.users:
                del self._spans[id(span)]
        self._own.pop(seq, None)

    def cells(self, among: Collection[int] | None = None) -> int:
        """Cells held by any sequence (or by any of `among`), each counted once."""
        return sum(span.cells(among) for span in self._spans.values())


class PrefixCache:
    """Finished sequences kept for their KV, least recently used first."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        # seq -> its cache group and token ids
        self._entries: OrderedDict[int, tuple[str | None, list[int]]] = OrderedDict()
        self.hits = 0
        self.reused_tokens = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def seqs(self) -> list[int]:
        return list(self._entries)

    def items(self, group: str | None) -> Iterable[tuple[int, list[int]]]:
        """The cached sequences a prompt of cache group `group` may reuse."""
        return ((seq, tokens) for seq, (g, tokens) in self._entries.items() if g == group)

    def touch(self, seq: int) -> None:
        self._entries.move_to_end(seq)

    def add(self, seq: int, tokens: list[int], group: str | None = None) -> list[int]:
        """Keep `seq`, filled by a prompt of cache group `group`; returns the sequences now
        redundant (their group's, whose tokens prefix `tokens`)."""
        redundant = [
            s
            for s, cached in self.items(group)
            if len(cached) <= len(tokens)
            and common_prefix(cached, tokens, len(cached)) == len(cached)
        ]
        for s in redundant:
            del self._entries[s]
        self._entries[seq] = (group, tokens)
        return redundant

    def pop_oldest(self) -> int | None:
        """Evict the least recently used sequence; None when empty."""
        if not self._entries:
            return None
        seq, _ = self._entries.popitem(last=False)
        self.evictions += 1
        return seq
