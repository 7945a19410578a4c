"""SIGTERM during training saves a resumable checkpoint, then the process exits."""

import os
import signal
import subprocess
import sys
import time

import torch
import yaml

from tests.conftest import REPO


def test_sigterm_saves_last_checkpoint_that_resumes(tmp_path, pairs_file, tiny_decoder_dir):
    config = {
        "seed_everything": 0,
        "trainer": {"accelerator": "cpu", "max_steps": 100000, "log_every_n_steps": 1, "enable_progress_bar": False,
                    "limit_val_batches": 0, "default_root_dir": str(tmp_path / "run")},
        "model": {"backbone": tiny_decoder_dir},
        "data": {"source": str(pairs_file), "batch_size": 2, "val_fraction": 0.25, "cache_dir": str(tmp_path / "cache")},
    }
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(config))
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "lightning_critrm", "fit", "--config", str(cfg)]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
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
