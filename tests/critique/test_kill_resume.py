"""kill -9 in the middle of `critique`, then resume: the same rows as an uninterrupted run."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

import yaml

from lightning_critrm.critique import CritiqueCache
from tests.conftest import REPO, write_jsonl


def critique_config(tmp_path, name, backbone, pairs) -> str:
    config = {
        "model": {"backbone": backbone},
        "trainer": {"default_root_dir": str(tmp_path / f"{name}_run")},  # its log, not the repository's
        "data": {
            "source": str(pairs), "cache_dir": str(tmp_path / name), "critiques": "generate",
            "critic": {"backend": "transformers", "model": backbone, "sampling": {"max_new_tokens": 32},
                       "cache": {"batch_size": 4}, "engine": {"generation_batch_size": 4}},
        },
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def start(config: str) -> subprocess.Popen:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    return subprocess.Popen(
        [sys.executable, "-m", "lightning_critrm", "critique", "--config", config],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def committed(db) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM critiques").fetchone()[0]
    except sqlite3.OperationalError:  # table not created yet
        return 0


def test_kill_9_mid_run_then_resume_equals_an_uninterrupted_run(tmp_path, tiny_decoder_dir):
    rows = [{"prompt": f"Question {i}: add {i} and {2 * i}.", "chosen": f"The sum is {3 * i}.",
             "rejected": f"The sum is {3 * i + 1}."} for i in range(120)]
    pairs = write_jsonl(tmp_path / "pairs.jsonl", rows)
    total = 240

    killed_cfg = critique_config(tmp_path, "killed", tiny_decoder_dir, pairs)
    db = tmp_path / "killed" / "critiques.sqlite"
    proc = start(killed_cfg)
    deadline = time.time() + 240
    while committed(db) < 8 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    at_kill = committed(db)
    assert 0 < at_kill < total, f"kill landed outside the run ({at_kill} rows)"
    assert at_kill % 4 == 0  # whole batches only

    resumed = start(killed_cfg)
    out = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, out
    assert f"{at_kill} already cached, {total - at_kill} generated" in out

    clean_cfg = critique_config(tmp_path, "clean", tiny_decoder_dir, pairs)
    clean = start(clean_cfg)
    out = clean.communicate(timeout=300)[0]
    assert clean.returncode == 0, out

    with CritiqueCache(db) as a, CritiqueCache(tmp_path / "clean" / "critiques.sqlite") as b:
        assert a.count() == b.count() == total  # nothing lost, nothing duplicated
        assert a.rows() == b.rows()
