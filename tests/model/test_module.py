import json

import lightning as L
import pytest
import torch

from lightning_critrm.data import PreferenceDataModule
from lightning_critrm.layout import Batching, PairCollator
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


def datamodule(tmp_path, pairs_file, backbone, **kw):
    return PreferenceDataModule(
        source=str(pairs_file), val_source=str(pairs_file), backbone=backbone,
        cache_dir=str(tmp_path / "cache"), batching=Batching(batch_size=4), **kw,
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
    dm = datamodule(tmp_path, pairs_file, tiny_decoder_dir, critiques="none", max_train_pairs=6,
                    max_val_pairs=6)
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
                for ids in (dm.formatter.encode(prompt, row[k], None).input_ids for k in ("chosen",
                                                                                          "rejected"))
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
                module.backbone.layers[0].mlp.up_proj.register_forward_hook(lambda m, i,
                                                                            out: seen.append(out.dtype))

    trainer(2, precision="bf16-mixed", callbacks=[Spy()]).fit(model,
            datamodule(tmp_path, pairs_file, tiny_decoder_dir))
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
def test_gradient_checkpointing_recomputes_layers_in_backward(tmp_path, pairs_file, tiny_decoder_dir,
                                                              checkpointing, calls_per_step):
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
    assert (f"non-finite loss or reward at step 2 (epoch 0); training pairs [{pair}] of data.source"
            in str(error.value))
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


def test_a_model_that_writes_critiques_adds_the_causal_lms_own_loss_on_the_critique_tokens(
        tmp_path, pairs_file, tiny_decoder_dir):
    from transformers import AutoModelForCausalLM

    from lightning_critrm.model.losses import pairwise_loss

    dm = datamodule(tmp_path, pairs_file, tiny_decoder_dir, critique_targets=True)
    dm.setup("fit")
    model = built(tiny_decoder_dir, critique_lm_coef=0.5)
    assert model.reward_model.writes_critiques
    features = [{**dm.train_dataset[i], "index": i} for i in range(3)]
    batch = PairCollator(dm.pad_token_id)(features)
    logged = {}
    model.log = lambda name, value, **kw: logged.setdefault(name, value)
    objective = model.training_step(batch, 0)

    # The same numbers from the pretrained causal LM itself, its logits over whole sequences.
    lm = AutoModelForCausalLM.from_pretrained(tiny_decoder_dir)
    total, count = 0.0, 0
    for f in features:
        for side in ("chosen", "rejected"):
            ids, (start, end) = f[f"{side}_input_ids"], f[f"{side}_critique_span"]
            assert 0 < start < end <= len(ids)
            logits = lm(torch.tensor([ids])).logits[0]
            total += torch.nn.functional.cross_entropy(
                logits[start - 1 : end - 1], torch.tensor(ids[start:end]), reduction="sum").item()
            count += end - start
    rewards = model(batch)
    pairwise = pairwise_loss(*batch.split_pairs(rewards))
    assert objective.item() == pytest.approx(pairwise.item() + 0.5 * total / count, rel=1e-4)
    assert logged["train/critique_lm_loss"].compute().item() == pytest.approx(total / count, rel=1e-4)
    # The critique is what the formatter put after the completion: its tokens decode to it.
    text = dm.tokenizer.decode(features[0]["chosen_input_ids"][slice(*features[0]["chosen_critique_span"])])
    assert "Correctness: correct." in text and "[Critique of the response]" in text


def test_training_the_critique_writer_lowers_its_lm_loss_and_the_pairwise_loss_stays_out(
        tmp_path, pairs_file, tiny_decoder_dir):
    L.seed_everything(0)
    dm = datamodule(tmp_path, pairs_file, tiny_decoder_dir, critique_targets=True)
    model = CritiqueRewardModel(backbone=tiny_decoder_dir, lr=3e-3, lr_scheduler=ConstantLR,
                                critique_lm_coef=1.0, pairwise_coef=0.0)
    before = trainer(1, limit_val_batches=None).validate(model, dm, verbose=False)[0]
    head = model.score.weight.detach().clone()
    trainer(30).fit(model, dm)
    after = trainer(1, limit_val_batches=None).validate(model, dm, verbose=False)[0]
    assert after["val/critique_lm_loss"] < 0.5 * before["val/critique_lm_loss"]
    assert torch.equal(model.score.weight, head)  # the reward head had no loss to learn from


def test_learning_critiques_needs_critiques_and_a_loss():
    with pytest.raises(Exception, match="one of them > 0"):
        CritiqueRewardModel(critique_lm_coef=0.0, pairwise_coef=0.0)
    with pytest.raises(Exception, match="needs critiques to learn"):
        PreferenceDataModule(critiques="none", critique_targets=True)


def test_a_checkpoint_of_other_weight_settings_is_refused_naming_the_option(tiny_decoder_dir):
    from lightning_critrm.errors import InputError
    from lightning_critrm.model.lora import LoraSettings

    def checkpoint_of(**kw):
        return {"hyper_parameters": dict(CritiqueRewardModel(backbone=tiny_decoder_dir, **kw).hparams)}

    writer = checkpoint_of(critique_lm_coef=1.0)
    with pytest.raises(InputError, match=r"trained with model.critique_lm_coef=1.0, this model has 0.0: .*"
                                         r"\(its run's config.yaml, or --model.critique_lm_coef\)"):
        CritiqueRewardModel(backbone=tiny_decoder_dir).on_load_checkpoint(writer)
    # Another weight on the same head loads (a writer trained on as a joint model).
    CritiqueRewardModel(backbone=tiny_decoder_dir, critique_lm_coef=0.5).on_load_checkpoint(writer)
    adapters = checkpoint_of(lora=LoraSettings(r=8))
    with pytest.raises(InputError, match=r"model.lora=\{'r': 8, 'alpha': 32, 'target_modules': \['q_proj', "
                                         r"'k_proj', 'v_proj', 'o_proj'\]\}, this model has None"):
        CritiqueRewardModel(backbone=tiny_decoder_dir).on_load_checkpoint(adapters)
    with pytest.raises(InputError, match=r"this model has \{'r': 4, "):
        CritiqueRewardModel(backbone=tiny_decoder_dir, lora=LoraSettings(r=4)).on_load_checkpoint(adapters)
    model = CritiqueRewardModel(backbone=tiny_decoder_dir, lora=LoraSettings(r=8, dropout=0.0))
    model.on_load_checkpoint({**adapters, "nonfinite_batches_skipped": 2})  # dropout shapes no weight
    assert model._nonfinite_skipped == 2
