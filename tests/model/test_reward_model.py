"""RewardModel alone: pooling, padding, dtypes, Hugging Face names, and the packed and
shared-prompt layouts it attends within."""

import inspect

import pytest
import torch
from torch.testing import assert_close

from lightning_critrm.errors import InputError
from lightning_critrm.layout import Layout, PairCollator
from lightning_critrm.layout.attention import BackboneAttention
from lightning_critrm.layout.batch import RewardBatch
from tests.model.test_module import FEATURES, built


@pytest.mark.parametrize("which, pooling", [("tiny_decoder_dir", "last"), ("tiny_encoder_dir", "first")])
def test_rewards_do_not_depend_on_padding_side(request, which, pooling):
    model = built(request.getfixturevalue(which), pooling=pooling).eval()
    right = PairCollator(0, Layout(padding_side="right"))(FEATURES)
    left = PairCollator(0, Layout(padding_side="left"))(FEATURES)
    with torch.no_grad():
        r_right, r_left = model(right), model(left)
    assert r_right.shape == (4,) and r_right.dtype == torch.float32
    assert_close(r_right, r_left, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("which, padding_side, gets_mask", [
    ("tiny_decoder_dir", "right", False),  # padding after every real token: causal attention never sees it
    ("tiny_decoder_dir", "left", True),
    ("tiny_encoder_dir", "right", True),  # bidirectional: the mask is needed
])
def test_the_backbone_gets_a_padding_mask_only_where_attention_could_see_padding(request, which, padding_side,
                                                                                 gets_mask):
    model = built(request.getfixturevalue(which), pooling="last").eval()
    seen = []
    attention = next(m for m in model.modules() if type(m).__name__.endswith(("Attention", "SelfAttention")))
    attention.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(
            inspect.signature(module.forward).bind(*args, **kwargs).arguments.get("attention_mask")),
        with_kwargs=True,
    )
    model(PairCollator(0, Layout(padding_side=padding_side))(FEATURES))
    assert (seen[0] is not None) == gets_mask  # what the attention itself is given


def test_reward_is_fp32_under_bf16_autocast(tiny_decoder_dir):
    model = built(tiny_decoder_dir)
    batch = PairCollator(pad_token_id=0)(FEATURES)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        rewards = model(batch)
    assert rewards.dtype == torch.float32


def test_head_is_named_score_and_dropout_is_off(tiny_encoder_dir):
    model = built(tiny_encoder_dir, pooling="first")
    assert model.score.weight.shape == (1, 64)
    assert all(m.p == 0.0 for m in model.backbone.modules() if isinstance(m, torch.nn.Dropout))
    assert model.backbone.training

def test_reward_model_state_dict_loads_into_a_hugging_face_sequence_classifier(tiny_decoder_dir,
                                                                               chat_tokenizer):
    from transformers import AutoModelForSequenceClassification

    model = built(tiny_decoder_dir).eval()
    hf = AutoModelForSequenceClassification.from_pretrained(tiny_decoder_dir, num_labels=1).eval()
    hf.load_state_dict(model.reward_model.state_dict(), strict=True)  # the same names, nothing left over
    # transformers reads the last token that is not the pad token: right padding, pad != eos.
    batch = PairCollator(pad_token_id=chat_tokenizer.pad_token_id)(FEATURES)
    with torch.no_grad():
        ours = model(batch)
        theirs = hf(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits.squeeze(-1)
    assert_close(ours, theirs, atol=1e-5, rtol=1e-5)

def pair_sequences(seed: int = 0) -> list[list[int]]:
    """Four pairs, chosen then rejected: prompts shared within a pair (long, short, none at all,
    and a rejected completion that runs on past the chosen one's EOS)."""
    g = torch.Generator().manual_seed(seed)

    def tokens(n: int) -> list[int]:
        return torch.randint(4, 300, (n,), generator=g).tolist()

    prompts = [tokens(25), tokens(3), [], tokens(8)]
    chosen = [prompts[0] + tokens(12) + [2], prompts[1] + tokens(30) + [2], tokens(6) + [2],
              prompts[3] + [7, 2]]
    rejected = [prompts[0] + tokens(4) + [2], prompts[1] + tokens(2) + [2], tokens(9) + [2],
                prompts[3] + [7, 2, 9, 2]]
    return chosen + rejected


LAYOUTS = {
    "padded": lambda seqs: RewardBatch.padded(seqs, pad_token_id=0, num_pairs=4),
    "packed": lambda seqs: RewardBatch.packed(seqs, pad_token_id=0, num_pairs=4),
    "shared_prompt": lambda seqs: RewardBatch.shared_prompt(seqs, [[i, 4 + i] for i in range(4)], 0,
                                                            num_pairs=4),
    "shared_prompt_packed": lambda seqs: RewardBatch.shared_prompt(
        seqs, [[i, 4 + i] for i in range(4)], 0, pack=True, num_pairs=4
    ),
    # The data module's packing default: the whole batch in one row, nothing padded.
    "packed_one_row": lambda seqs: RewardBatch.packed(seqs, pad_token_id=0, row_tokens=10**6, num_pairs=4),
    "shared_prompt_one_row": lambda seqs: RewardBatch.shared_prompt(
        seqs, [[i, 4 + i] for i in range(4)], 0, pack=True, row_tokens=10**6, num_pairs=4
    ),
}


# The default (sdpa, packed and shared-prompt rows attended one sequence at a time), and sdpa and
# eager attention given a 4-D mask.
@pytest.mark.parametrize("attention", ["sdpa_segments", "sdpa", "eager"])
def test_packed_and_shared_prompt_rows_give_the_padded_rewards_and_gradients(tiny_decoder_dir, attention):
    torch.manual_seed(0)
    model = built(tiny_decoder_dir).eval()
    assert model.reward_model.backbone.config._attn_implementation == "sdpa_segments"
    model.reward_model.backbone.set_attn_implementation(attention)
    sequences = pair_sequences()
    batches = {name: layout(sequences) for name, layout in LAYOUTS.items()}
    padded = batches["padded"]
    assert batches["packed"].input_ids.shape[0] < padded.input_ids.shape[0]  # several sequences share a row
    assert batches["shared_prompt"].num_positions < padded.num_positions  # prompts scored once
    assert batches["shared_prompt_packed"].num_positions < batches["packed"].num_positions
    for name in ("packed_one_row", "shared_prompt_one_row"):
        assert batches[name].input_ids.shape[0] == 1 and batches[name].num_padding == 0, name
    results = {}
    for name, batch in batches.items():
        assert batch.num_tokens == padded.num_tokens == sum(map(len, sequences)), name
        model.zero_grad()
        rewards = model(batch)
        chosen, rejected = batch.split_pairs(rewards)
        (-(torch.nn.functional.logsigmoid(chosen - rejected)).mean()).backward()
        results[name] = (rewards.detach(),
                         {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    rewards, grads = results.pop("padded")
    assert len(grads) > 10 and rewards.abs().min() > 1e-3  # rewards that say something, gradients everywhere
    for name, (other_rewards, other_grads) in results.items():
        assert_close(other_rewards, rewards, atol=1e-5, rtol=1e-5, msg=name)
        assert other_grads.keys() == grads.keys()
        for param, grad in grads.items():
            assert_close(other_grads[param], grad, atol=1e-5, rtol=1e-4, msg=f"{name}: {param}")


def test_shared_prompt_refuses_an_encoder_whose_prompt_reads_the_completion(tiny_encoder_dir):
    model = built(tiny_encoder_dir, pooling="first")
    batch = LAYOUTS["shared_prompt"](pair_sequences())
    with pytest.raises(InputError, match="shared_prompt needs a causal decoder"):
        model(batch)


def test_packed_rows_go_through_one_masked_kernel_where_the_sequence_loop_does_not_pay(tiny_decoder_dir,
                                                                                       monkeypatch):
    # GPUs without flash-attention: sdpa_segments falls back to sdpa with the block mask.
    model = built(tiny_decoder_dir).eval()
    reward_model = model.reward_model
    assert reward_model.attends_per_sequence(torch.device("cpu"))
    assert not reward_model.attends_per_sequence(torch.device("cuda"))
    sequences = pair_sequences()
    expected = model(LAYOUTS["padded"](sequences)).detach()
    calls = []
    real_sdpa = torch.nn.functional.scaled_dot_product_attention

    def recording(q, k, v, attn_mask=None, **kwargs):
        calls.append(attn_mask is not None)
        return real_sdpa(q, k, v, attn_mask=attn_mask, **kwargs)

    monkeypatch.setattr(BackboneAttention, "per_sequence", lambda self, device: False)
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", recording)
    for name in ("packed_one_row", "shared_prompt_one_row"):
        calls.clear()
        with pytest.warns(UserWarning, match="attend over whole masked rows: for speed, load the backbone "
                                             "with flash_attention_2"):
            rewards = model(LAYOUTS[name](sequences))
        assert_close(rewards, expected, atol=1e-5, rtol=1e-5, msg=name)
        assert calls == [True, True], name  # one masked call per layer, no loop over sequences


def test_rows_attended_one_sequence_at_a_time_build_no_block_mask(tiny_decoder_dir, monkeypatch):
    # transformers would build a [B, 1, T, T] mask from the restarting positions that nothing reads.
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS

    model = built(tiny_decoder_dir).eval()
    sequences = pair_sequences()
    expected = model(LAYOUTS["padded"](sequences)).detach()
    built_masks = []
    real_mask = ALL_MASK_ATTENTION_FUNCTIONS["sdpa_segments"]

    def recording(*args, **kwargs):
        built_masks.append(kwargs["q_length"])
        return real_mask(*args, **kwargs)

    monkeypatch.setitem(ALL_MASK_ATTENTION_FUNCTIONS._global_mapping, "sdpa_segments", recording)
    for name in ("packed", "packed_one_row", "shared_prompt", "shared_prompt_one_row"):
        assert_close(model(LAYOUTS[name](sequences)), expected, atol=1e-5, rtol=1e-5, msg=name)
    assert built_masks == []
    model(LAYOUTS["padded"](sequences))  # the recording is in place: padded rows go through it
    assert built_masks == [LAYOUTS["padded"](sequences).input_ids.shape[1]]


def test_eager_attention_refuses_packed_rows_whose_mask_would_grow_too_large(tiny_decoder_dir, monkeypatch):
    from lightning_critrm.layout import attention

    monkeypatch.setattr(attention, "WHOLE_ROW_ATTENTION_LIMIT", 40)
    model = built(tiny_decoder_dir).eval()
    sequences = pair_sequences()
    one_row = LAYOUTS["packed_one_row"](sequences)  # 1 x 147 tokens
    assert torch.isfinite(model(one_row)).all()  # sdpa attends each sequence alone: any row is fine
    model.reward_model.backbone.set_attn_implementation("eager")
    with pytest.raises(InputError, match="packed rows of 147 tokens under 'eager' "
                                         "attention.*data.layout.row_tokens"):
        model(one_row)
    # One shared-prompt pair per row: rows as wide, but none holds several sequences.
    unpacked = LAYOUTS["shared_prompt"](sequences)
    assert unpacked.input_ids.shape[1] > 40
    assert torch.isfinite(model(unpacked)).all()


def test_a_packed_row_holds_sequences_whole_with_positions_restarting():
    batch = RewardBatch.packed([[5, 6, 2], [7, 2], [8, 9, 10, 2]], pad_token_id=0, row_tokens=6)
    # longest first: row 0 = [8 9 10 2 | 7 2], row 1 = [5 6 2 | pad pad pad]
    assert batch.input_ids.tolist() == [[8, 9, 10, 2, 7, 2], [5, 6, 2, 0, 0, 0]]
    assert batch.position_ids.tolist() == [[0, 1, 2, 3, 0, 1], [0, 1, 2, 0, 1, 2]]
    assert batch.attention_mask is None
    assert batch.first_token_index.tolist() == [6, 4, 0] and batch.last_token_index.tolist() == [8, 5, 3]
