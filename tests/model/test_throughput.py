import lightning as L
import pytest

from lightning_critrm.layout import Layout
from lightning_critrm.model.throughput import TrainingThroughput, model_flops_utilization
from tests.model.test_module import built, datamodule, trainer


@pytest.mark.parametrize("packing, shared_prompt",
                         [(False, False), (True, False), (False, True), (True, True)])
def test_each_epoch_logs_real_and_processed_tokens_per_second_and_the_padded_share(
    tmp_path, pairs_file, tiny_decoder_dir, packing, shared_prompt
):
    L.seed_everything(0)
    dm = datamodule(tmp_path, pairs_file, tiny_decoder_dir,
                    layout=Layout(packing=packing, shared_prompt=shared_prompt))
    model = built(tiny_decoder_dir, lr=1e-3)
    run = trainer(-1, max_epochs=1, callbacks=[TrainingThroughput()])
    run.fit(model, dm)
    batches = list(dm.train_dataloader())  # epoch 0's batches again (the order depends on the seed alone)
    assert all((b.block_ids is not None) == shared_prompt for b in batches)
    real, processed = sum(b.num_tokens for b in batches), sum(b.num_positions for b in batches)
    padding = sum(b.num_padding for b in batches)
    metrics = run.callback_metrics
    # Shared prompts run fewer positions than the sequences hold; otherwise padding adds some.
    assert processed < real if shared_prompt else processed == real + padding
    assert (padding == 0) if packing else (padding > 0)  # packing: the whole batch in one row
    assert float(metrics["train/padded_share"]) == pytest.approx(padding / processed, rel=1e-4)
    ratio = float(metrics["train/processed_tokens_per_s"]) / float(metrics["train/real_tokens_per_s"])
    assert ratio == pytest.approx(processed / real, rel=1e-5)
    assert "train/tokens_per_s" in metrics and "train/mfu" not in metrics  # no peak FLOPs on a CPU


def test_model_flops_utilization_by_hand():
    # 135M parameters at 1,000 tokens/s: 6 x 1.35e8 x 1e3 = 8.1e11 FLOP/s of a 1e12 peak.
    assert model_flops_utilization(135_000_000, 1_000.0, 1e12) == pytest.approx(0.81)
