import torch
from torch.testing import assert_close

from lightning_critrm.data.batching import EpochShuffleSampler, LengthGroupedBatchSampler
from lightning_critrm.data.collate import PairCollator

FEATURES = [
    {"chosen_input_ids": [5, 6, 7], "rejected_input_ids": [5, 8]},
    {"chosen_input_ids": [9], "rejected_input_ids": [9, 10, 11, 12]},
]


def test_right_padding_exact_tensors():
    batch = PairCollator(pad_token_id=0)(FEATURES)
    assert_close(batch["input_ids"], torch.tensor([[5, 6, 7, 0], [9, 0, 0, 0], [5, 8, 0, 0], [9, 10, 11, 12]]))
    assert_close(batch["attention_mask"], torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1]]))
    assert "margin" not in batch


def test_left_padding_and_multiple_of_and_margin():
    feats = [dict(f, margin=m) for f, m in zip(FEATURES, (1.0, 0.5))]
    batch = PairCollator(pad_token_id=3, padding_side="left", pad_to_multiple_of=3)(feats)
    assert_close(
        batch["input_ids"],
        torch.tensor([[3, 3, 3, 5, 6, 7], [3, 3, 3, 3, 3, 9], [3, 3, 3, 3, 5, 8], [3, 3, 9, 10, 11, 12]]),
    )
    assert_close(batch["attention_mask"], (batch["input_ids"] != 3).long())
    assert_close(batch["margin"], torch.tensor([1.0, 0.5]))


def test_length_grouped_batches_cover_every_index_once_and_group_by_length():
    lengths = [5, 100, 6, 99, 7, 98, 8, 97]
    sampler = LengthGroupedBatchSampler(range(8), batch_size=2, drop_last=False, lengths=lengths, mega_batch_factor=None)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(8))
    assert batches[0] == [1, 3]  # the longest batch first: out-of-memory shows at step one
    for b in batches:
        assert max(lengths[i] for i in b) - min(lengths[i] for i in b) <= 2
    assert len(sampler) == 4


def test_length_grouping_stays_within_windows():
    lengths = list(range(12))
    sampler = LengthGroupedBatchSampler(list(range(12)), batch_size=2, drop_last=True, lengths=lengths, mega_batch_factor=2)
    batches = list(sampler)
    # Windows of 4 indices: {0..3}, {4..7}, {8..11}; each sorted longest first.
    assert sorted(map(sorted, batches)) == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9], [10, 11]]
    assert batches[0] == [11, 10] and len(sampler) == 6


def test_epoch_shuffle_depends_only_on_seed_and_epoch():
    a, b = EpochShuffleSampler(20, seed=1), EpochShuffleSampler(20, seed=1)
    assert list(a) == list(b) and sorted(a) == list(range(20))
    b.set_epoch(1)
    assert list(a) != list(b)


def test_skip_batches_applies_to_one_iteration():
    sampler = LengthGroupedBatchSampler(list(range(8)), batch_size=2, drop_last=False, lengths=[1] * 8)
    full = list(sampler)
    sampler.skip_batches = 3
    assert list(sampler) == full[3:]
    assert list(sampler) == full
