from lightning_critrm.data.batching import EpochShuffleSampler, LengthGroupedBatchSampler


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


def test_skip_batches_applies_until_changed():
    sampler = LengthGroupedBatchSampler(list(range(8)), batch_size=2, drop_last=False, lengths=[1] * 8)
    full = list(sampler)
    sampler.skip_batches = 3
    assert list(sampler) == full[3:] and list(sampler) == full[3:]
    sampler.skip_batches = 0
    assert list(sampler) == full


def test_batches_are_dealt_across_ranks_by_the_seed_alone(monkeypatch):
    def batches_of(rank: int, uneven: str) -> tuple[list, int]:
        monkeypatch.setattr(LengthGroupedBatchSampler, "_replicas", lambda self: (rank, 2))
        sampler = LengthGroupedBatchSampler(EpochShuffleSampler(10, seed=3), batch_size=2, drop_last=False,
                                            lengths=[1] * 10, mega_batch_factor=None, uneven=uneven)
        return list(sampler), len(sampler)

    monkeypatch.setattr(LengthGroupedBatchSampler, "_replicas", lambda self: (0, 1))
    everything = list(LengthGroupedBatchSampler(EpochShuffleSampler(10, seed=3), batch_size=2, drop_last=False,
                                                lengths=[1] * 10, mega_batch_factor=None))
    assert len(everything) == 5
    # Training: each rank the same number of steps; the fifth batch does not divide, it waits.
    assert batches_of(0, "drop") == ([everything[0], everything[2]], 2)
    assert batches_of(1, "drop") == ([everything[1], everything[3]], 2)
    # Evaluation: every pair is seen; rank 1 repeats the first batch to keep the ranks in step.
    assert batches_of(0, "pad") == ([everything[0], everything[2], everything[4]], 3)
    assert batches_of(1, "pad") == ([everything[1], everything[3], everything[0]], 3)
