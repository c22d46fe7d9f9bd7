import itertools

import numpy as np

from nmt.data import BucketSampler, iterate_split, make_batch
from nmt.vocab import BOS, EOS, PAD


class Arrays:
    """A stand-in for a bundle TokenArray."""

    def __init__(self, seqs):
        self.seqs = [np.asarray(s, dtype=np.int32) for s in seqs]
        self.lengths = np.array([len(s) for s in seqs])

    def __len__(self):
        return len(self.seqs)

    def __getitem__(self, i):
        return self.seqs[i]


def lengths(n=500, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(1, 40, n), rng.integers(1, 40, n)


def test_every_sentence_once_per_epoch_and_budget_held():
    src, tgt = lengths()
    sampler = BucketSampler(src, tgt, batch_size=0, batch_tokens=200, seed=1)
    batches = list(itertools.islice(iter(sampler), len(sampler)))
    seen = np.concatenate(batches)
    assert sorted(seen.tolist()) == list(range(len(src)))
    for batch in batches:
        padded = (np.maximum(src[batch], tgt[batch]).max() + 1) * len(batch)
        assert padded <= 200 or len(batch) == 1


def test_buckets_group_similar_lengths():
    src, tgt = lengths()
    sampler = BucketSampler(src, tgt, batch_size=16, batch_tokens=0, seed=1)
    spread = [np.ptp(np.maximum(src[b], tgt[b]))
              for b in itertools.islice(iter(sampler), len(sampler))]
    assert np.mean(spread) < 3  # random batches would spread over ~30


def test_seeded_and_resumable():
    src, tgt = lengths()
    a = BucketSampler(src, tgt, 16, 0, seed=3)
    full = [b.tolist() for b in itertools.islice(iter(a), 70)]  # crosses an epoch boundary
    b = BucketSampler(src, tgt, 16, 0, seed=3)
    it = iter(b)
    first = [next(it).tolist() for _ in range(45)]
    c = BucketSampler(src, tgt, 16, 0, seed=3)
    c.load_state_dict(b.state_dict())
    rest = [x.tolist() for x in itertools.islice(iter(c), 25)]
    assert first + rest == full
    other = BucketSampler(src, tgt, 16, 0, seed=4)
    assert [x.tolist() for x in itertools.islice(iter(other), 5)] != full[:5]


def test_max_len_skips_long_pairs():
    sampler = BucketSampler(np.array([3, 50, 4]), np.array([3, 3, 60]), 8, 0, seed=0, max_len=10)
    assert sampler.skipped == 2 and sampler.indices.tolist() == [0]


def test_make_batch_shapes_and_specials():
    src = Arrays([[5, 6, 7], [8]])
    tgt = Arrays([[9, 10], [11, 12, 13]])
    batch = make_batch(src, tgt, np.array([0, 1]), "de")
    assert batch.src_tokens.tolist() == [[5, 6, 7], [8, PAD, PAD]]
    assert batch.src_lengths.tolist() == [3, 1]
    assert batch.tgt_in.tolist() == [[BOS, 9, 10, PAD], [BOS, 11, 12, 13]]
    assert batch.tgt_out.tolist() == [[9, 10, EOS, PAD], [11, 12, 13, EOS]]
    assert batch.n_tgt_tokens == 7


def test_iterate_split_leaves_out_empty_sources():
    src = Arrays([[5], [], [6, 7]])
    tgt = Arrays([[1], [2], [3]])
    seen = np.concatenate([idx for idx, _ in iterate_split(src, tgt, 2, "de")])
    assert sorted(seen.tolist()) == [0, 2]
