"""The batched arc-standard system: oracle round trips, hand-checked features, legality, decoding, speed."""

from __future__ import annotations

import random
import time

import pytest
import torch

from mesimp.tasks.parse.arcstandard import (
    NUM_FEATURES,
    SHIFT,
    ArcStandardBatch,
    greedy_decode,
    is_projective_tree,
    left_arc,
    num_transitions,
    oracle_dataset,
    right_arc,
)

NULLS = {"null_word": 1, "null_tag": 2, "null_label": 99}
ROOT_WORD, ROOT_TAG = 3, 4


def random_projective_tree(n: int, num_labels: int, rng: random.Random) -> tuple[list[int], list[int]]:
    """Heads and labels (index 0 unused, -1) of a random projective tree with one child of ROOT.

    Recursive splitting: a span gets a random root r; each side of r is cut into random contiguous runs, each a
    subtree hanging from r (so nodes get several left and right children).
    """
    heads, labels = [-1] * (n + 1), [-1] * (n + 1)

    def build(lo: int, hi: int, head: int) -> None:
        r = rng.randint(lo, hi)
        heads[r], labels[r] = head, rng.randrange(num_labels)
        for a, b in (lo, r - 1), (r + 1, hi):
            start = a
            for i in range(a, b + 1):
                if i == b or rng.random() < 0.5:
                    build(start, i, r)
                    start = i + 1

    if n:
        build(1, n, 0)
    return heads, labels


def random_tree(n: int, rng: random.Random, one_root: bool = True) -> list[int]:
    """Heads (index 0 unused) of an arbitrary random tree, usually non-projective."""
    heads = [-1] * (n + 1)
    order = list(range(1, n + 1))
    rng.shuffle(order)
    placed = [0]
    for i, token in enumerate(order):
        heads[token] = 0 if (i == 0 or not one_root and rng.random() < 0.2) else rng.choice(placed[1:])
        placed.append(token)
    return heads


def make_batch(lengths: list[int], num_labels: int, seed: int, width: int | None = None):
    """Padded words, tags, lengths, gold heads, gold labels for random projective trees of these lengths."""
    rng = random.Random(seed)
    width = width or max(lengths, default=0) + 1
    B = len(lengths)
    words = torch.randint(10, 60, (B, width), generator=torch.Generator().manual_seed(seed))
    tags = torch.randint(10, 30, (B, width), generator=torch.Generator().manual_seed(seed + 1))
    words[:, 0], tags[:, 0] = ROOT_WORD, ROOT_TAG
    heads = torch.zeros(B, width, dtype=torch.long)
    labels = torch.zeros(B, width, dtype=torch.long)
    for b, n in enumerate(lengths):
        h, lab = random_projective_tree(n, num_labels, rng)
        heads[b, 1 : n + 1] = torch.tensor(h[1:], dtype=torch.long)
        labels[b, 1 : n + 1] = torch.tensor(lab[1:], dtype=torch.long)
        words[b, n + 1 :] = 0  # padding: never read
        tags[b, n + 1 :] = 0
    return words, tags, torch.tensor(lengths), heads, labels


def test_oracle_round_trip_rebuilds_every_tree():
    L = 4
    rng = random.Random(0)
    lengths = [rng.randint(1, 15) for _ in range(300)]
    words, tags, lens, gold_heads, gold_labels = make_batch(lengths, L, seed=1, width=18)  # extra padding
    state = ArcStandardBatch(words, tags, lens, L, **NULLS)
    steps = torch.zeros(len(lengths), dtype=torch.long)
    for _ in range(2 * 15 + 1):
        if state.finished.all():
            break
        active = ~state.finished
        t = state.oracle(gold_heads, gold_labels)
        assert state.legal()[active].gather(1, t[active, None]).all(), "the oracle proposed an illegal transition"
        # the newest left (right) child is always the leftmost (rightmost) one so far
        s1, s2 = state.stack_items(2).unbind(1)
        is_left = active & (t >= 1) & (t <= L)
        is_right = active & (t > L)
        old_lc1 = state.lc1.gather(1, s1.clamp(min=0)[:, None]).squeeze(1)
        old_rc1 = state.rc1.gather(1, s2.clamp(min=0)[:, None]).squeeze(1)
        assert ((old_lc1 < 0) | (s2 < old_lc1))[is_left].all()
        assert (s1 > old_rc1)[is_right].all()
        state.apply(t)
        steps += active.long()
    assert state.finished.all()
    assert torch.equal(steps, 2 * lens)
    positions = torch.arange(18)
    real = (positions >= 1) & (positions <= lens[:, None])
    assert torch.equal(state.heads, torch.where(real, gold_heads, -1))
    assert torch.equal(state.labels, torch.where(real, gold_labels, -1))
    # the children bookkeeping against the gold trees
    for b, n in enumerate(lengths):
        h = gold_heads[b].tolist()
        for p in range(n + 1):
            left = sorted(c for c in range(1, n + 1) if h[c] == p and c < p)
            right = sorted((c for c in range(1, n + 1) if h[c] == p and c > p), reverse=True)
            expected = [(left + [-1, -1])[:2], (right + [-1, -1])[:2]]
            got = [[int(state.lc1[b, p]), int(state.lc2[b, p])], [int(state.rc1[b, p]), int(state.rc2[b, p])]]
            assert got == expected, (b, p)
            assert int(state.num_children[b, p]) == len(left) + len(right)


def test_features_of_a_hand_built_configuration():
    # 12 tokens; word of position p is 100 + p, tag 200 + p (ROOT: 100 / 200); two columns of padding.
    n, L = 12, 5
    words = torch.tensor([[100 + p for p in range(n + 1)] + [0, 0]])
    tags = torch.tensor([[200 + p for p in range(n + 1)] + [0, 0]])
    nulls = {"null_word": 1, "null_tag": 2, "null_label": 5}
    state = ArcStandardBatch(words, tags, torch.tensor([n]), L, **nulls)
    S = SHIFT

    def run(*transitions: int) -> None:
        for t in transitions:
            state.apply(torch.tensor([t]))

    # arcs (child <- head : label): 1<-2:0, 3<-4:1, 2<-4:2, 4->5:3, 6<-7:4, 7->8:0, 4->7:1
    run(S, S, left_arc(0),  # [0 2]
        S, S, left_arc(1), left_arc(2),  # [0 4]; 4 has left children 2, 3; 2 has 1
        S, right_arc(3, L),  # [0 4]; 4 has right child 5
        S, S, left_arc(4), S, right_arc(0, L), right_arc(1, L))  # [0 4]; 4 has right children 5, 7; 7 has 8
    # configuration A: stack [ROOT 4], buffer 9 10 11 12
    positions = [4, 0, -1, 9, 10, 11,  # s1 s2 s3 b1 b2 b3
                 2, 7, 3, 5,  # lc1(s1) rc1(s1) lc2(s1) rc2(s1)
                 -1, -1, -1, -1,  # the children of s2 = ROOT: none yet
                 1, 8, -1, -1]  # lc1(lc1(s1)) = lc1(2) = 1, rc1(rc1(s1)) = rc1(7) = 8, none for ROOT
    assert state.feature_positions().tolist() == [positions]
    expected_words = [104, 100, 1, 109, 110, 111, 102, 107, 103, 105, 1, 1, 1, 1, 101, 108, 1, 1]
    expected_tags = [204, 200, 2, 209, 210, 211, 202, 207, 203, 205, 2, 2, 2, 2, 201, 208, 2, 2]
    expected_labels = [2, 1, 1, 3,  # labels of 2, 7, 3, 5
                       5, 5, 5, 5,  # no children of ROOT: null_label
                       0, 0, 5, 5]  # labels of 1 and 8, then nothing
    assert state.features().tolist() == [expected_words + expected_tags + expected_labels]

    run(S, S, left_arc(2))  # 9<-10:2
    # configuration B: stack [ROOT 4 10], buffer 11 12
    positions = [10, 4, 0, 11, 12, -1,  # s1 s2 s3 b1 b2 b3 (none after 12)
                 9, -1, -1, -1,  # s1 = 10 has only the left child 9
                 2, 7, 3, 5,  # lc1(s2) rc1(s2) lc2(s2) rc2(s2)
                 -1, -1, 1, 8]  # lc1(9) none, rc1 none, lc1(lc1(4)) = 1, rc1(rc1(4)) = 8
    assert state.feature_positions().tolist() == [positions]
    expected_words = [110, 104, 100, 111, 112, 1, 109, 1, 1, 1, 102, 107, 103, 105, 1, 1, 101, 108]
    expected_tags = [210, 204, 200, 211, 212, 2, 209, 2, 2, 2, 202, 207, 203, 205, 2, 2, 201, 208]
    expected_labels = [2, 5, 5, 5,  # label of 9, then no other children of 10
                       2, 1, 1, 3,  # labels of 2, 7, 3, 5
                       5, 5, 0, 0]  # nothing under 9 / right of 10; labels of 1 and 8
    assert state.features().tolist() == [expected_words + expected_tags + expected_labels]
    assert state.features().shape == (1, NUM_FEATURES)

    run(S, right_arc(3, L), S, right_arc(4, L), right_arc(0, L), right_arc(1, L))  # 11, 12 under 10; 10 under 4
    assert state.finished.tolist() == [True]
    assert state.heads.tolist() == [[-1, 2, 4, 4, 0, 4, 7, 4, 7, 10, 4, 10, 10, -1, -1]]
    assert state.labels.tolist() == [[-1, 0, 2, 1, 1, 3, 4, 1, 0, 2, 0, 3, 4, -1, -1]]
    assert state.rc1[0, 10] == 12 and state.rc2[0, 10] == 11


def test_legality():
    L = 3
    T = num_transitions(L)
    lefts, rights = slice(1, 1 + L), slice(1 + L, T)
    words = torch.tensor([[ROOT_WORD, 10, 11], [ROOT_WORD, 10, 0]])
    tags = torch.tensor([[ROOT_TAG, 20, 21], [ROOT_TAG, 20, 0]])
    state = ArcStandardBatch(words, tags, torch.tensor([2, 1]), L, **NULLS)
    legal = state.legal()
    assert legal.shape == (2, T)
    assert legal[:, SHIFT].all() and not legal[:, 1:].any()  # stack [ROOT]: only SHIFT
    with pytest.raises(ValueError, match="illegal"):
        state.apply(torch.tensor([left_arc(0), SHIFT]))

    state.apply(torch.tensor([SHIFT, SHIFT]))  # stacks [ROOT 1]; buffers [2] and []
    legal = state.legal()
    assert not legal[:, lefts].any()  # s2 is ROOT: no LEFT-ARC
    assert legal[0, SHIFT] and not legal[0, rights].any()  # no RIGHT-ARC onto ROOT while the buffer holds 2
    assert not legal[1, SHIFT] and legal[1, rights].all()  # empty buffer: SHIFT illegal, RIGHT-ARC onto ROOT ok
    with pytest.raises(ValueError, match="illegal"):
        state.apply(torch.tensor([right_arc(0, L), right_arc(0, L)]))

    state.apply(torch.tensor([SHIFT, right_arc(2, L)]))  # sentence 1 is done
    assert state.finished.tolist() == [False, True]
    legal = state.legal()
    assert not legal[1].any()  # nothing is legal when finished
    assert legal[0, lefts].all() and legal[0, rights].all() and not legal[0, SHIFT]  # stack [ROOT 1 2]
    state.apply(torch.tensor([left_arc(1), -7]))  # a finished sentence ignores its transition, even a bad one
    state.apply(torch.tensor([right_arc(0, L), SHIFT]))
    assert state.finished.all() and not state.legal().any()
    assert state.heads.tolist() == [[-1, 2, 0], [-1, 0, -1]]
    assert state.labels.tolist() == [[-1, 1, 0], [-1, 2, -1]]


def unique_word_batch(lengths: list[int], num_labels: int, seed: int):
    """A batch whose word ids name (sentence, position): id = 10 + b * width + p, ROOT included."""
    words, tags, lens, heads, labels = make_batch(lengths, num_labels, seed)
    width = words.shape[1]
    words = 10 + torch.arange(len(lengths))[:, None] * width + torch.arange(width)
    return words, tags, lens, heads, labels


def feature_oracle(words, lengths, heads, labels, num_labels):
    """A score_fn that knows the gold trees: it reads s1, s2 and b1 off the (unique) word features."""
    width = words.shape[1]
    T = num_transitions(num_labels)

    def where(word_id: int) -> tuple[int, int] | None:
        return None if word_id == NULLS["null_word"] else divmod(word_id - 10, width)

    def score(features: torch.Tensor) -> torch.Tensor:
        scores = torch.rand(len(features), T)
        for i, row in enumerate(features.tolist()):
            b, p1 = where(row[0])
            s2, b1 = where(row[1]), where(row[3])
            n = int(lengths[b])
            h, lab = heads[b].tolist(), labels[b].tolist()
            buffer_start = b1[1] if b1 else n + 1
            t = SHIFT
            if s2 is not None and s2[1] != 0 and h[s2[1]] == p1:
                t = left_arc(lab[s2[1]])
            elif s2 is not None and h[p1] == s2[1] and all(h[k] != p1 for k in range(buffer_start, n + 1)):
                t = right_arc(lab[p1], num_labels)
            scores[i, t] = 1e6
        return scores

    return score


@pytest.mark.parametrize("batch_size", [1, 7, 4096])
def test_greedy_decode_with_an_oracle_score_reproduces_gold(batch_size):
    L = 3
    rng = random.Random(5)
    lengths = [rng.randint(1, 12) for _ in range(40)] + [0]
    words, tags, lens, heads, labels = unique_word_batch(lengths, L, seed=6)
    got_heads, got_labels = greedy_decode(feature_oracle(words, lens, heads, labels, L), words, tags, lens, L,
                                          batch_size=batch_size, **NULLS)
    positions = torch.arange(words.shape[1])
    real = (positions >= 1) & (positions <= lens[:, None])
    assert torch.equal(got_heads, torch.where(real, heads, -1))
    assert torch.equal(got_labels, torch.where(real, labels, -1))


def test_greedy_decode_with_random_scores_builds_trees():
    L = 4
    rng = random.Random(7)
    lengths = [rng.randint(1, 20) for _ in range(200)]
    words, tags, lens, _, _ = make_batch(lengths, L, seed=8)
    generator = torch.Generator().manual_seed(9)
    calls = []

    def score(features: torch.Tensor) -> torch.Tensor:
        assert features.shape[1] == NUM_FEATURES
        calls.append(len(features))
        return torch.randn(len(features), num_transitions(L), generator=generator) * 10

    heads, labels = greedy_decode(score, words, tags, lens, L, batch_size=64, **NULLS)
    assert sum(calls) == 2 * sum(lengths)  # only unfinished sentences are scored, each 2n times
    assert is_projective_tree(heads, lens).all()
    for b, n in enumerate(lengths):
        h, lab = heads[b].tolist(), labels[b].tolist()
        assert h[0] == -1 and all(x == -1 for x in h[n + 1 :] + lab[n + 1 :])
        assert all(0 <= h[p] <= n and h[p] != p and 0 <= lab[p] < L for p in range(1, n + 1))
        assert sum(h[p] == 0 for p in range(1, n + 1)) == 1
        for p in range(1, n + 1):  # every token reaches ROOT: no cycles
            seen, q = set(), p
            while q != 0:
                assert q not in seen
                seen.add(q)
                q = h[q]


def test_oracle_dataset_sizes_order_and_chunking():
    L = 3
    rng = random.Random(11)
    lengths = [rng.randint(1, 15) for _ in range(50)] + [0]
    words, tags, lens, heads, labels = make_batch(lengths, L, seed=12)
    features, transitions = oracle_dataset(words, tags, lens, heads, labels, L, **NULLS)
    assert features.shape == (2 * sum(lengths), NUM_FEATURES) and features.dtype == torch.long
    assert transitions.shape == (2 * sum(lengths),) and transitions.dtype == torch.long
    assert transitions.min() >= 0 and transitions.max() < num_transitions(L)
    chunked = oracle_dataset(words, tags, lens, heads, labels, L, chunk_size=7, **NULLS)
    assert torch.equal(chunked[0], features) and torch.equal(chunked[1], transitions)
    # sentence by sentence: replaying one sentence's slice alone gives the same features
    start = 0
    for b, n in enumerate(lengths):
        state = ArcStandardBatch(words[b : b + 1], tags[b : b + 1], lens[b : b + 1], L, **NULLS)
        for k in range(2 * n):
            assert torch.equal(state.features()[0], features[start + k])
            state.apply(transitions[start + k : start + k + 1])
        assert state.finished.all()
        start += 2 * n
    empty = oracle_dataset(words[:0], tags[:0], lens[:0], heads[:0], labels[:0], L, **NULLS)
    assert empty[0].shape == (0, NUM_FEATURES) and empty[1].shape == (0,)


def test_unbuildable_trees_are_reported_and_detected():
    rng = random.Random(13)
    trees = [random_tree(rng.randint(1, 9), rng, one_root=rng.random() < 0.7) for _ in range(300)]
    width = 10
    heads = torch.zeros(len(trees), width, dtype=torch.long)
    for b, h in enumerate(trees):
        heads[b, 1 : len(h)] = torch.tensor(h[1:])
    lens = torch.tensor([len(h) - 1 for h in trees])
    words = torch.full((len(trees), width), 20)
    buildable = []
    for b in range(len(trees)):
        try:
            oracle_dataset(words[b : b + 1], words[b : b + 1], lens[b : b + 1], heads[b : b + 1],
                           torch.zeros_like(heads[b : b + 1]), 1, **NULLS)
            buildable.append(True)
        except ValueError as error:
            assert "cannot build" in str(error)
            buildable.append(False)
    assert 20 < sum(buildable) < len(trees) - 20  # both kinds occur
    assert is_projective_tree(heads, lens).tolist() == buildable
    # and trees that are no trees at all
    bad = torch.tensor([[0, 2, 1, 0], [0, 0, 0, 2], [0, 0, 5, 1], [0, 1, 0, 2]])
    assert is_projective_tree(bad, torch.tensor([3, 3, 3, 3])).tolist() == [False, False, False, False]


def test_oracle_dataset_is_vectorised():
    L = 40
    rng = random.Random(17)
    lengths = [rng.randint(15, 35) for _ in range(2000)]
    words, tags, lens, heads, labels = make_batch(lengths, L, seed=18)
    start = time.perf_counter()
    features, transitions = oracle_dataset(words, tags, lens, heads, labels, L, **NULLS)
    seconds = time.perf_counter() - start
    print(f"oracle_dataset: 2000 sentences, {len(transitions)} examples in {seconds:.2f} s "
          f"({len(transitions) / seconds:,.0f} examples/s)")
    assert len(transitions) == 2 * sum(lengths)
    assert seconds < 60
