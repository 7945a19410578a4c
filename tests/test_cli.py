"""The command line end to end, on tiny backbones, plus every shipped config file."""

import glob
import json
import re
from pathlib import Path

import pytest
import torch
import yaml

from lightning_critrm.cli import main
from lightning_critrm.hardware import cpu_has_native_bf16
from lightning_critrm.model import CritiqueRewardModel
from tests.conftest import REPO

CONF_FILES = sorted(glob.glob(str(REPO / "conf" / "*.yaml")))


def tiny_config(tmp_path, backbone, source) -> Path:
    config = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu", "max_steps": 4, "val_check_interval": 2, "check_val_every_n_epoch": None,
            "log_every_n_steps": 1, "enable_progress_bar": False, "default_root_dir": str(tmp_path / "run"),
        },
        "model": {"backbone": backbone, "lr": 1e-3},
        "data": {"source": str(source), "batch_size": 4, "val_fraction": 0.25, "cache_dir": str(tmp_path / "cache")},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_fit_writes_config_events_and_checkpoint_then_resumes(tmp_path, pairs_file, tiny_decoder_dir, capsys):
    cfg = tiny_config(tmp_path, tiny_decoder_dir, pairs_file)
    cli = main(["fit", "--config", str(cfg)])
    assert cli.trainer.global_step == 4
    run = Path(cli.trainer.log_dir)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["model"]["backbone"] == tiny_decoder_dir and "backbone" not in saved["data"]  # linked
    assert list(run.glob("events.out.tfevents.*"))
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()
    out = capsys.readouterr().out
    assert "validation accuracy: 1.000 on 6 held-out pairs at step 4: the share of pairs" in out
    assert f"next: score it on RewardBench: python -m lightning_critrm rewardbench --config {cfg} --ckpt_path " in out
    assert (f"next: the same run without critiques: python -m lightning_critrm fit --config {cfg} --data.critiques none "
            f"--trainer.default_root_dir {tmp_path / 'run'}_none") in out

    # The critiques state the verdict: 4 steps suffice to tell every held-out pair apart.
    assert float(cli.trainer.callback_metrics["val/acc"]) == 1.0
    assert float(cli.trainer.callback_metrics["val/loss"]) < 0.5  # chance is ln 2 = 0.693

    resumed = main(["fit", "--config", str(cfg), "--ckpt_path", "last", "--trainer.max_steps", "6"])
    assert resumed.trainer.global_step == 6  # continued from 4, did not restart at 0

    capsys.readouterr()
    validated = main(["validate", "--config", str(cfg), "--ckpt_path", "last"]).trainer.callback_metrics
    assert re.search(r"^val/acc 1\.0000, val/loss \d\.\d{4}, val/margin_mean ", capsys.readouterr().out, re.M)  # ours
    tested = main(["test", "--config", str(cfg), "--ckpt_path", "last"]).trainer.callback_metrics
    assert float(validated["val/acc"]) == 1.0 and float(tested["test/acc"]) == 1.0
    assert float(validated["val/loss"]) == float(tested["test/loss"])  # no test_source: the same pairs


def test_help_documents_every_option(capsys):
    import inspect

    from lightning_critrm.data import PreferenceDataModule
    from lightning_critrm.model import CritiqueRewardModel

    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    text = capsys.readouterr().out
    for prefix, cls in (("model", CritiqueRewardModel), ("data", PreferenceDataModule)):
        doc = inspect.getdoc(cls.__init__)
        for name in list(inspect.signature(cls.__init__).parameters)[1:]:
            assert f"    {name}:" in doc, f"{cls.__name__}.__init__ docstring misses {name}"
            if (prefix, name) != ("data", "backbone"):  # linked from model.backbone, shown as a link
                assert f"--{prefix}.{name}" in text
    assert "model.backbone --> data.backbone" in text


def test_overrides_reach_the_objects_and_print_config_round_trips(tmp_path, pairs_file, tiny_decoder_dir, capsys):
    cfg = tiny_config(tmp_path, tiny_decoder_dir, pairs_file)
    args = ["fit", "--config", str(cfg), "--model.lr", "2e-05", "--data.critiques", "none"]
    with pytest.raises(SystemExit):
        main([*args, "--print_config"])
    printed = capsys.readouterr().out
    assert yaml.safe_load(printed)["model"]["lr"] == 2e-05
    (tmp_path / "printed.yaml").write_text(printed)
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(tmp_path / "printed.yaml"), "--print_config"])
    assert capsys.readouterr().out == printed

    cli = main(args[1:], run=False)
    assert cli.model.hparams.lr == 2e-05
    assert cli.datamodule.hparams.critiques == "none"
    assert cli.datamodule.hparams.backbone == tiny_decoder_dir  # linked, not set twice


GPU_CONFIGS = {"llama3_8b_critic70b.yaml", "llama3_8b_fsdp2.yaml"}


def built_strategy(path: str):
    """The config's trainer.strategy instantiated as written (no accelerator needed)."""
    from jsonargparse import ArgumentParser
    from lightning.pytorch.strategies import Strategy

    parser = ArgumentParser()
    parser.add_subclass_arguments(Strategy, "strategy")
    strategy = yaml.safe_load(Path(path).read_text())["trainer"]["strategy"]
    return parser.instantiate(parser.parse_object({"strategy": strategy})).strategy


@pytest.mark.parametrize("path", CONF_FILES, ids=lambda p: Path(p).name)
def test_every_shipped_config_parses_and_builds(path, tmp_path):
    from lightning.pytorch.strategies import FSDPStrategy, ModelParallelStrategy

    written = yaml.safe_load(Path(path).read_text())
    if "study" in written:  # a study's runs train from its `fit` section (its `study` section: tests/study)
        path = str(tmp_path / "fit.yaml")
        Path(path).write_text(yaml.safe_dump(written["fit"]))
        written = written["fit"]
    written = written["trainer"]
    common = ["--trainer.default_root_dir", str(tmp_path), "--trainer.logger", "false"]
    if Path(path).name in GPU_CONFIGS:
        # No GPU here: the strategy is built as written, the rest with a CPU trainer.
        strategy = built_strategy(path)
        if isinstance(strategy, FSDPStrategy):
            from transformers.models.llama.modeling_llama import LlamaDecoderLayer

            assert strategy.kwargs["auto_wrap_policy"]._module_classes == {LlamaDecoderLayer}  # per decoder layer
            assert strategy._activation_checkpointing_kwargs["auto_wrap_policy"]._module_classes == {LlamaDecoderLayer}
            assert strategy._state_dict_type == "sharded"
        else:
            assert isinstance(strategy, ModelParallelStrategy)
        assert written["precision"] == "bf16-mixed"  # the head's fp32 rule is tested under bf16 weights
        common += ["--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.strategy", "auto",
                   "--trainer.precision", "32-true"]
    cli = main(["--config", path, *common], run=False)
    assert isinstance(cli.model, CritiqueRewardModel) and cli.model.backbone is None  # no weights in __init__
    assert cli.datamodule.hparams.backbone == cli.model.hparams.backbone
    if Path(path).name not in GPU_CONFIGS:  # built with its real strategy and precision
        precision = str(written.get("precision", "32-true"))
        if "bf16" in precision and not cpu_has_native_bf16():  # the CLI trains in fp32 there (test below)
            precision = "32-true"
        assert str(cli.trainer.precision) == precision
        expected = written.get("strategy")
        if isinstance(expected, dict):
            assert type(cli.trainer.strategy).__name__ == expected["class_path"].rsplit(".", 1)[1]
            assert cli.trainer.num_devices == written["devices"]


def test_encoder_config_trains_minilm_from_its_package(tmp_path):
    cli = main([
        "fit", "--config", str(REPO / "conf" / "minilm_encoder.yaml"), "--trainer.max_steps", "2",
        "--trainer.val_check_interval", "2", "--data.max_val_pairs", "8",
        "--trainer.default_root_dir", str(tmp_path), "--trainer.enable_progress_bar", "false",
    ])
    assert cli.trainer.global_step == 2 and type(cli.model.backbone).__name__ == "BertModel"
    # The checker's critiques name the verdict; the pretrained encoder reads them within 2 steps.
    assert float(cli.trainer.callback_metrics["val/acc"]) == 1.0
    assert float(cli.trainer.callback_metrics["val/loss"]) < 0.6


def test_quickstart_config_runs_two_steps_with_overrides(tmp_path, capsys):
    # The quickstart as shipped, made small: 16 pairs whose 32 critiques SmolLM2 writes through
    # transformers (the vLLM engine's start is paid in tests/critique/test_vllm_backend.py).
    cli = main([
        "fit", "--config", str(REPO / "conf" / "quickstart.yaml"), "--trainer.max_steps", "2",
        "--trainer.val_check_interval", "2", "--data.source", "builtin:arithmetic:16", "--data.max_val_pairs", "4",
        "--data.critic.backend", "transformers", "--data.critic.sampling.max_new_tokens", "16", "--model.lr", "1e-5",
        "--trainer.default_root_dir", str(tmp_path), "--trainer.enable_progress_bar", "false",
        "--data.cache_dir", str(tmp_path / "cache"),
    ])
    assert cli.trainer.global_step == 2 and cli.model.hparams.lr == 1e-5
    out = capsys.readouterr().out
    assert "validation accuracy:" in out
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()
    text = cli.datamodule.tokenizer.decode(cli.datamodule.train_dataset[0]["chosen_input_ids"])
    assert "[Critique of the response]" in text  # a critique SmolLM2 wrote is part of the input

    # The exported quickstart model (SmolLM2, which pads with its EOS) scored by plain transformers
    # gives the trainer's rewards, on the validation pairs with their critiques, padded.
    from tests.model.test_export import exported_rewards, trainer_rewards

    out = tmp_path / "exported"
    main(["export", "--config", str(REPO / "conf" / "quickstart.yaml"), "--ckpt_path", "last", "--out", str(out),
          "--trainer.default_root_dir", str(tmp_path), "--data.source", "builtin:arithmetic:16",
          "--data.critic.backend", "transformers", "--data.critic.sampling.max_new_tokens", "16",
          "--data.cache_dir", str(tmp_path / "cache")])
    val = cli.datamodule.val_dataset
    sequences = [val[i][k] for i in range(len(val)) for k in ("chosen_input_ids", "rejected_input_ids")]
    assert len({len(s) for s in sequences}) > 1
    torch.testing.assert_close(exported_rewards(out, sequences), trainer_rewards(cli, sequences), atol=1e-4, rtol=1e-4)


def test_critique_fills_data_and_rewardbench_critiques_that_fit_then_requires(tmp_path, pairs_file, tiny_decoder_dir, capsys):
    # The documented GPU workflow: `critique` first (whatever require_cached says), then a `fit`
    # that refuses to generate, then `rewardbench`, which replaces the configured callback.
    from tests.conftest import write_jsonl
    from tests.evaluation.test_rewardbench_callback import rb_rows

    rb = write_jsonl(tmp_path / "rb.jsonl", rb_rows())
    cfg = tiny_config(tmp_path, tiny_decoder_dir, pairs_file)
    config = yaml.safe_load(cfg.read_text())
    config["trainer"].update(max_steps=2, val_check_interval=2)
    config["trainer"]["callbacks"] = [{"class_path": "lightning_critrm.evaluation.RewardBenchCallback",
                                       "init_args": {"source": str(rb), "every_n_steps": 2}}]
    config["data"].update(critiques="generate", critic={"backend": "transformers", "model": tiny_decoder_dir,
                                                        "sampling": {"max_new_tokens": 4},
                                                        "cache": {"require_cached": True}})
    cfg.write_text(yaml.safe_dump(config))

    with pytest.raises(RuntimeError, match="python -m lightning_critrm critique"):
        main(["fit", "--config", str(cfg)])
    main(["critique", "--config", str(cfg)])
    out = capsys.readouterr().out
    assert "data: critiques: 48 requested, 0 already cached, 48 generated, 0 failed" in out
    assert f"rewardbench {rb}: critiques: 9 requested, 0 already cached, 9 generated, 0 failed" in out  # 5 rows; one ties "same" with itself

    main(["fit", "--config", str(cfg)])  # every critique is cached now, RewardBench's included
    run = tmp_path / "run"
    assert len(list(run.rglob("rewardbench/*.json"))) == 1
    capsys.readouterr()
    main(["rewardbench", "--config", str(cfg), "--ckpt_path", "last", "--source", str(rb)])
    assert_table_matches_record(capsys.readouterr().out, newest_record(run))
    records = sorted(run.rglob("rewardbench/*.json"))
    assert len(records) == 2  # the configured callback did not score the rows a second time
    assert all(not json.loads(p.read_text())["without_critique_counted_wrong"] for p in records)


def newest_record(run: Path) -> dict:
    return json.loads(max(run.rglob("rewardbench/*.json"), key=lambda p: p.stat().st_mtime_ns).read_text())


def assert_table_matches_record(out: str, record: dict) -> None:
    """The printed table shows each subset's accuracy as the record's per-row rewards give it."""
    by_subset: dict[str, list[bool]] = {}
    for row in record["rows"]:
        by_subset.setdefault(row["subset"], []).append(row["reward_chosen"] > row["reward_rejected"])
    assert by_subset
    for subset, wins in by_subset.items():
        accuracy = 100 * sum(wins) / len(wins)
        assert re.search(rf"^  {re.escape(subset)}\s+{accuracy:.1f}\s+{len(wins)}$", out, re.M), (subset, out)
    assert re.search(r"^overall\s+\d+\.\d", out, re.M), out


def test_rewardbench_reads_only_the_checkpoint_its_config_and_the_rows(tmp_path, pairs_file, tiny_decoder_dir, capsys, caplog):
    from tests.conftest import write_jsonl
    from tests.evaluation.test_rewardbench_callback import rb_rows

    cfg = tiny_config(tmp_path, tiny_decoder_dir, pairs_file)
    config = yaml.safe_load(cfg.read_text())
    config["data"].update(critiques="generate", critic={"backend": "transformers", "model": tiny_decoder_dir,
                                                        "sampling": {"max_new_tokens": 4}})
    cfg.write_text(yaml.safe_dump(config))
    main(["fit", "--config", str(cfg), "--trainer.max_steps", "2"])
    rb = write_jsonl(tmp_path / "rb.jsonl", rb_rows())
    capsys.readouterr()
    # A fresh machine: the training data is gone, and nothing may need it.
    main(["rewardbench", "--config", str(cfg), "--ckpt_path", "last", "--source", str(rb),
          "--data.source", str(tmp_path / "does" / "not" / "exist.jsonl")])
    out = capsys.readouterr().out
    assert f"rewardbench {rb}: critiques: 9 requested, 0 already cached, 9 generated" in caplog.text  # training critic
    record = newest_record(tmp_path / "run")
    assert len(record["rows"]) == 5 and not record["without_critique_counted_wrong"]
    assert_table_matches_record(out, record)


def multi_process_config(tmp_path, backbone, source) -> Path:
    cfg = tiny_config(tmp_path, backbone, source)
    config = yaml.safe_load(cfg.read_text())
    config["trainer"].update(devices=2, strategy="ddp", max_steps=2, val_check_interval=2)
    config["data"].update(critiques="generate", critic={"backend": "transformers", "model": backbone,
                                                        "sampling": {"max_new_tokens": 4}})
    cfg.write_text(yaml.safe_dump(config))
    return cfg


def run_module(args: list[str]):
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_a_multi_process_fit_generates_critiques_before_its_processes_start(tmp_path, pairs_file, tiny_decoder_dir):
    cfg = multi_process_config(tmp_path, tiny_decoder_dir, pairs_file)
    proc = run_module(["lightning_critrm", "fit", "--config", str(cfg), "--show_logs"])  # one stream, in order
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    generated = out.index("critiques: 48 requested, 0 already cached, 48 generated")
    assert generated < out.index("Initializing distributed")  # before any process group exists


def test_torchrun_ranks_with_missing_critiques_stop_at_once_naming_the_command(tmp_path, pairs_file, tiny_decoder_dir):
    import socket
    import sqlite3

    cfg = multi_process_config(tmp_path, tiny_decoder_dir, pairs_file)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = run_module(["torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
                       "-m", "lightning_critrm", "fit", "--config", str(cfg)])
    assert proc.returncode != 0
    # Both ranks refuse (neither waits for the other at a barrier), and nothing was generated.
    assert proc.stderr.count("generate them first with: python -m lightning_critrm critique") >= 2, proc.stderr[-3000:]
    cache = tmp_path / "cache" / "critiques.sqlite"
    assert not cache.exists() or sqlite3.connect(cache).execute("SELECT COUNT(*) FROM critiques").fetchone()[0] == 0


@pytest.mark.parametrize("native_bf16, expected", [(False, "32-true"), (True, "bf16-mixed")])
def test_bf16_on_a_cpu_without_native_bf16_trains_in_fp32(tmp_path, pairs_file, tiny_decoder_dir, monkeypatch,
                                                         native_bf16, expected, capsys):
    import lightning_critrm.cli as cli_module

    monkeypatch.setattr(cli_module, "cpu_has_native_bf16", lambda: native_bf16)
    cfg = tiny_config(tmp_path, tiny_decoder_dir, pairs_file)
    cli = main(["--config", str(cfg), "--trainer.precision", "bf16-mixed"], run=False)
    assert str(cli.trainer.precision) == expected
    notice = "note: trainer.precision bf16-mixed -> 32-true: this CPU has no native bf16"
    assert (notice in capsys.readouterr().out) == (not native_bf16)


def test_packing_trains_the_same_model_on_fewer_positions(tmp_path, pairs_file, tiny_decoder_dir):
    cfg = tiny_config(tmp_path, tiny_decoder_dir, pairs_file)
    runs = {}
    for packing in (False, True):
        cli = main(["fit", "--config", str(cfg), "--data.packing", str(packing).lower(), "--data.packing_row_tokens", "256",
                    "--trainer.default_root_dir", str(tmp_path / f"packing_{packing}")])
        batch = next(iter(cli.datamodule.train_dataloader()))
        runs[packing] = (cli.trainer.callback_metrics, dict(cli.model.named_parameters()), batch)
    (plain, plain_params, padded), (packed_metrics, packed_params, packed) = runs[False], runs[True]
    assert packed.attention_mask is None and packed.input_ids.shape[0] < padded.input_ids.shape[0]  # rows shared
    assert packed.num_positions <= padded.num_positions
    assert float(packed_metrics["val/loss"]) == pytest.approx(float(plain["val/loss"]), abs=1e-4)
    for name, param in plain_params.items():
        torch.testing.assert_close(packed_params[name], param, atol=1e-4, rtol=1e-3, msg=name)


def test_a_run_bounded_by_steps_names_its_steps_not_epoch_minus_2():
    from types import SimpleNamespace

    from lightning_critrm.cli import StepProgressBar

    bar = StepProgressBar()
    bar._trainer = SimpleNamespace(max_epochs=-1, max_steps=30)  # what max_steps alone leaves Lightning
    assert bar._get_train_description(0).strip() == "Epoch 0, 30 steps"
    bar._trainer = SimpleNamespace(max_epochs=3, max_steps=-1)
    assert bar._get_train_description(1).strip() == "Epoch 1/2"
