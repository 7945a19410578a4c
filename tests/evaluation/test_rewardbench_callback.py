import json
import re
import typing
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from lightning.pytorch.loggers import Logger

from lightning_critrm.cli import main
from lightning_critrm.data import PreferenceDataModule
from lightning_critrm.evaluation import RewardBenchCallback
from lightning_critrm.evaluation.rewardbench_callback import BENCHMARKS, BenchmarkName
from lightning_critrm.layout import Layout
from tests.conftest import REPO, SHARED, write_jsonl

RB_PARTIAL = SHARED / "data" / "rewardbench" / "rewardbench_filtered_partial.jsonl"


def test_the_benchmark_names_the_cli_accepts_are_the_benchmarks_there_are():
    # The Literal gives --help and the config check their choices; the dict builds the evaluations.
    assert list(typing.get_args(BenchmarkName)) == list(BENCHMARKS)


class LengthReward(L.LightningModule):
    """Reward = number of real tokens: longer completions win, equal lengths tie."""

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, batch):
        return (batch.last_token_index - batch.first_token_index + 1).float() + 0 * self.dummy

    def test_step(self, batch, batch_idx):
        pass


class Capture(Logger):
    name, version = "capture", 0

    def __init__(self):
        super().__init__()
        self.metrics = []

    def log_metrics(self, metrics, step=None):
        self.metrics.append((step, dict(metrics)))

    def log_hyperparams(self, params, *args, **kwargs):
        pass


def length_scored(tmp_path, pairs_file, backbone, **callback_args):
    """A RewardBenchCallback's test-stage evaluation of :class:`LengthReward`: the callback, what it
    logged under its benchmark's name, and its JSON record."""
    dm = PreferenceDataModule(source=str(pairs_file), backbone=backbone, critiques="none",
                              cache_dir=str(tmp_path / "cache"))
    logger = Capture()
    callback = RewardBenchCallback(**callback_args)
    trainer = L.Trainer(accelerator="cpu", logger=logger, callbacks=[callback], enable_progress_bar=False,
                        default_root_dir=str(tmp_path))
    trainer.test(LengthReward(), datamodule=dm, verbose=False)
    name = callback.eval.name
    logged = {k: v for _, m in logger.metrics for k, v in m.items() if k.startswith(name + "/")}
    return callback, logged, json.loads(next((tmp_path / name).glob("*.json")).read_text())


def benchmark_fit_config(tmp_path, pairs_file, backbone, **callback_args) -> Path:
    """A config file of 2 epochs (3 steps each) on the tiny backbone, critiques off, with one
    RewardBenchCallback of ``callback_args``; its run folder is ``tmp_path/run``."""
    config = {
        "trainer": {"accelerator": "cpu", "max_epochs": 2, "enable_progress_bar": False,
                    "log_every_n_steps": 1, "default_root_dir": str(tmp_path / "run"),
                    "callbacks": [{"class_path": "lightning_critrm.evaluation.RewardBenchCallback",
                                   "init_args": callback_args}]},
        "model": {"backbone": backbone},
        "data": {"source": str(pairs_file), "critiques": "none", "batching": {"batch_size": 6},
                 "val_fraction": 0.25, "cache_dir": str(tmp_path / "cache")},
    }
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(config))
    return cfg


def rb_rows():
    long, short = "a long and detailed answer", "short"
    return [
        {"id": 1, "subset": "hep-go", "prompt": "p1", "chosen": long, "rejected": short},  # right
        {"id": 2, "subset": "hep-go", "prompt": "p2", "chosen": long, "rejected": short},  # right
        {"id": 3, "subset": "hep-go", "prompt": "p3", "chosen": short, "rejected": long},  # wrong
        {"id": 4, "subset": "llmbar-natural", "prompt": "p4", "chosen": long, "rejected": short},  # right
        # tie: wrong
        {"id": 5, "subset": "llmbar-natural", "prompt": "p5", "chosen": "same", "rejected": "same"},
    ]


def test_stub_model_with_known_rewards_logs_exact_values(tmp_path, pairs_file, tiny_decoder_dir):
    rb = write_jsonl(tmp_path / "rb.jsonl", rb_rows())
    dm = PreferenceDataModule(source=str(pairs_file), backbone=tiny_decoder_dir, critiques="none",
                              cache_dir=str(tmp_path / "cache"), val_fraction=0.25)
    logger = Capture()
    callback = RewardBenchCallback(source=str(rb), batch_size=3)
    trainer = L.Trainer(accelerator="cpu", logger=logger, callbacks=[callback], enable_progress_bar=False,
                        default_root_dir=str(tmp_path))
    trainer.test(LengthReward(), datamodule=dm, verbose=False)
    logged = {k: v for _, m in logger.metrics for k, v in m.items() if k.startswith("rewardbench/")}
    assert logged["rewardbench/hep-go"] == pytest.approx(2 / 3)
    assert logged["rewardbench/llmbar-natural"] == pytest.approx(0.5)
    assert logged["rewardbench/Reasoning"] == pytest.approx(2 / 3)
    assert logged["rewardbench/Chat Hard"] == pytest.approx(0.5)
    assert logged["rewardbench/overall"] == pytest.approx((2 / 3 + 0.5) / 2)
    assert "rewardbench/Chat" not in logged and "rewardbench/Safety" not in logged
    record = json.loads(next((tmp_path / "rewardbench").glob("*.json")).read_text())
    assert record["partial"] and len(record["rows"]) == 5
    assert record["sections"]["Chat Hard"]["subsets_present"] == 1
    tie = next(r for r in record["rows"] if r["id"] == "5")
    assert tie["reward_chosen"] == tie["reward_rejected"]


def test_a_row_whose_critique_failed_counts_as_wrong_and_is_shown(tmp_path, pairs_file, tiny_decoder_dir):
    # Rows 1, 2 and 4 are right by length. Row 2's critique fails: without it the row cannot be
    # scored as training formats inputs, so it counts as wrong rather than vanishing (which
    # would have left hep-go at 1/2 instead of the 1/3 every row gives).
    from lightning_critrm.critique import CriticConfig
    from lightning_critrm.critique.backend import CriticBackend, Generation

    class FailsOnP2(CriticBackend):
        def generate(self, requests):
            return [Generation(None, "empty output") if "p2" in m[0]["content"] else Generation("fine", None,
                                                                                                3, 1)
                    for m in requests]

    rb = write_jsonl(tmp_path / "rb.jsonl", rb_rows())
    dm = PreferenceDataModule(source=str(pairs_file), backbone=tiny_decoder_dir, critiques="generate",
                              critic=CriticConfig(model=tiny_decoder_dir), cache_dir=str(tmp_path / "cache"))
    dm.critique_store.backend_factory = FailsOnP2
    logger = Capture()
    callback = RewardBenchCallback(source=str(rb), batch_size=3)
    trainer = L.Trainer(accelerator="cpu", logger=logger, callbacks=[callback], enable_progress_bar=False,
                        default_root_dir=str(tmp_path))
    trainer.test(LengthReward(), datamodule=dm, verbose=False)
    logged = {k: v for _, m in logger.metrics for k, v in m.items() if k.startswith("rewardbench/")}
    assert logged["rewardbench/hep-go"] == pytest.approx(1 / 3)
    assert logged["rewardbench/rows_without_critique"] == 1.0
    record = json.loads(next((tmp_path / "rewardbench").glob("*.json")).read_text())
    assert record["without_critique_counted_wrong"] == ["2"] and len(record["rows"]) == 5
    row2 = next(r for r in record["rows"] if r["id"] == "2")
    assert row2["reward_chosen"] is None and row2["reward_rejected"] is None
    table = callback.eval.table(callback.eval.scores(callback.eval.row_rewards(
        {i: v for i, v in enumerate([7.0, 1.0, 1.0, 7.0, 7.0, 1.0, 1.0, 1.0])})))
    assert "  hep-go                         33.3      3  (1 without critique, counted wrong)" in table
    assert table.endswith("1 row(s) had no critique (its generation failed) and count as wrong")


def test_length_sorted_batches_give_the_same_rewards_row_by_row(tmp_path, pairs_file, tiny_decoder_dir):
    from lightning_critrm.evaluation.rewardbench_eval import RewardBenchEval
    from lightning_critrm.model import CritiqueRewardModel
    from lightning_critrm.model.reward_pass import score_batches

    rb = write_jsonl(tmp_path / "rb.jsonl", rb_rows())
    dm = PreferenceDataModule(source=str(pairs_file), backbone=tiny_decoder_dir, critiques="none",
                              cache_dir=str(tmp_path / "c"))
    model = CritiqueRewardModel(backbone=tiny_decoder_dir)
    model.configure_model()
    torch.manual_seed(0)
    torch.nn.init.normal_(model.reward_model.score.weight)  # a head that tells the rows apart
    rewards = {}
    for sort in (True, False):
        evaluation = RewardBenchEval(source=str(rb), batch_size=2, sort_by_length=sort)
        evaluation.prepare(dm.completion_encoder, generate=True)
        batches = evaluation.batches()
        assert [len(b) for b in batches.plan(0, 1)] == [2, 2, 2, 2, 2]
        rewards[sort] = score_batches(model, batches, torch.device("cpu"))
    assert sorted(rewards[True]) == list(range(10))
    assert torch.tensor(list(rewards[True].values())).std() > 0.01  # distinct rewards: the order matters
    order = sorted(rewards[True])
    torch.testing.assert_close(torch.tensor([rewards[True][i] for i in order]),
                               torch.tensor([rewards[False][i] for i in order]), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("version", [1, 2])
def test_shared_prompt_scoring_gives_the_plain_rewards_with_each_prompt_once(tmp_path, pairs_file,
                                                                             tiny_decoder_dir, version):
    from lightning_critrm.evaluation.rewardbench2_eval import RewardBench2Eval
    from lightning_critrm.evaluation.rewardbench_eval import RewardBenchEval
    from lightning_critrm.model import CritiqueRewardModel
    from lightning_critrm.model.reward_pass import score_batches

    if version == 1:
        rows = [{**r, "prompt": f"question {r['id']}: " + "explain it in many words " * 4} for r in rb_rows()]
        source, evaluation_class = str(write_jsonl(tmp_path / "rb.jsonl", rows)), RewardBenchEval
    else:  # prompts with 4 completions, and Ties prompts with more
        source = str(REPO / "tests" / "fixtures" / "rewardbench2_rows.jsonl")
        evaluation_class = RewardBench2Eval
    model = CritiqueRewardModel(backbone=tiny_decoder_dir)
    model.configure_model()
    rewards, positions = {}, {}
    for shared in (False, True):
        dm = PreferenceDataModule(source=str(pairs_file), backbone=tiny_decoder_dir, critiques="none",
                                  layout=Layout(shared_prompt=shared), cache_dir=str(tmp_path / "c"))
        evaluation = evaluation_class(source=source, batch_size=4)
        evaluation.prepare(dm.completion_encoder, generate=True)
        batches = evaluation.batches()
        if shared:  # a prompt's completions travel together, laid out with the prompt once
            group_of = {k: g for g, members in enumerate(batches.groups) for k in members}
            for batch in batches.plan(0, 1):
                assert (sorted(batch)
                        == sorted(k for g in {group_of[i] for i in batch} for k in batches.groups[g]))
            assert all(b.block_ids is not None for b in batches)
        positions[shared] = sum(b.num_positions for b in batches)
        rewards[shared] = score_batches(model, batches, torch.device("cpu"))
    assert sorted(rewards[True]) == sorted(rewards[False]) == list(range(len(evaluation.sequences)))
    assert positions[True] < positions[False]
    order = sorted(rewards[False])
    torch.testing.assert_close(torch.tensor([rewards[True][i] for i in order]),
                               torch.tensor([rewards[False][i] for i in order]), atol=1e-5, rtol=1e-5)


def test_fit_logs_rewardbench_each_epoch_with_a_json_per_evaluation(tmp_path, pairs_file, tiny_decoder_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    rb = write_jsonl(tmp_path / "rb.jsonl", rb_rows())
    config = {
        "trainer": {"accelerator": "cpu", "max_epochs": 2, "enable_progress_bar": False,
                    "log_every_n_steps": 1,
                    "default_root_dir": str(tmp_path / "run"),
                    "callbacks": [{"class_path": "lightning_critrm.evaluation.RewardBenchCallback",
                                   "init_args": {"source": str(rb), "batch_size": 4}}]},
        "model": {"backbone": tiny_decoder_dir},
        "data": {"source": str(pairs_file), "critiques": "none", "batching": {"batch_size": 6},
                 "val_fraction": 0.25,
                 "cache_dir": str(tmp_path / "cache")},
    }
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(config))
    cli = main(["fit", "--config", str(cfg)])
    run = Path(cli.trainer.log_dir)
    assert len(list((run / "rewardbench").glob("*.json"))) == 2
    events = EventAccumulator(str(run))
    events.Reload()
    steps = [e.step for e in events.Scalars("rewardbench/overall")]
    assert steps == [3, 6]  # 18 train pairs in batches of 6: end of epoch 1 and 2
    assert "rewardbench/hep-go" in events.Tags()["scalars"]
    assert "rewardbench/examples/text_summary" in events.Tags()["tensors"]


@pytest.mark.skipif(not RB_PARTIAL.exists(), reason=f"shared RewardBench rows not found at {RB_PARTIAL}")
def test_rewardbench_subcommand_on_the_shared_rows_marks_sections_partial(tmp_path, pairs_file,
                                                                          tiny_decoder_dir, capsys):
    config = {
        "trainer": {"accelerator": "cpu", "max_steps": 1, "enable_progress_bar": False,
                    "default_root_dir": str(tmp_path / "run")},
        "model": {"backbone": tiny_decoder_dir},
        "data": {"source": str(pairs_file), "critiques": "none", "max_length": 256,
                 "batching": {"batch_size": 4},
                 "val_fraction": 0.25, "cache_dir": str(tmp_path / "cache")},
    }
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(config))
    main(["fit", "--config", str(cfg)])
    capsys.readouterr()
    main(["rewardbench", "--config", str(cfg), "--ckpt_path", "last", "--source", str(RB_PARTIAL),
          "--batch_size", "32"])
    out = capsys.readouterr().out
    record = json.loads(next((tmp_path / "run").rglob("rewardbench/*.json")).read_text())
    assert len(record["rows"]) == 1403 and len({r["id"] for r in record["rows"]}) == 1403
    # The printed table holds exactly the accuracies the per-row rewards give.
    chat_hard = 100 * record["sections"]["Chat Hard"]["score"]
    assert re.search(rf"Chat Hard\s+{chat_hard:.1f}\s+419  PARTIAL: 5/6 subsets, 419/456 rows", out), out
    hep_go = [r for r in record["rows"] if r["subset"] == "hep-go"]
    accuracy = 100 * sum(r["reward_chosen"] > r["reward_rejected"] for r in hep_go) / len(hep_go)
    assert re.search(rf"hep-go\s+{accuracy:.1f}\s+164", out), out
    assert "Reasoning" in out and "PARTIAL: 6/7 subsets, 984/1431 rows" in out


def test_missing_critiques_fail_fast_under_require_cached(tmp_path, pairs_file, tiny_decoder_dir):
    from lightning_critrm.critique import CachePolicy, CriticConfig, Sampling
    from lightning_critrm.evaluation.rewardbench_eval import RewardBenchEval

    rb = write_jsonl(tmp_path / "rb.jsonl", rb_rows())
    dm = PreferenceDataModule(source=str(pairs_file), backbone=tiny_decoder_dir, critiques="generate",
                              cache_dir=str(tmp_path / "cache"),
                              critic=CriticConfig(model=tiny_decoder_dir, backend="transformers",
                                                  sampling=Sampling(max_new_tokens=4),
                                                  cache=CachePolicy(require_cached=True)))
    with pytest.raises(RuntimeError, match=r"9 of 9 critiques are not in .*lightning_critrm critique"):
        RewardBenchEval(source=str(rb)).prepare(dm.completion_encoder, generate=True)
    # what the `critique` subcommand runs
    RewardBenchCallback(source=str(rb)).fill_critiques(dm.completion_encoder)
    evaluation = RewardBenchEval(source=str(rb))
    evaluation.prepare(dm.completion_encoder, generate=True)
    assert len(evaluation.rows) == 5 and all(c and r for c, r in evaluation.critiques)
    assert len(evaluation.sequences) == 10


def test_fit_with_the_v2_callback_logs_rewardbench2_each_epoch_and_the_subcommand_prints_v2(
    tmp_path, pairs_file, tiny_decoder_dir, capsys
):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from tests.test_cli import tiny_config

    fixture = REPO / "tests" / "fixtures" / "rewardbench2_rows.jsonl"
    cfg = tiny_config(tmp_path, tiny_decoder_dir, pairs_file)
    config = yaml.safe_load(cfg.read_text())
    config["trainer"].update(max_steps=-1, max_epochs=2, val_check_interval=None, check_val_every_n_epoch=1)
    config["trainer"]["callbacks"] = [{"class_path": "lightning_critrm.evaluation.RewardBenchCallback",
                                       "init_args": {"source": str(fixture), "benchmark": "rewardbench2",
                                                     "batch_size": 5}}]
    config["data"]["critiques"] = "none"
    cfg.write_text(yaml.safe_dump(config))
    cli = main(["fit", "--config", str(cfg)])
    events = EventAccumulator(cli.trainer.log_dir).Reload()
    steps = sorted({e.step for e in events.Scalars("rewardbench2/overall")})
    assert len(steps) == 2 and steps[-1] == cli.trainer.global_step  # the end of each of the 2 epochs
    for subset in ("Factuality", "Precise IF", "Math", "Safety", "Focus", "Ties"):
        assert len(events.Scalars(f"rewardbench2/{subset}")) == 2, subset
    records = sorted(Path(cli.trainer.log_dir).glob("rewardbench2/*.json"))
    assert len(records) == 2
    record = json.loads(records[-1].read_text())
    assert [len(r["scores"]) for r in record["rows"]] == [4, 4, 4, 4, 4, 3, 5]  # every completion scored once
    # The record's scores give the logged numbers through the official rules.
    from lightning_critrm.evaluation.rewardbench2_scoring import rewardbench2_scores

    again = rewardbench2_scores((r["subset"], r["id"], r["scores"], r["num_correct"]) for r in record["rows"])
    assert again.overall == pytest.approx(events.Scalars("rewardbench2/overall")[-1].value, abs=1e-6)

    capsys.readouterr()
    main(["rewardbench", "--config", str(cfg), "--ckpt_path", "last", "--source", str(fixture), "--benchmark",
          "rewardbench2"])
    out = capsys.readouterr().out
    assert re.search(r"^Ties\s+\d+\.\d\s+2  PARTIAL: 2/102 prompts$", out, re.M), out
    assert re.search(r"^overall\s+\d+\.\d  PARTIAL: mean of the subsets scored above$", out, re.M), out


def test_v2_critiques_every_completion_with_the_training_critic_and_a_failed_one_counts_zero(
    tmp_path, pairs_file, tiny_decoder_dir
):
    from lightning_critrm.critique import CriticConfig
    from lightning_critrm.critique.backend import CriticBackend, Generation

    asked = []

    class Critic(CriticBackend):  # fails on the Math prompt's third completion
        def generate(self, requests):
            asked.extend(requests)
            return [Generation(None,
                    "empty output") if "17 * 3 = 54." in m[0]["content"] else Generation("fine", None, 3, 1)
                    for m in requests]

    fixture = REPO / "tests" / "fixtures" / "rewardbench2_rows.jsonl"
    dm = PreferenceDataModule(source=str(pairs_file), backbone=tiny_decoder_dir, critiques="generate",
                              critic=CriticConfig(model=tiny_decoder_dir), cache_dir=str(tmp_path / "cache"))
    dm.critique_store.backend_factory = Critic
    logger = Capture()
    callback = RewardBenchCallback(source=str(fixture), benchmark="rewardbench2", batch_size=4)
    trainer = L.Trainer(accelerator="cpu", logger=logger, callbacks=[callback], enable_progress_bar=False,
                        default_root_dir=str(tmp_path))
    trainer.test(LengthReward(), datamodule=dm, verbose=False)
    # 48 for the data module's own pairs (test() prepares them), then 4 + 4 + 4 + 4 + 4 + 3 + 5 completions,
    # once each
    assert len(asked) == 48 + 28
    logged = {k: v for _, m in logger.metrics for k, v in m.items() if k.startswith("rewardbench2/")}
    assert logged["rewardbench2/Math"] == 0.0 and logged["rewardbench2/rows_without_critique"] == 1.0
    record = json.loads(next((tmp_path / "rewardbench2").glob("*.json")).read_text())
    assert record["without_critique_counted_zero"] == ["3"]
    assert next(r for r in record["rows"] if r["id"] == "3")["scores"] == [None] * 4
