import inspect
import json

import lightning as L
import pytest
import torch
from torch.testing import assert_close

from lightning_critrm.data import PreferenceDataModule
from lightning_critrm.errors import InputError
from lightning_critrm.layout import Layout, PairCollator
from lightning_critrm.layout.batch import RewardBatch
from lightning_critrm.model import CritiqueRewardModel
from lightning_critrm.model.schedules import ConstantLR

FEATURES = [
    {"chosen_input_ids": [5, 6, 7, 8, 2], "rejected_input_ids": [5, 9, 2]},
    {"chosen_input_ids": [11, 2], "rejected_input_ids": [11, 12, 13, 14, 15, 16, 2]},
]


def built(backbone, **kw):
    model = CritiqueRewardModel(backbone=backbone, **kw)
    model.configure_model()
    return model


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
def test_the_backbone_gets_a_padding_mask_only_where_attention_could_see_padding(request, which, padding_side, gets_mask):
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


def datamodule(tmp_path, pairs_file, backbone, **kw):
    return PreferenceDataModule(
        source=str(pairs_file), val_source=str(pairs_file), backbone=backbone,
        cache_dir=str(tmp_path / "cache"), batch_size=4, **kw,
    )


def trainer(max_steps, **kw):
    kw.setdefault("limit_val_batches", 0)
    return L.Trainer(
        accelerator="cpu", max_steps=max_steps, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, **kw,
    )


def test_overfits_a_handful_of_pairs_to_accuracy_one(tmp_path, pairs_file, tiny_decoder_dir):
    # Critiques off: the model must tell "42." from "43." itself. A swapped chosen/rejected
    # order, or a reward read at the wrong token, cannot reach 1.0 here.
    L.seed_everything(0)
    dm = datamodule(tmp_path, pairs_file, tiny_decoder_dir, critiques="none", max_train_pairs=6, max_val_pairs=6)
    model = CritiqueRewardModel(backbone=tiny_decoder_dir, lr=3e-3, lr_scheduler=ConstantLR)
    trainer(60).fit(model, dm)
    dm.val_dataset = dm.train_dataset  # score exactly the pairs it trained on
    metrics = trainer(1, limit_val_batches=None).validate(model, dm, verbose=False)[0]
    assert metrics["val/acc"] == 1.0
    assert metrics["val/loss"] < 0.3
    # Score each completion on its own, from the source file's text, not through the collator:
    # a chosen/rejected swap anywhere in data or model would make these comparisons fail.
    rows = {r["prompt"]: r for r in map(json.loads, pairs_file.read_text().splitlines())}
    model.eval()
    for prompt_json in dm.train_dataset["prompt"]:
        prompt = json.loads(prompt_json)
        row = rows[prompt[0]["content"]]
        with torch.no_grad():
            r_good, r_bad = (
                model(RewardBatch.padded([ids], pad_token_id=0)).item()
                for ids in (dm.formatter.encode(prompt, row[k], None).input_ids for k in ("chosen", "rejected"))
            )
        assert r_good > r_bad


def test_every_parameter_changes_after_a_few_steps(tmp_path, pairs_file, tiny_decoder_dir):
    L.seed_everything(0)
    model = built(tiny_decoder_dir, lr=1e-3)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer(3).fit(model, datamodule(tmp_path, pairs_file, tiny_decoder_dir))
    unchanged = [n for n, p in model.named_parameters() if torch.equal(before[n], p.detach())]
    assert not unchanged
    assert "reward_model.score.weight" in before


def test_bf16_mixed_runs_the_backbone_in_bf16_and_keeps_the_head_fp32(tmp_path, pairs_file, tiny_decoder_dir):
    model = CritiqueRewardModel(backbone=tiny_decoder_dir, lr=1e-3)
    seen = []

    class Spy(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if not seen:  # hook once, after configure_model built the backbone
                module.backbone.layers[0].mlp.up_proj.register_forward_hook(lambda m, i, out: seen.append(out.dtype))

    trainer(2, precision="bf16-mixed", callbacks=[Spy()]).fit(model, datamodule(tmp_path, pairs_file, tiny_decoder_dir))
    assert seen and set(seen) == {torch.bfloat16}  # autocast ran the backbone's matmuls in bf16
    assert model.score.weight.dtype == torch.float32
    assert torch.isfinite(model.score.weight).all()


def test_bf16_true_trains_with_a_bf16_head_and_fp32_rewards(tmp_path, pairs_file, tiny_decoder_dir):
    # Every parameter is bf16 here, the head included (as under FSDP's bf16 parameters): the head
    # must still compute in fp32 instead of failing on "mat1 and mat2 must have the same dtype".
    model = CritiqueRewardModel(backbone=tiny_decoder_dir, lr=1e-3)
    trainer(2, precision="bf16-true").fit(model, datamodule(tmp_path, pairs_file, tiny_decoder_dir))
    assert model.score.weight.dtype == torch.bfloat16
    batch = PairCollator(pad_token_id=0)(FEATURES)
    with torch.no_grad():
        assert model(batch).dtype == torch.float32


@pytest.mark.parametrize("checkpointing, calls_per_step", [(False, 1), (True, 2)])
def test_gradient_checkpointing_recomputes_layers_in_backward(tmp_path, pairs_file, tiny_decoder_dir, checkpointing, calls_per_step):
    model = CritiqueRewardModel(backbone=tiny_decoder_dir, lr=1e-3, gradient_checkpointing=checkpointing)
    calls = []

    class Count(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if not calls:
                calls.append(0)
                module.backbone.layers[0].register_forward_pre_hook(lambda m, a: calls.append(1))

    trainer(2, callbacks=[Count()]).fit(model, datamodule(tmp_path, pairs_file, tiny_decoder_dir))
    assert model.backbone.is_gradient_checkpointing == checkpointing
    assert len(calls) - 1 == 2 * calls_per_step  # 2 steps; checkpointing runs each layer again in backward


def test_reward_model_state_dict_loads_into_a_hugging_face_sequence_classifier(tiny_decoder_dir, chat_tokenizer):
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


def test_checkpoints_from_before_the_reward_model_still_load(tiny_decoder_dir):
    model = built(tiny_decoder_dir)
    old = {("backbone." + k[len("reward_model.model."):]) if k.startswith("reward_model.model.") else k[len("reward_model."):]: v
           for k, v in model.state_dict().items()}
    assert "score.weight" in old and any(k.startswith("backbone.layers.") for k in old)
    checkpoint = {"state_dict": old}
    model.on_load_checkpoint(checkpoint)
    model.load_state_dict(checkpoint["state_dict"], strict=True)


class PoisonBatches(L.Callback):
    """Makes the rewards of the first pair NaN in the given training batches (by batch index)."""

    def __init__(self, batches):
        self.batches, self.active, self.seen_ids = set(batches), False, {}

    def setup(self, trainer, pl_module, stage):
        def poison(module, args, output):
            if self.active:
                output = output.clone()
                output[0] = float("nan")
            return output

        pl_module.reward_model.register_forward_hook(poison)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.active = batch_idx in self.batches
        if self.active:
            self.seen_ids[batch_idx] = (trainer.global_step, batch.ids[0].item())
        self.weights = getattr(self, "weights", []) + [
            torch.cat([p.detach().flatten() for p in pl_module.parameters()]).clone()
        ]


def test_a_nonfinite_loss_stops_the_run_naming_the_step_and_the_pair(tmp_path, pairs_file, tiny_decoder_dir):
    from lightning_critrm.errors import NonFiniteError

    model = built(tiny_decoder_dir, lr=1e-3)
    poison = PoisonBatches({2})
    with pytest.raises(NonFiniteError) as error:
        trainer(4, callbacks=[poison]).fit(model, datamodule(tmp_path, pairs_file, tiny_decoder_dir))
    step, pair = poison.seen_ids[2]
    assert step == 2
    assert f"non-finite loss or reward at step 2 (epoch 0); training pairs [{pair}] of data.source" in str(error.value)
    assert all(torch.isfinite(p).all() for p in model.parameters())  # no update was made from it


def test_nonfinite_batches_are_skipped_within_the_limit(tmp_path, pairs_file, tiny_decoder_dir, caplog):
    model = built(tiny_decoder_dir, lr=1e-3, max_nonfinite_batches=2)
    poison = PoisonBatches({1, 3})
    fit = trainer(4, callbacks=[poison])
    fit.fit(model, datamodule(tmp_path, pairs_file, tiny_decoder_dir))
    assert fit.global_step == 4 and all(torch.isfinite(p).all() for p in model.parameters())
    w = poison.weights  # at the start of batches 0..3: batches 1 and 3 changed nothing
    assert not torch.equal(w[0], w[1]) and torch.equal(w[1], w[2]) and not torch.equal(w[2], w[3])
    assert torch.equal(w[3], torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert "batch skipped (1 of at most 2)" in caplog.text and "batch skipped (2 of at most 2)" in caplog.text
    assert f"at step 3 (epoch 0); training pairs [{poison.seen_ids[3][1]}]" in caplog.text
    assert model._nonfinite_skipped == 2


def test_the_model_a_seed_gives_does_not_depend_on_what_ran_before_configure_model(tiny_decoder_dir):
    # A vLLM critic in prepare_data reseeds the process; the quickstart then trained another model
    # from empty caches (val acc 0.550) than from filled ones (0.625) with the same seed.
    L.seed_everything(0)
    first = CritiqueRewardModel(backbone=tiny_decoder_dir)
    L.seed_everything(0)
    second = CritiqueRewardModel(backbone=tiny_decoder_dir)
    first.configure_model()
    after_first = torch.rand(3)  # training's own randomness (dropout, if on) continues from here
    torch.manual_seed(1234)  # what a critic engine may do in between
    torch.rand(10)
    second.configure_model()
    assert torch.equal(first.score.weight, second.score.weight)
    assert torch.equal(torch.rand(3), after_first)


def pair_sequences(seed: int = 0) -> list[list[int]]:
    """Four pairs, chosen then rejected: prompts shared within a pair (long, short, none at all,
    and a rejected completion that runs on past the chosen one's EOS)."""
    g = torch.Generator().manual_seed(seed)

    def tokens(n: int) -> list[int]:
        return torch.randint(4, 300, (n,), generator=g).tolist()

    prompts = [tokens(25), tokens(3), [], tokens(8)]
    chosen = [prompts[0] + tokens(12) + [2], prompts[1] + tokens(30) + [2], tokens(6) + [2], prompts[3] + [7, 2]]
    rejected = [prompts[0] + tokens(4) + [2], prompts[1] + tokens(2) + [2], tokens(9) + [2], prompts[3] + [7, 2, 9, 2]]
    return chosen + rejected


LAYOUTS = {
    "padded": lambda seqs: RewardBatch.padded(seqs, pad_token_id=0, num_pairs=4),
    "packed": lambda seqs: RewardBatch.packed(seqs, pad_token_id=0, num_pairs=4),
    "shared_prompt": lambda seqs: RewardBatch.shared_prefix(seqs, [[i, 4 + i] for i in range(4)], 0, num_pairs=4),
    "shared_prompt_packed": lambda seqs: RewardBatch.shared_prefix(
        seqs, [[i, 4 + i] for i in range(4)], 0, pack=True, num_pairs=4
    ),
    # The data module's packing default: the whole batch in one row, nothing padded.
    "packed_one_row": lambda seqs: RewardBatch.packed(seqs, pad_token_id=0, row_tokens=10**6, num_pairs=4),
    "shared_prompt_one_row": lambda seqs: RewardBatch.shared_prefix(
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
        results[name] = (rewards.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
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


def test_packed_rows_go_through_one_masked_kernel_where_the_sequence_loop_does_not_pay(tiny_decoder_dir, monkeypatch):
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

    monkeypatch.setattr(type(reward_model), "attends_per_sequence", lambda self, device: False)
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", recording)
    for name in ("packed_one_row", "shared_prompt_one_row"):
        calls.clear()
        with pytest.warns(UserWarning, match="attend over whole masked rows: for speed, load the backbone with flash_attention_2"):
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
    from lightning_critrm.model import reward_model

    monkeypatch.setattr(reward_model, "WHOLE_ROW_ATTENTION_LIMIT", 40)
    model = built(tiny_decoder_dir).eval()
    sequences = pair_sequences()
    one_row = LAYOUTS["packed_one_row"](sequences)  # 1 x 147 tokens
    assert torch.isfinite(model(one_row)).all()  # sdpa attends each sequence alone: any row is fine
    model.reward_model.backbone.set_attn_implementation("eager")
    with pytest.raises(InputError, match="packed rows of 147 tokens under 'eager' attention.*data.layout.row_tokens"):
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
