import json

import pytest

from lightning_critrm.data import PreferenceDataModule, sources
from lightning_critrm.layout import Batching, Layout
from lightning_critrm.records import ColumnMap
from tests.conftest import MTBENCH_PAIRS, arithmetic_rows, write_jsonl


def make_dm(tmp_path, source, backbone, **kw):
    kw.setdefault("val_fraction", 0.25)
    return PreferenceDataModule(source=str(source), backbone=backbone, cache_dir=str(tmp_path / "cache"),
                                **kw)


def test_setup_splits_by_prompt_and_batches_chosen_then_rejected(tmp_path, pairs_file, tiny_decoder_dir):
    dm = make_dm(tmp_path, pairs_file, tiny_decoder_dir, batching=Batching(batch_size=4))
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.train_dataset) == 18 and len(dm.val_dataset) == 6  # ceil(0.25 * 24) prompts held out
    assert not set(dm.train_dataset["prompt_key"]) & set(dm.val_dataset["prompt_key"])
    batch = next(iter(dm.train_dataloader()))
    assert batch.input_ids.shape[0] == 8 and batch.num_pairs == 4
    # The reward is read at the chat template's last token: ChatML ends a turn with "<|im_end|>\n".
    newline = dm.tokenizer("\n", add_special_tokens=False)["input_ids"]
    assert batch.input_ids.flatten()[batch.last_token_index].tolist() == newline * 8
    assert batch.input_ids.flatten()[batch.last_token_index - 1].tolist() == [dm.tokenizer.eos_token_id] * 8
    for k, pair in enumerate(batch.ids.tolist()):  # chosen rows first, then the rejected ones
        row = dm.train_dataset[pair]
        assert batch.input_ids[k][batch.attention_mask[k].bool()].tolist() == row["chosen_input_ids"]
        assert (batch.input_ids[4 + k][batch.attention_mask[4 + k].bool()].tolist()
                == row["rejected_input_ids"])
    text = dm.tokenizer.decode(batch.input_ids[0][batch.attention_mask[0].bool()])
    assert "Correctness: correct." in text
    text = dm.tokenizer.decode(batch.input_ids[4][batch.attention_mask[4].bool()])
    assert "Correctness: wrong." in text


def test_critiques_none_trains_on_the_same_pairs_without_critique_text(tmp_path, pairs_file,
                                                                       tiny_decoder_dir):
    dm = make_dm(tmp_path, pairs_file, tiny_decoder_dir, critiques="none")
    dm.setup("fit")
    ids = dm.train_dataset[0]["chosen_input_ids"]
    assert "Critique" not in dm.tokenizer.decode(ids)


def test_rerun_loads_the_tokenized_cache_without_reading_the_source(tmp_path, pairs_file, tiny_decoder_dir,
                                                                    monkeypatch):
    make_dm(tmp_path, pairs_file, tiny_decoder_dir).prepare_data()

    def boom(*a, **k):
        raise AssertionError("retokenized")

    monkeypatch.setattr(sources, "read_pairs", boom)
    dm = make_dm(tmp_path, pairs_file, tiny_decoder_dir, batching=Batching(batch_size=2), max_train_pairs=5)
    dm.setup("fit")  # other batch size and subsample: same token ids, same cache entry
    assert len(dm.train_dataset) == 5
    with pytest.raises(AssertionError, match="retokenized"):  # another max_length: a new entry
        make_dm(tmp_path, pairs_file, tiny_decoder_dir, max_length=64).setup("fit")


def test_sample_seed_draws_another_training_sample_and_keeps_the_held_out_pairs(tmp_path, tiny_decoder_dir):
    path = write_jsonl(tmp_path / "p.jsonl", arithmetic_rows(40))
    drawn = {}
    for sample_seed in (None, 0, 1):
        dm = make_dm(tmp_path, path, tiny_decoder_dir, max_train_pairs=8, max_val_pairs=6,
                     sample_seed=sample_seed)
        dm.setup("fit")
        order = [int(i) for batch in dm.train_dataloader() for i in batch.ids]
        drawn[sample_seed] = (dm.train_dataset["prompt_key"], dm.val_dataset["prompt_key"], order)
    assert drawn[None] == drawn[0]  # the default is data.seed (0)
    assert drawn[1][1] == drawn[0][1]  # the same held-out pairs
    assert set(drawn[1][0]) != set(drawn[0][0])  # another training sample
    # Nested sizes with one sample_seed: the 8 pairs are among the 16.
    dm = make_dm(tmp_path, path, tiny_decoder_dir, max_train_pairs=16, sample_seed=1)
    dm.setup("fit")
    assert set(drawn[1][0]) < set(dm.train_dataset["prompt_key"])


@pytest.mark.parametrize("packing", [False, True])
def test_token_budget_batches_hold_as_many_pairs_as_fit(tmp_path, tiny_decoder_dir, packing):
    rows = arithmetic_rows(40)
    for k, row in enumerate(rows):  # lengths from ~30 to ~500 tokens
        row["chosen"] += " Because" * (k % 12)
    path = write_jsonl(tmp_path / "p.jsonl", rows)
    dm = make_dm(tmp_path, path, tiny_decoder_dir, batching=Batching(max_tokens_per_batch=1200),
                 layout=Layout(packing=packing),
                 critiques="none")
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    assert sorted(int(i) for b in batches for i in b.ids) == list(range(len(dm.train_dataset)))
    # Padded batches run exactly 2 x pairs x longest positions, the budget's count; packed ones
    # hold at most the budget in real tokens. Only a pair over the budget by itself exceeds it.
    over = [b.num_pairs for b in batches if (b.num_tokens if packing else b.num_positions) > 1200]
    assert set(over) <= {1}
    assert len({b.num_pairs for b in batches}) > 2  # many short pairs, few long ones
    assert len(dm.train_dataloader()) == len(batches)
    with pytest.raises(ValueError, match="data.batching.max_tokens_per_batch must be >= 2"):
        Batching(max_tokens_per_batch=1)


def test_identical_pairs_after_truncation_are_dropped_and_counted(tmp_path, tiny_decoder_dir):
    rows = arithmetic_rows(8)
    # Same start, difference only far into the completion: cut away at max_length=32.
    rows.append({"prompt": "Q", "chosen": "x " * 100 + "A", "rejected": "x " * 100 + "B",
                 "chosen_critique": "same", "rejected_critique": "same"})
    path = write_jsonl(tmp_path / "p.jsonl", rows)
    dm = make_dm(tmp_path, path, tiny_decoder_dir, critiques="columns", max_length=32)
    dm.setup("fit")
    stats = dm.stats["source"]
    assert stats.pairs_read == 9 and stats.pairs_dropped_identical == 1 and stats.pairs_kept == 8
    assert stats.identical_completions == []  # different texts: dropped only once truncated
    assert stats.pairs_truncated >= 1
    assert len(dm.train_dataset) + len(dm.val_dataset) == 8


def test_identical_completions_are_named_dropped_and_counted(tmp_path, tiny_decoder_dir, caplog):
    rows = arithmetic_rows(8)
    rows.insert(3, dict(rows[0], rejected=rows[0]["chosen"], rejected_critique="a different critique"))
    path = write_jsonl(tmp_path / "p.jsonl", rows)
    dm = make_dm(tmp_path, path, tiny_decoder_dir, critiques="columns")
    with caplog.at_level("INFO", logger="lightning_critrm"):
        dm.setup("fit")
    stats = dm.stats["source"]
    assert stats.identical_completions == [f"{path}: line 4"]
    assert (stats.pairs_read, stats.pairs_kept, stats.pairs_dropped_identical) == (9, 8, 0)
    assert len(dm.train_dataset) + len(dm.val_dataset) == 8
    assert "source: 9 pairs read, 0 truncated, 1 dropped (identical completions)" in caplog.text
    named = f"source: 1 pair(s) dropped: chosen and rejected are the same text:\n  {path}: line 4"
    assert named in caplog.text


def test_bad_row_error_names_the_file_and_line(tmp_path, tiny_decoder_dir):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(arithmetic_rows(1)[0]) + "\n" + json.dumps({"prompt": "Q",
                                                                           "chosen": "A"}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl: line 2: field 'rejected': missing"):
        make_dm(tmp_path, path, tiny_decoder_dir).setup("fit")


def test_separate_validation_source(tmp_path, pairs_file, tiny_decoder_dir):
    val = write_jsonl(tmp_path / "val.jsonl", arithmetic_rows(3))
    dm = make_dm(tmp_path, pairs_file, tiny_decoder_dir, val_source=str(val))
    dm.setup("fit")
    assert (len(dm.train_dataset), len(dm.val_dataset)) == (24, 3)


@pytest.mark.skipif(not MTBENCH_PAIRS.exists(), reason=f"shared data not found at {MTBENCH_PAIRS}")
def test_shared_mtbench_pairs_with_critiques_from_columns(tmp_path, tiny_decoder_dir):
    slice_file = tmp_path / "mtbench_slice.jsonl"
    with MTBENCH_PAIRS.open() as fh:
        slice_file.write_text("".join(next(fh) for _ in range(300)))
    dm = make_dm(tmp_path, slice_file, tiny_decoder_dir, val_fraction=0.2, max_length=256)
    dm.setup("fit")
    train_prompts = set(dm.train_dataset["prompt_key"])
    assert train_prompts and not train_prompts & set(dm.val_dataset["prompt_key"])
    assert max(len(r["chosen_input_ids"]) for r in dm.train_dataset) <= 256
    # With this tiny tokenizer every pair is over 256 tokens: cut, with the template's end of turn last.
    assert all(r["truncated"] for r in dm.train_dataset)
    assert all(dm.tokenizer.decode(r["chosen_input_ids"]).endswith("<|im_end|>\n") for r in dm.train_dataset)
    # Where they fit, each completion is followed by its own critique column, inside the turn.
    head = tmp_path / "mtbench_head.jsonl"
    head.write_text("".join(slice_file.read_text().splitlines(keepends=True)[:6]))
    long = make_dm(tmp_path, head, tiny_decoder_dir, val_fraction=0.0, max_length=8192)
    long.setup("fit")
    raw = [json.loads(line) for line in head.read_text().splitlines()]
    for row in long.train_dataset:
        assert not row["truncated"]
        text = long.tokenizer.decode(row["chosen_input_ids"], clean_up_tokenization_spaces=False)
        source = next(r for r in raw if r["chosen"].strip() in text)
        critique = source["chosen_critique"].strip()
        assert f"{source['chosen'].strip()[-40:]}\n\n[Critique of the response]\n{critique[:40]}" in text
        assert text.endswith(f"{critique[-40:]}\n[End of critique]<|im_end|>\n")

    # One epoch on the slice, GPT-4 pairs as read (critiques cut at this length): the pairs must
    # be learnable (a swapped side would leave the loss at chance, ln 2 = 0.693).
    import lightning as L

    from lightning_critrm.model import CritiqueRewardModel

    model = CritiqueRewardModel(backbone=tiny_decoder_dir, lr=1e-3)
    trainer = L.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, limit_val_batches=0, num_sanity_val_steps=0)
    L.seed_everything(0)
    trainer.fit(model, dm)
    assert trainer.global_step == 30  # 240 training pairs in batches of 8
    assert float(trainer.callback_metrics["train/loss_epoch"]) < 0.55
    assert float(trainer.callback_metrics["train/acc_epoch"]) > 0.75


@pytest.mark.parametrize("stop_at, num_workers", [(3, 0), (5, 0), (7, 0), (7, 2)],
                         ids=["epoch0", "epoch-end", "epoch1", "epoch1-workers"])
def test_mid_epoch_resume_continues_with_the_next_unseen_batch(tmp_path, pairs_file, tiny_decoder_dir,
                                                               stop_at, num_workers):
    import lightning as L
    from lightning.pytorch.callbacks import Callback, ModelCheckpoint

    from lightning_critrm.model import CritiqueRewardModel

    class Record(Callback):
        def __init__(self):
            self.seen = []

        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            # Which pairs, and every token of them: a replayed or reordered batch cannot match.
            self.seen.append((batch.ids.tolist(), batch.input_ids.tolist()))

    def run(max_steps, ckpt_path=None):
        rec = Record()
        ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True, every_n_train_steps=1, save_top_k=0)
        trainer = L.Trainer(accelerator="cpu", max_steps=max_steps, logger=False, callbacks=[rec, ckpt],
                            enable_progress_bar=False, limit_val_batches=0, num_sanity_val_steps=0)
        # 18 train pairs in batches of 4: 5 batches an epoch, so step 3 is mid-epoch 0 and step 7
        # mid-epoch 1. An explicit ColumnMap too: the checkpoint must still load with weights_only=True.
        dm = make_dm(tmp_path, pairs_file, tiny_decoder_dir,
                     batching=Batching(batch_size=4, num_workers=num_workers),
                     columns=ColumnMap())
        trainer.fit(CritiqueRewardModel(backbone=tiny_decoder_dir), dm, ckpt_path=ckpt_path)
        return rec.seen

    uninterrupted = run(10)
    assert len({tuple(ids) for ids, _ in uninterrupted[:5]}) == 5  # an epoch holds 5 different batches
    assert uninterrupted[:5] != uninterrupted[5:]  # and the next epoch another order
    (tmp_path / "ckpt" / "last.ckpt").unlink()
    first = run(stop_at)
    second = run(10, ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"))
    assert len(first) == stop_at and len(second) == 10 - stop_at
    assert first + second == uninterrupted


def test_require_cached_fails_fast_naming_the_critique_command(tmp_path, pairs_file, tiny_decoder_dir):
    from lightning_critrm.critique import CachePolicy, CriticConfig

    dm = make_dm(tmp_path, pairs_file, tiny_decoder_dir, critiques="generate",
                 critic=CriticConfig(model=tiny_decoder_dir, cache=CachePolicy(require_cached=True)))
    with pytest.raises(RuntimeError, match=r"48 critiques are not in .*python -m lightning_critrm critique"):
        dm.prepare_data()
    with pytest.raises(RuntimeError, match="have no generated critique"):
        dm.setup("fit")  # a rank that skipped prepare_data still refuses to train without critiques


def test_generated_critiques_are_asked_for_the_pairs_the_run_reads_only(tmp_path, tiny_decoder_dir):
    from lightning_critrm.critique import CriticConfig, Sampling

    path = write_jsonl(tmp_path / "p.jsonl", arithmetic_rows(40))
    critic = CriticConfig(model=tiny_decoder_dir, sampling=Sampling(max_new_tokens=4))
    dm = make_dm(tmp_path, path, tiny_decoder_dir, critiques="generate", critic=critic,
                 max_train_pairs=8, max_val_pairs=6, sample_seed=1)
    summary = dm.generate_critiques(progress=False)
    assert (summary.requested, summary.generated) == (2 * (8 + 6), 2 * (8 + 6))  # not 2 x 40
    dm.setup("fit")
    # The same pairs as a run that reads its critiques from columns: the split does not depend
    # on the critic.
    columns = make_dm(tmp_path, path, tiny_decoder_dir, max_train_pairs=8, max_val_pairs=6, sample_seed=1)
    columns.setup("fit")
    for part in ("train_dataset", "val_dataset"):
        generated, read = getattr(dm, part), getattr(columns, part)
        assert (generated["chosen"], generated["rejected"]) == (read["chosen"], read["rejected"])
    assert dm.train_dataset[0]["chosen_critique"] != "Correctness: correct."  # the critic's, not the column


def test_batching_sorts_shared_prompt_pairs_by_their_row_counting_the_prompt_once(tmp_path, pairs_file,
                                                                                  tiny_decoder_dir):
    from datasets import Dataset

    pairs = Dataset.from_dict({
        "chosen_input_ids": [[1, 2, 3, 2], [5, 2], [7, 8, 2]],
        "rejected_input_ids": [[1, 2, 9, 9, 2], [6, 2], [7, 8, 2]],
        "length": [5, 2, 3],
    })
    shared = make_dm(tmp_path, pairs_file, tiny_decoder_dir, layout=Layout(shared_prompt=True))
    # 4 + 5 - 2 (prompt [1 2]); nothing shared; identical sequences keep their last token apart: 3 + 3 - 2
    assert shared._lengths(pairs) == [7, 4, 4]
    assert make_dm(tmp_path, pairs_file, tiny_decoder_dir)._lengths(pairs) == [5, 2, 3]


def test_packed_rows_hold_the_whole_batch_only_where_the_model_attends_one_sequence_at_a_time(tmp_path,
        tiny_decoder_dir, pairs_file):
    dm = PreferenceDataModule(source=str(pairs_file), backbone=tiny_decoder_dir, max_length=96,
                              layout=Layout(packing=True), cache_dir=str(tmp_path))
    assert dm.batch_layout.row_tokens is None  # on its own: the whole batch in one row
    for per_sequence, expected in ((True, None), (False, 96), (None, None)):
        dm.connect(lambda: per_sequence)
        assert dm.batch_layout.row_tokens == expected and dm.collator().layout.row_tokens == expected
    given = PreferenceDataModule(source=str(pairs_file), backbone=tiny_decoder_dir,
                                 layout={"packing": True, "row_tokens": 64}, cache_dir=str(tmp_path))
    given.connect(lambda: False)
    assert given.batch_layout == Layout(packing=True, row_tokens=64)
