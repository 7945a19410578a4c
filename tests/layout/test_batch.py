import pytest
import torch
from torch.testing import assert_close

from lightning_critrm.layout.batch import RewardBatch, shared_prompt_length
from lightning_critrm.layout.options import Layout


def test_split_pairs_gives_chosen_then_rejected():
    batch = RewardBatch.padded([[1, 2], [3], [4, 5, 6], [7]], pad_token_id=0, num_pairs=2)
    r_c, r_r = batch.split_pairs(torch.tensor([10.0, 11.0, 20.0, 21.0]))
    assert_close(r_c, torch.tensor([10.0, 11.0]))
    assert_close(r_r, torch.tensor([20.0, 21.0]))


def test_sequences_scored_alone_are_not_pairs():
    batch = RewardBatch.padded([[1, 2], [3]], pad_token_id=0, ids=[7, 9])
    with pytest.raises(ValueError, match="not pairs"):
        batch.split_pairs(torch.zeros(2))
    assert_close(batch.ids, torch.tensor([7, 9]))


def test_bad_layouts_are_refused():
    with pytest.raises(ValueError, match="2 pairs need 4 sequences, got 3"):
        RewardBatch.padded([[1], [2], [3]], pad_token_id=0, num_pairs=2)
    with pytest.raises(ValueError, match="sequence 1 of the batch is empty"):
        RewardBatch.padded([[1], []], pad_token_id=0)


def test_to_moves_every_tensor_and_keeps_the_rest():
    batch = RewardBatch.padded([[1, 2], [3]], pad_token_id=0, num_pairs=1, margin=[0.5])
    moved = batch.to("meta")
    assert moved.input_ids.device.type == "meta" and moved.margin.device.type == "meta"
    assert moved.num_pairs == 1 and batch.input_ids.device.type == "cpu"


# Two pairs: (chosen, rejected) = ([5 6 7 2], [5 6 9 9 2]) sharing the prompt [5 6], and ([8 2], [3 2])
# sharing nothing.
SHARED = [[5, 6, 7, 2], [8, 2], [5, 6, 9, 9, 2], [3, 2]]
SHARED_GROUPS = [[0, 2], [1, 3]]


def test_shared_prefix_lays_each_pair_out_as_prompt_then_both_rests():
    batch = RewardBatch.shared_prompt(SHARED, SHARED_GROUPS, pad_token_id=0, num_pairs=2)
    assert batch.input_ids.tolist() == [[5, 6, 7, 2, 9, 9, 2], [8, 2, 3, 2, 0, 0, 0]]
    # positions continue after the prompt, so the rejected rest starts at 2 again
    assert batch.position_ids.tolist() == [[0, 1, 2, 3, 2, 3, 4], [0, 1, 0, 1, 0, 1, 2]]
    assert batch.branch_ids.tolist() == [[0, 0, 1, 1, 2, 2, 2], [1, 1, 2, 2, -1, -1, -1]]
    assert batch.block_ids.tolist() == [[0] * 7, [1, 1, 1, 1, 2, 2, 2]]
    assert batch.first_token_index.tolist() == [0, 7, 0, 7]
    assert batch.last_token_index.tolist() == [3, 8, 6, 10]
    assert batch.attention_mask is None
    assert (batch.num_tokens, batch.num_positions, batch.num_padding) == (13, 14, 3)


def test_shared_prefix_blocks_let_each_rest_see_the_prompt_and_itself_only():
    blocks = RewardBatch.shared_prompt(SHARED, SHARED_GROUPS, pad_token_id=0, num_pairs=2).attention_blocks()
    expected = torch.tensor([
        [[1, 0, 0, 0, 0, 0, 0],
         [1, 1, 0, 0, 0, 0, 0],
         [1, 1, 1, 0, 0, 0, 0],  # chosen rest: the prompt and itself
         [1, 1, 1, 1, 0, 0, 0],
         [1, 1, 0, 0, 1, 0, 0],  # rejected rest: the prompt and itself, never the chosen rest
         [1, 1, 0, 0, 1, 1, 0],
         [1, 1, 0, 0, 1, 1, 1]],
        [[1, 0, 0, 0, 0, 0, 0],  # no shared prompt: two separate sequences
         [1, 1, 0, 0, 0, 0, 0],
         [0, 0, 1, 0, 0, 0, 0],
         [0, 0, 1, 1, 0, 0, 0],
         [0, 0, 0, 0, 1, 0, 0],  # padding attends to padding (no empty softmax row)
         [0, 0, 0, 0, 1, 1, 0],
         [0, 0, 0, 0, 1, 1, 1]],
    ], dtype=torch.bool)[:, None]
    assert torch.equal(blocks, expected)


def test_packed_shared_prefix_rows_hold_several_pairs_without_padding():
    batch = RewardBatch.shared_prompt(SHARED, SHARED_GROUPS, pad_token_id=0, pack=True, row_tokens=11,
                                      num_pairs=2)
    assert batch.input_ids.tolist() == [[5, 6, 7, 2, 9, 9, 2, 8, 2, 3, 2]]
    assert batch.block_ids.tolist() == [[0] * 7 + [1] * 4]
    assert batch.last_token_index.tolist() == [3, 8, 6, 10]
    assert (batch.num_tokens, batch.num_padding) == (13, 0)


@pytest.mark.parametrize("sequences, expected", [
    ([[1, 2, 3], [1, 2, 4]], 2),
    ([[1, 2], [1, 2, 3]], 1),  # the shorter keeps its own last token
    ([[1, 2, 3], [1, 2, 3]], 2),
    ([[1, 2, 3]], 2),
    ([[5], [5, 6]], 0),
    ([[1, 2], [3, 2]], 0),
])
def test_shared_prompt_length(sequences, expected):
    assert shared_prompt_length(sequences) == expected


def test_groups_must_split_the_sequences():
    with pytest.raises(ValueError, match="groups must split the 4 sequences"):
        RewardBatch.shared_prompt(SHARED, [[0, 2], [1]], pad_token_id=0)
    with pytest.raises(ValueError, match="groups must split"):
        RewardBatch.shared_prompt(SHARED, [[0, 2], [1, 3, 3]], pad_token_id=0)


def test_padding_counts_in_every_layout():
    seqs = [[1, 2, 3], [4]]
    assert RewardBatch.padded(seqs, pad_token_id=0).num_padding == 2
    assert RewardBatch.packed(seqs, pad_token_id=0, row_tokens=3).num_padding == 2
    assert RewardBatch.packed(seqs, pad_token_id=0, row_tokens=4).num_padding == 0


def test_attention_segments_of_shared_prefix_rows_by_hand():
    segments = RewardBatch.shared_prompt(SHARED, SHARED_GROUPS, pad_token_id=0,
                                         num_pairs=2).attention_segments()
    assert segments == [
        # the second sequence leaves the prompt's outputs to the first
        [(((0, 2), (2, 4)), 0), (((0, 2), (4, 7)), 2)],
        [(((0, 2),), 0), (((2, 4),), 0)],  # nothing shared; the padding (4-7) is no segment
    ]


def test_attention_segments_of_packed_rows_by_hand():
    batch = RewardBatch.packed([[5, 6, 2], [7, 2], [8, 9, 10, 2]], pad_token_id=0, row_tokens=6)
    # rows [8 9 10 2 | 7 2] and [5 6 2 | pad pad pad]
    assert batch.attention_segments() == [[(((4, 6),), 0), (((0, 4),), 0)], [(((0, 3),), 0)]]
    with pytest.raises(ValueError, match="padded batch has no segments"):
        RewardBatch.padded([[1, 2]], pad_token_id=0).attention_segments()


@pytest.mark.parametrize("layout", [
    Layout(), Layout(padding_side="left"), Layout(packing=True), Layout(shared_prompt=True),
    Layout(shared_prompt=True, packing=True),
], ids=["padded", "left", "packed", "shared", "shared_packed"])
def test_critique_targets_are_each_critique_token_read_from_the_position_before_it(layout):
    # Two pairs; sequence 1 shares its prompt [1, 2, 3] with sequence 0, and 3 has [4, 5] before it
    # only in its own group. Critique spans: tokens 3-4 of seq 0, 4-5 of seq 1, none, 1-2 of seq 3.
    sequences = [[1, 2, 3, 4, 5], [1, 2, 3, 9, 8, 7], [4, 5], [4, 7, 8]]
    batch = layout.batch(sequences, 0, groups=[[0, 1], [2, 3]], num_pairs=2,
                         critique_spans=[(3, 5), (4, 6), None, (1, 3)])
    assert batch.critique_labels.tolist() == [4, 5, 8, 7, 7, 8]
    # The tokens before them: 3 then 4 (seq 0), 9 then 8 (seq 1), 4 then 7 (seq 3). In the shared
    # layout seq 3's first predictor is the group's prefix token.
    assert batch.input_ids.reshape(-1)[batch.critique_index].tolist() == [3, 4, 9, 8, 4, 7]
    assert batch.to("cpu").critique_index.tolist() == batch.critique_index.tolist()


def test_critique_targets_need_a_token_before_the_critique():
    with pytest.raises(ValueError, match="must start after the first token"):
        Layout().batch([[1, 2]], 0, critique_spans=[(0, 1)])
    empty = Layout().batch([[1, 2]], 0, critique_spans=[None])
    assert empty.critique_index.tolist() == [] and empty.critique_labels.tolist() == []
