import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lightning_critrm.evaluation.validation_examples import ValidationExamples, examples_markdown
from lightning_critrm.layout import Layout
from tests.model.test_module import built, datamodule


def test_examples_markdown_by_hand(chat_tokenizer):
    ids = chat_tokenizer("<|im_start|>user\nQ<|im_end|>\n", add_special_tokens=False)["input_ids"]
    other = chat_tokenizer("A", add_special_tokens=False)["input_ids"]
    features = [{"chosen_input_ids": ids, "rejected_input_ids": other, "index": 0},
                {"chosen_input_ids": other, "rejected_input_ids": ids, "index": 1}]
    assert examples_markdown(features, [0.5, -1.0], [-0.25, 2.0], chat_tokenizer) == (
        "**pair 0**: chosen +0.500, rejected -0.250, chosen ahead\n\n"
        "*chosen*\n\n    <|im_start|>user\n    Q<|im_end|>\n\n*rejected*\n\n    A"
        "\n\n---\n\n"
        "**pair 1**: chosen -1.000, rejected +2.000, rejected ahead (wrong)\n\n"
        "*chosen*\n\n    A\n\n*rejected*\n\n    <|im_start|>user\n    Q<|im_end|>"
    )


@pytest.mark.parametrize("shared_prompt", [False, True])
def test_each_validation_writes_the_first_pairs_as_read_with_their_rewards(
    tmp_path, pairs_file, tiny_decoder_dir, shared_prompt
):
    L.seed_everything(0)
    dm = datamodule(tmp_path, pairs_file, tiny_decoder_dir, layout=Layout(shared_prompt=shared_prompt))
    model = built(tiny_decoder_dir, lr=1e-3)
    run = L.Trainer(accelerator="cpu", max_steps=4, val_check_interval=2, num_sanity_val_steps=0,
                    logger=TensorBoardLogger(tmp_path / "tb", name="", version=""),
                    enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                    callbacks=[ValidationExamples(2)])
    run.fit(model, dm)
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"tensors": 0}).Reload()
    texts = events.Tensors("val/examples/text_summary")
    assert [t.step for t in texts] == [2, 4]
    shown = texts[-1].tensor_proto.string_val[0].decode()
    # The final model's rewards of validation pairs 0 and 1, scored here again.
    pairs = [dm.val_dataset[i] for i in range(2)]
    batch = dm.collator()([{**p, "index": i} for i, p in enumerate(pairs)])
    model.eval()
    with torch.no_grad():
        chosen, rejected = batch.split_pairs(model(batch))
    features = [{"chosen_input_ids": p["chosen_input_ids"], "rejected_input_ids": p["rejected_input_ids"],
                 "index": i} for i, p in enumerate(pairs)]
    assert shown == examples_markdown(features, chosen.tolist(), rejected.tolist(), dm.tokenizer)
    assert "Critique" in shown and shown.count("**pair ") == 2
