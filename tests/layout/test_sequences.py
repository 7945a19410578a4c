import torch

from lightning_critrm.layout import Layout, SequenceBatches
from lightning_critrm.layout.sequences import DUMMY_ID, collect

SEQS = [[1] * 5, [2] * 1, [3] * 3, [4] * 2, [5] * 4]


def test_each_sequence_is_scored_once_across_ranks_in_as_many_passes_on_each():
    batches = SequenceBatches(SEQS, batch_size=2, pad_token_id=0)
    plans = [batches.plan(rank, 2) for rank in range(2)]
    # sorted by length: 1 (len 1), 3 (2), 2 (3), 4 (4), 0 (5); dealt 0::2 and 1::2, then batched by two
    assert plans == [[[1, 2], [0]], [[3, 4], []]]  # rank 1 pads with a dummy pass
    built = list(batches.build(plans[1]))
    assert built[1].ids.tolist() == [DUMMY_ID] and built[0].ids.tolist() == [3, 4]


def test_groups_stay_whole_under_a_shared_prompt():
    batches = SequenceBatches([[1, 2, 3], [1, 2, 4], [9, 9]], batch_size=2, pad_token_id=0,
                              layout=Layout(shared_prompt=True), groups=[[0, 1], [2]])
    plan = batches.plan(0, 1)
    assert plan == [[2], [0, 1]]  # the 2-token sequence first; the pair (4 tokens laid out) together
    pair = list(batches.build(plan))[1]
    assert pair.input_ids.tolist() == [[1, 2, 3, 4]] and pair.ids.tolist() == [0, 1]


def test_a_group_larger_than_a_batch_is_cut_into_rows_of_a_batch():
    seqs = [[1, 2, k] for k in range(3, 8)]  # five completions of the prompt [1, 2]
    batches = SequenceBatches(seqs, batch_size=2, pad_token_id=0, layout=Layout(shared_prompt=True),
                              groups=[[0, 1, 2, 3, 4]])
    built = list(batches.build(batches.plan(0, 1)))
    assert [b.ids.tolist() for b in built] == [[4], [0, 1], [2, 3]]  # the 3-token single first
    assert [b.input_ids.tolist() for b in built] == [[[1, 2, 7]], [[1, 2, 3, 4]], [[1, 2, 5, 6]]]


def test_collect_drops_the_dummy_sequences():
    assert collect(torch.tensor([4, DUMMY_ID, 2]), torch.tensor([0.5, 9.0, -1.0])) == {4: 0.5, 2: -1.0}
