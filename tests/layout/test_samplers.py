import pytest

from lightning_critrm.layout.samplers import (
    EpochShuffleSampler,
    LengthGroupedBatchSampler,
    TokenBudgetBatchSampler,
)


def test_length_grouped_batches_cover_every_index_once_and_group_by_length():
    lengths = [5, 100, 6, 99, 7, 98, 8, 97]
    sampler = LengthGroupedBatchSampler(range(8), batch_size=2, drop_last=False, lengths=lengths,
                                        window_batches=None)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(8))
    assert batches[0] == [1, 3]  # the longest batch first: out-of-memory shows at step one
    for b in batches:
        assert max(lengths[i] for i in b) - min(lengths[i] for i in b) <= 2
    assert len(sampler) == 4


def test_length_grouping_stays_within_windows():
    lengths = list(range(12))
    sampler = LengthGroupedBatchSampler(list(range(12)), batch_size=2, drop_last=True, lengths=lengths,
                                        window_batches=2)
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
                                            lengths=[1] * 10, window_batches=None, uneven=uneven)
        return list(sampler), len(sampler)

    monkeypatch.setattr(LengthGroupedBatchSampler, "_replicas", lambda self: (0, 1))
    everything = list(LengthGroupedBatchSampler(EpochShuffleSampler(10, seed=3), batch_size=2,
                                                drop_last=False,
                                                lengths=[1] * 10, window_batches=None))
    assert len(everything) == 5
    # Training: each rank the same number of steps; the fifth batch does not divide, it waits.
    assert batches_of(0, "drop") == ([everything[0], everything[2]], 2)
    assert batches_of(1, "drop") == ([everything[1], everything[3]], 2)
    # Evaluation: every pair is seen; rank 1 repeats the first batch to keep the ranks in step.
    assert batches_of(0, "pad") == ([everything[0], everything[2], everything[4]], 3)
    assert batches_of(1, "pad") == ([everything[1], everything[3], everything[0]], 3)


def test_token_budget_batches_count_padded_tokens_by_hand():
    # Sorted longest first: 100, 90 | 50, 40, 30 | 10, 9, 8, 7, 6, 5 under a budget of 400 padded tokens:
    # [100, 90] costs 2 x 2 x 100 = 400; adding 50 would cost 600. [50, 40, 30] costs 300; with 10:
    # 400, still in; with 9 it would be 500. Then [9, 8, 7, 6, 5] costs 2 x 5 x 9 = 90.
    lengths = [10, 100, 9, 50, 8, 90, 7, 40, 6, 30, 5]
    sampler = TokenBudgetBatchSampler(len(lengths), max_tokens=400, lengths=lengths, seed=0,
                                      window_pairs=len(lengths))
    composed = sorted(sorted(lengths[i] for i in b) for b in sampler.composed())
    assert composed == [[5, 6, 7, 8, 9], [10, 30, 40, 50], [90, 100]]
    assert all(sampler.cost(b) <= 400 for b in sampler.composed()) and len(sampler) == 3
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert sorted(lengths[i] for i in batches[0]) == [90, 100]  # the heaviest first (400 tokens)


def test_token_budget_counts_packed_tokens_and_lets_an_overlong_pair_travel_alone():
    lengths = [300, 60, 50, 40, 30, 20]
    sampler = TokenBudgetBatchSampler(len(lengths), max_tokens=200, lengths=lengths, seed=0, packed=True)
    # Packed, twice the sum, longest first: 300 alone (over the budget by itself); 60 + 50 -> 220, so
    # 60 alone; 50 + 40 -> 180, + 30 -> 240: [50, 40]; 30 + 20 -> 100: [30, 20].
    composed = sorted(sorted(lengths[i] for i in b) for b in sampler.composed())
    assert composed == [[20, 30], [40, 50], [60], [300]]


@pytest.mark.parametrize("packed, expected", [
    # One shared-prompt row per pair, padded: pairs x longest. [300] alone; [160, 150]: 2 x 160 = 320 fits
    # a budget of 400, a third would make 480; [120, 100, 90]: 360; then [60].
    (False, [[60], [90, 100, 120], [150, 160], [300]]),
    # Packed shared-prompt rows: the sum. 300 alone (+160 = 460); 160 + 150 = 310, + 120 = 430: [160, 150];
    # 120 + 100 + 90 = 310, + 60 = 370: all four.
    (True, [[60, 90, 100, 120], [150, 160], [300]]),
])
def test_token_budget_counts_one_row_per_pair_for_shared_prompt_rows(packed, expected):
    lengths = [120, 300, 60, 150, 90, 160, 100]
    sampler = TokenBudgetBatchSampler(len(lengths), max_tokens=400, lengths=lengths, seed=0, packed=packed,
                                      rows=1)
    assert sorted(sorted(lengths[i] for i in b) for b in sampler.composed()) == expected


def test_without_length_grouping_token_budget_batches_are_cut_in_the_shuffled_order():
    lengths = [5, 100, 6, 99, 7, 98, 8, 97]
    sampler = TokenBudgetBatchSampler(8, max_tokens=1000, lengths=lengths, seed=2, window_pairs=None)
    order = list(EpochShuffleSampler(8, seed=2))
    assert [i for b in sampler.composed() for i in b] == order  # consecutive runs of the shuffled order


def test_token_budget_batches_are_the_same_every_epoch_in_another_order():
    lengths = [(i * 37) % 101 + 1 for i in range(60)]
    sampler = TokenBudgetBatchSampler(60, max_tokens=600, lengths=lengths, seed=4, window_pairs=20)
    first = list(sampler)
    sampler.set_epoch(1)
    second = list(sampler)
    assert sorted(map(sorted, first)) == sorted(map(sorted, second)) and first != second
    assert len(first) == len(sampler)
    again = TokenBudgetBatchSampler(60, max_tokens=600, lengths=lengths, seed=4, window_pairs=20)
    again.set_epoch(1)
    assert list(again) == second  # (seed, epoch) alone fix the order: a resumed run replays it
    again.skip_batches = 2
    assert list(again) == second[2:]
