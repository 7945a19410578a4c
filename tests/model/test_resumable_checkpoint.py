"""SIGTERM during training saves a resumable checkpoint, then the process exits."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from tests.conftest import REPO


def test_sigterm_saves_last_checkpoint_that_resumes(tmp_path, pairs_file, tiny_decoder_dir):
    config = {
        "seed_everything": 0,
        "trainer": {"accelerator": "cpu", "max_steps": 100000, "log_every_n_steps": 1,
                    "enable_progress_bar": False,
                    "limit_val_batches": 0, "default_root_dir": str(tmp_path / "run")},
        "model": {"backbone": tiny_decoder_dir},
        "data": {"source": str(pairs_file), "batching": {"batch_size": 2}, "val_fraction": 0.25,
                 "cache_dir": str(tmp_path / "cache")},
    }
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(config))
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "lightning_critrm", "fit", "--config", str(cfg)]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        deadline = time.time() + 120
        while not list((tmp_path / "run").rglob("events.out.tfevents.*")):  # training has started
            assert proc.poll() is None and time.time() < deadline, proc.stdout.read()[-3000:]
            time.sleep(0.2)
        time.sleep(2)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, out[-3000:]
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert ckpt.exists() and "saved" in out and "resume with --ckpt_path last" in out
    step = torch.load(ckpt, weights_only=True)["global_step"]
    assert step > 0

    resumed = subprocess.run([*cmd, "--ckpt_path", "last", "--trainer.max_steps", str(step + 2)],
                             cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert torch.load(ckpt, weights_only=True)["global_step"] == step + 2
    assert [p.name for p in ckpt.parent.glob("last*.ckpt")] == ["last.ckpt"]  # overwritten, not versioned


def kill_config(tmp_path, pairs_file, backbone, name: str, num_workers: int, kill_at=None):
    """9 steps over 18 training pairs in batches of 4 (5 per epoch: steps 5-8 are in epoch 1), a
    checkpoint after every step."""
    config = {
        "seed_everything": 0,
        "trainer": {"accelerator": "cpu", "max_steps": 9, "log_every_n_steps": 1,
                    "enable_progress_bar": False,
                    "limit_val_batches": 0, "default_root_dir": str(tmp_path / name)},
        "checkpoint": {"every_n_train_steps": 1, "monitor": None, "save_top_k": 0},
        "model": {"backbone": backbone, "lr": 1e-3},
        "data": {"source": str(pairs_file), "batching": {"batch_size": 4, "num_workers": num_workers},
                 "val_fraction": 0.25,
                 "cache_dir": str(tmp_path / "cache")},
    }
    if kill_at is not None:
        config["trainer"]["callbacks"] = [{"class_path": "tests.model.kill_callbacks.KillAtStep",
                                           "init_args": {"step": kill_at}}]
    cfg = tmp_path / f"{name}.yaml"
    cfg.write_text(yaml.safe_dump(config))
    return cfg


def fit(cfg, *extra):
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "lightning_critrm", "fit", "--config", str(cfg), *extra],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def final_weights(run_dir):
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 9
    return ckpt["state_dict"]


@pytest.mark.parametrize("num_workers, steps", [(0, (1, 8)), (2, (6, 8))])  # (2, ...): inside epoch 1
def test_kill_9_at_a_random_step_then_resume_gives_the_same_weights(tmp_path, pairs_file, tiny_decoder_dir,
                                                                     num_workers, steps):
    import random

    kill_at = random.randint(*steps)
    done = fit(kill_config(tmp_path, pairs_file, tiny_decoder_dir, "whole", num_workers))
    assert done.returncode == 0, done.stderr[-3000:]
    killed_cfg = kill_config(tmp_path, pairs_file, tiny_decoder_dir, "killed", num_workers, kill_at)
    killed = fit(killed_cfg)
    assert killed.returncode == -signal.SIGKILL, (kill_at, killed.stderr[-3000:])
    saved = torch.load(tmp_path / "killed" / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["global_step"] == kill_at, kill_at  # the last completed step; no partial file beside it
    assert not list((tmp_path / "killed" / "checkpoints").glob(".*tmp*")), kill_at
    config = yaml.safe_load(killed_cfg.read_text())
    del config["trainer"]["callbacks"]
    killed_cfg.write_text(yaml.safe_dump(config))
    resumed = fit(killed_cfg, "--ckpt_path", "last")
    assert resumed.returncode == 0, (kill_at, resumed.stderr[-3000:])
    whole, again = final_weights(tmp_path / "whole"), final_weights(tmp_path / "killed")
    assert whole.keys() == again.keys()
    for name in whole:
        assert torch.equal(whole[name], again[name]), (kill_at, name)
