"""The arc-standard transition system over a batch of sentences, as tensor operations (Chen & Manning 2014).

One :class:`ArcStandardBatch` holds the parser configurations of ``B`` sentences; every method works on all of
them at once with tensor operations (no Python loop over sentences or tokens), so a parse is a Python loop over
at most ``2 * n_max`` steps. It serves both the static oracle that makes the training data
(:func:`oracle_dataset`) and batched greedy decoding (:func:`greedy_decode`).

Inputs
    ``words``, ``tags``: LongTensor (B, n_max + 1). Position 0 is the ROOT token (the caller puts its ROOT ids
    there), positions 1..length[b] are the tokens, the rest is padding (any value; never read).
    ``lengths``: LongTensor (B,), the number of tokens without the root (0 allowed: nothing to do).
    ``null_word``, ``null_tag``, ``null_label``: the ids a feature takes where its position holds no token.
    Real arc labels are 0..L-1 (``num_labels`` = L).

Transitions (``num_transitions(L) = 1 + 2L``)
    ``0`` SHIFT: move the buffer front b1 onto the stack. Legal iff the buffer is not empty.
    ``1 + l`` LEFT-ARC(l): s2 <- s1 with label l, pop s2. Legal iff the stack holds >= 2 items and s2 is not ROOT.
    ``1 + L + l`` RIGHT-ARC(l): s2 -> s1 with label l, pop s1. Legal iff the stack holds >= 2 items, and, when s2
    is ROOT, only once the buffer is empty (so ROOT gets exactly one child, as in UD and the PTB conversions).
    Start: stack [ROOT], buffer 1..n. End: buffer empty and stack [ROOT], after exactly 2n transitions.
    Nothing is legal in a finished configuration; :meth:`ArcStandardBatch.apply` leaves finished sentences alone.

Features: LongTensor (B, 48) = [18 word ids | 18 tag ids | 12 label ids], in this order of positions:
    ======  ===============================================================================================
    0-5     s1, s2, s3, b1, b2, b3
    6-9     lc1(s1), rc1(s1), lc2(s1), rc2(s1)
    10-13   lc1(s2), rc1(s2), lc2(s2), rc2(s2)
    14-17   lc1(lc1(s1)), rc1(rc1(s1)), lc1(lc1(s2)), rc1(rc1(s2))
    ======  ===============================================================================================
    Columns 0-17 are the words of these 18 positions, 18-35 their tags, and 36-47 the arc labels of positions
    6-17 (the children). lc1/lc2 are the leftmost / second leftmost left child, rc1/rc2 the rightmost / second
    rightmost right child, among the arcs built so far. A position without a token gives ``null_word``,
    ``null_tag``, ``null_label``; ROOT's word and tag are ``words[:, 0]`` and ``tags[:, 0]``. The three groups keep
    the caller's id spaces (separate embedding tables).

Outputs: ``heads`` and ``labels`` are LongTensor (B, n_max + 1); -1 at position 0, on padding and for tokens that
have no head yet (so after a complete parse, -1 exactly outside 1..length).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

__all__ = [
    "NUM_FEATURES",
    "SHIFT",
    "ArcStandardBatch",
    "greedy_decode",
    "is_projective_tree",
    "left_arc",
    "num_transitions",
    "oracle_dataset",
    "right_arc",
]

NUM_POSITIONS = 18  # word and tag features
NUM_LABEL_FEATURES = 12  # the labels of positions 6..17
NUM_FEATURES = 2 * NUM_POSITIONS + NUM_LABEL_FEATURES  # 48
SHIFT = 0


def num_transitions(num_labels: int) -> int:
    return 1 + 2 * num_labels


def left_arc(label: int) -> int:
    return 1 + label


def right_arc(label: int, num_labels: int) -> int:
    return 1 + num_labels + label


def _take(table: Tensor, index: Tensor) -> Tensor:
    """``table[b, index[b, k]]`` for (B, K) ``index``; -1 (none) where ``index`` is -1."""
    return table.gather(1, index.clamp(min=0)).masked_fill(index < 0, -1)


class ArcStandardBatch:
    """The configurations of a batch of sentences; see the module docstring for the conventions.

    State (all on ``words.device``): ``stack`` (B, n_max + 1), of which ``stack[b, :size[b]]`` is the stack bottom
    (ROOT) to top; ``next`` (B,) the buffer front (the buffer is next..length); ``lc1``, ``lc2``, ``rc1``, ``rc2``
    (B, n_max + 1) each token's children so far (-1: none); ``num_children`` (B, n_max + 1).
    """

    def __init__(self, words: Tensor, tags: Tensor, lengths: Tensor, num_labels: int, *, null_word: int,
                 null_tag: int, null_label: int) -> None:
        if words.dim() != 2 or tags.shape != words.shape:
            raise ValueError(f"words and tags must be (B, n_max + 1) alike, got {tuple(words.shape)} and "
                             f"{tuple(tags.shape)}")
        batch, width = words.shape
        device = words.device
        lengths = torch.as_tensor(lengths, device=device).long()
        if lengths.shape != (batch,):
            raise ValueError(f"lengths must be ({batch},), got {tuple(lengths.shape)}")
        if batch and (int(lengths.min()) < 0 or int(lengths.max()) > width - 1):
            raise ValueError(f"lengths must lie in 0..{width - 1} (the columns after the root)")
        if num_labels < 1:
            raise ValueError(f"num_labels must be >= 1, got {num_labels}")
        self.words, self.tags, self.lengths = words.long(), tags.long(), lengths
        self.num_labels = num_labels
        self.null_word, self.null_tag, self.null_label = int(null_word), int(null_tag), int(null_label)

        def none() -> Tensor:
            return torch.full((batch, width), -1, dtype=torch.long, device=device)

        self.stack = torch.zeros(batch, width, dtype=torch.long, device=device)  # holds at most length + 1 items
        self.size = torch.ones(batch, dtype=torch.long, device=device)
        self.next = torch.ones(batch, dtype=torch.long, device=device)
        self._heads, self._labels = none(), none()
        self.lc1, self.lc2, self.rc1, self.rc2 = none(), none(), none(), none()
        self.num_children = torch.zeros(batch, width, dtype=torch.long, device=device)

    # ---- reading the configuration -------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return self.words.device

    @property
    def num_transitions(self) -> int:
        return num_transitions(self.num_labels)

    @property
    def heads(self) -> Tensor:
        """(B, n_max + 1) head of each token so far; -1 for position 0, padding and tokens without a head."""
        return self._heads.clone()

    @property
    def labels(self) -> Tensor:
        """(B, n_max + 1) label of each token's arc so far; -1 where ``heads`` is -1."""
        return self._labels.clone()

    def _has_buffer(self) -> Tensor:
        return self.next <= self.lengths

    @property
    def finished(self) -> Tensor:
        """(B,) bool: buffer empty and only ROOT on the stack."""
        return ~self._has_buffer() & (self.size == 1)

    def stack_items(self, k: int) -> Tensor:
        """(B, k) positions s1..sk (top first); -1 below the stack bottom."""
        depth = self.size[:, None] - torch.arange(1, k + 1, device=self.device)
        return _take(self.stack, depth)

    def buffer_items(self, k: int) -> Tensor:
        """(B, k) positions b1..bk; -1 past the sentence end."""
        positions = self.next[:, None] + torch.arange(k, device=self.device)
        return torch.where(positions <= self.lengths[:, None], positions, -1)

    def feature_positions(self) -> Tensor:
        """(B, 18) the token positions behind the features (order in the module docstring); -1: none."""
        stack, buffer = self.stack_items(3), self.buffer_items(3)
        top2 = stack[:, :2]
        lc1, rc1 = _take(self.lc1, top2), _take(self.rc1, top2)
        lc2, rc2 = _take(self.lc2, top2), _take(self.rc2, top2)
        children = torch.stack([lc1, rc1, lc2, rc2], dim=2).flatten(1)  # s1's four, then s2's four
        grandchildren = torch.stack([_take(self.lc1, lc1), _take(self.rc1, rc1)], dim=2).flatten(1)
        return torch.cat([stack, buffer, children, grandchildren], dim=1)

    def features(self) -> Tensor:
        """(B, 48) [18 word ids | 18 tag ids | 12 label ids]; rows of finished sentences describe the end state."""
        positions = self.feature_positions()
        missing, safe = positions < 0, positions.clamp(min=0)
        words = self.words.gather(1, safe).masked_fill(missing, self.null_word)
        tags = self.tags.gather(1, safe).masked_fill(missing, self.null_tag)
        children = slice(NUM_POSITIONS - NUM_LABEL_FEATURES, NUM_POSITIONS)
        labels = self._labels.gather(1, safe[:, children]).masked_fill(missing[:, children], self.null_label)
        return torch.cat([words, tags, labels], dim=1)

    def legal(self) -> Tensor:
        """(B, 1 + 2L) bool: which transitions each configuration allows (none once finished)."""
        s2 = self.stack_items(2)[:, 1]
        has_buffer = self._has_buffer()
        two = self.size >= 2
        left = two & (s2 != 0)
        right = two & ((s2 != 0) | ~has_buffer)
        L = self.num_labels
        return torch.cat([has_buffer[:, None], left[:, None].expand(-1, L), right[:, None].expand(-1, L)], dim=1)

    # ---- changing it ---------------------------------------------------------------------------------------

    def apply(self, transitions: Tensor) -> None:
        """Apply one transition per sentence (B,); finished sentences ignore theirs. Illegal ones raise."""
        t = torch.as_tensor(transitions, device=self.device).long()
        if t.shape != self.size.shape:
            raise ValueError(f"transitions must be {tuple(self.size.shape)}, got {tuple(t.shape)}")
        active = ~self.finished
        in_range = (t >= 0) & (t < self.num_transitions)
        ok = in_range & self.legal().gather(1, t.clamp(0, self.num_transitions - 1)[:, None]).squeeze(1)
        bad = active & ~ok
        if bool(bad.any()):
            rows = bad.nonzero().flatten()
            raise ValueError(f"illegal transitions {t[rows][:10].tolist()} for sentences {rows[:10].tolist()}")
        L = self.num_labels
        shift = active & (t == SHIFT)
        left = active & (t >= 1) & (t <= L)
        right = active & (t > L)
        top2 = self.stack_items(2)
        s1, s2 = top2[:, 0], top2[:, 1]

        rows = shift.nonzero().flatten()
        self.stack[rows, self.size[rows]] = self.next[rows]

        rows = left.nonzero().flatten()
        self._attach(rows, head=s1[rows], dep=s2[rows], label=t[rows] - 1, leftward=True)
        self.stack[rows, self.size[rows] - 2] = s1[rows]  # s1 slides down over s2

        rows = right.nonzero().flatten()
        self._attach(rows, head=s2[rows], dep=s1[rows], label=t[rows] - 1 - L, leftward=False)

        self.size += shift.long() - (left | right).long()
        self.next += shift.long()

    def _attach(self, rows: Tensor, head: Tensor, dep: Tensor, label: Tensor, leftward: bool) -> None:
        """Add the arcs head -> dep in ``rows`` (one per row) and update the children bookkeeping."""
        self._heads[rows, dep] = head
        self._labels[rows, dep] = label
        self.num_children[rows, head] += 1
        # Arc-standard attaches left children right to left and right children left to right, so the new child is
        # always the new lc1 / rc1; the general update below does not rely on it.
        if leftward:
            first_table, second_table = self.lc1, self.lc2
            first, second = first_table[rows, head], second_table[rows, head]
            beats_first = (first < 0) | (dep < first)  # none (-1) counts as +infinity
            beats_second = (second < 0) | (dep < second)
        else:
            first_table, second_table = self.rc1, self.rc2
            first, second = first_table[rows, head], second_table[rows, head]
            beats_first = dep > first  # none (-1) always loses
            beats_second = dep > second
        first_table[rows, head] = torch.where(beats_first, dep, first)
        second_table[rows, head] = torch.where(beats_first, first, torch.where(beats_second, dep, second))

    # ---- the static oracle ---------------------------------------------------------------------------------

    def oracle(self, gold_heads: Tensor, gold_labels: Tensor) -> Tensor:
        """(B,) the static arc-standard oracle's transition for each configuration.

        LEFT-ARC(gold label of s2) if s2 is not ROOT and its gold head is s1; else RIGHT-ARC(gold label of s1) if
        the gold head of s1 is s2 and s1 has all its gold children; else SHIFT. ``gold_heads``/``gold_labels``
        are (B, n_max + 1), read at positions 1..length only. Meaningful on configurations the oracle itself
        reached (only gold arcs built; "all its children" compares counts); SHIFT (0) for finished rows. For a
        gold tree that arc-standard cannot build (non-projective, not one child of ROOT, not a tree) it sooner or
        later returns an illegal transition.
        """
        gold_heads = torch.as_tensor(gold_heads, device=self.device).long()
        gold_labels = torch.as_tensor(gold_labels, device=self.device).long()
        if gold_heads.shape != self._heads.shape or gold_labels.shape != self._heads.shape:
            raise ValueError(f"gold heads and labels must be {tuple(self._heads.shape)}")
        positions = torch.arange(gold_heads.shape[1], device=self.device)
        real = (positions >= 1) & (positions <= self.lengths[:, None])
        gold_children = torch.zeros_like(self.num_children).scatter_add_(
            1, torch.where(real, gold_heads, 0), real.long())
        top2 = self.stack_items(2)
        s1, s2 = top2[:, :1].clamp(min=0), top2[:, 1:].clamp(min=0)
        two = self.size >= 2
        left = two & (s2 > 0).squeeze(1) & (gold_heads.gather(1, s2) == s1).squeeze(1)
        complete = (self.num_children.gather(1, s1) == gold_children.gather(1, s1)).squeeze(1)
        right = two & (gold_heads.gather(1, s1) == s2).squeeze(1) & complete
        return torch.where(left, 1 + gold_labels.gather(1, s2).squeeze(1),
                           torch.where(right, 1 + self.num_labels + gold_labels.gather(1, s1).squeeze(1), SHIFT))


def oracle_dataset(words: Tensor, tags: Tensor, lengths: Tensor, gold_heads: Tensor, gold_labels: Tensor,
                   num_labels: int, *, null_word: int, null_tag: int, null_label: int,
                   chunk_size: int = 2000) -> tuple[Tensor, Tensor]:
    """Training examples of the static oracle: (features (N, 48), gold transitions (N,)), N = sum(2 * lengths).

    Runs the oracle on ``chunk_size`` sentences at a time in lockstep. Examples come sentence by sentence (the
    2n configurations of sentence 0 in order, then sentence 1, ...), so the result does not depend on
    ``chunk_size``. Raises ValueError if a gold tree cannot be built by arc-standard; filter the sentences first
    with :func:`is_projective_tree`.
    """
    nulls = {"null_word": null_word, "null_tag": null_tag, "null_label": null_label}
    lengths = torch.as_tensor(lengths, device=words.device).long()
    all_features, all_transitions = [], []
    for start in range(0, len(lengths), chunk_size):
        rows = slice(start, start + chunk_size)
        width = int(lengths[rows].max()) + 1
        state = ArcStandardBatch(words[rows, :width], tags[rows, :width], lengths[rows], num_labels, **nulls)
        heads, labels = gold_heads[rows, :width], gold_labels[rows, :width]
        features, transitions, sentences = [], [], []
        while True:
            active = (~state.finished).nonzero().flatten()
            if not len(active):
                break
            gold = state.oracle(heads, labels)
            stuck = active[~state.legal()[active, gold[active]]]
            if len(stuck):
                raise ValueError(f"arc-standard cannot build the gold trees of sentences "
                                 f"{(stuck + start)[:10].tolist()} (non-projective, not exactly one child of ROOT, "
                                 "or not a tree); filter them out with is_projective_tree")
            features.append(state.features()[active])
            transitions.append(gold[active])
            sentences.append(active)
            state.apply(gold)
        if sentences:
            order = torch.sort(torch.cat(sentences), stable=True).indices  # step order within each sentence
            all_features.append(torch.cat(features)[order])
            all_transitions.append(torch.cat(transitions)[order])
    if not all_features:
        return (torch.empty(0, NUM_FEATURES, dtype=torch.long, device=words.device),
                torch.empty(0, dtype=torch.long, device=words.device))
    return torch.cat(all_features), torch.cat(all_transitions)


def greedy_decode(score_fn: Callable[[Tensor], Tensor], words: Tensor, tags: Tensor, lengths: Tensor,
                  num_labels: int, batch_size: int = 4096, *, null_word: int, null_tag: int,
                  null_label: int) -> tuple[Tensor, Tensor]:
    """Greedy parsing: (heads, labels), each LongTensor (B, n_max + 1) with -1 at position 0 and on padding.

    ``score_fn`` maps features (M, 48) (on ``words.device``) to scores (M, 1 + 2L); it sees only the rows of
    unfinished sentences, and the best legal transition is taken. Sentences are parsed ``batch_size`` at a time,
    sorted by length so a batch finishes together. Runs under ``torch.no_grad()``.
    """
    nulls = {"null_word": null_word, "null_tag": null_tag, "null_label": null_label}
    lengths = torch.as_tensor(lengths, device=words.device).long()
    heads = torch.full(words.shape, -1, dtype=torch.long, device=words.device)
    labels = heads.clone()
    order = torch.argsort(lengths, descending=True, stable=True)
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            width = int(lengths[rows].max()) + 1
            state = ArcStandardBatch(words[rows, :width], tags[rows, :width], lengths[rows], num_labels, **nulls)
            chosen = torch.zeros(len(rows), dtype=torch.long, device=words.device)
            while True:
                active = (~state.finished).nonzero().flatten()
                if not len(active):
                    break
                scores = torch.as_tensor(score_fn(state.features()[active])).to(state.device, torch.float32)
                if scores.shape != (len(active), state.num_transitions):
                    raise ValueError(f"score_fn must return ({len(active)}, {state.num_transitions}) scores, "
                                     f"got {tuple(scores.shape)}")
                legal = state.legal()[active]
                best = scores.masked_fill(~legal, float("-inf")).argmax(1)
                # a row whose legal scores are all -inf may argmax onto an illegal id: take its first legal one
                best = torch.where(legal.gather(1, best[:, None]).squeeze(1), best, legal.long().argmax(1))
                chosen[active] = best
                state.apply(chosen)
            heads[rows, :width] = state.heads
            labels[rows, :width] = state.labels
    return heads, labels


def is_projective_tree(heads: Tensor, lengths: Tensor) -> Tensor:
    """(B,) bool: whether arc-standard (as here) can build the tree ``heads`` (B, n_max + 1), read at 1..length.

    True iff every token has one head in 0..length other than itself, there are no cycles, exactly one token
    hangs from ROOT, and no two arcs cross (counting the arc from ROOT at position 0).
    """
    heads = torch.as_tensor(heads).long()
    lengths = torch.as_tensor(lengths, device=heads.device).long()
    batch, width = heads.shape
    positions = torch.arange(width, device=heads.device).expand(batch, width)
    real = (positions >= 1) & (positions <= lengths[:, None])
    in_range = (heads >= 0) & (heads <= lengths[:, None]) & (heads != positions)
    ok = ~(real & ~in_range).any(1)
    one_root = ((heads == 0) & real).sum(1) == 1
    arcs = real & in_range
    ancestor = torch.where(arcs, heads, 0)  # ROOT and padding point at ROOT; pointer jumping doubles the reach
    for _ in range(max(1, width.bit_length())):
        ancestor = ancestor.gather(1, ancestor)
    acyclic = ~((ancestor != 0) & real).any(1)
    other_end = torch.where(arcs, heads, positions)  # not an arc: an empty span, which crosses nothing
    low, high = torch.minimum(other_end, positions), torch.maximum(other_end, positions)
    crossing = torch.zeros(batch, dtype=torch.bool, device=heads.device)
    step = max(1, (1 << 22) // max(1, width * width))  # bound the (rows, width, width) comparison
    for s in range(0, batch, step):
        lo, hi = low[s : s + step], high[s : s + step]
        a_lo, a_hi, b_lo, b_hi = lo[:, :, None], hi[:, :, None], lo[:, None, :], hi[:, None, :]
        cross = (a_lo < b_lo) & (b_lo < a_hi) & (a_hi < b_hi)
        crossing[s : s + step] = cross.flatten(1).any(1)
    return ok & one_root & acyclic & ~crossing
