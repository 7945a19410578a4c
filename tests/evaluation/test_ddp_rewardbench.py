import json
import os
import subprocess
import sys

from tests.conftest import REPO, write_jsonl


def test_two_process_ddp_scores_every_row_exactly_once(tmp_path, pairs_file, tiny_decoder_dir):
    # 101 rows: not a multiple of the world size, where DistributedSampler would pad with duplicates.
    rows = [{"id": i, "subset": "hep-go" if i % 2 else "llmbar-natural", "prompt": f"Question {i}",
             "chosen": "answer " * (1 + i % 7), "rejected": "reply " * (1 + i % 5)} for i in range(101)]
    rb = write_jsonl(tmp_path / "rb.jsonl", rows)
    root = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1")
    proc = subprocess.run(
        [sys.executable, str(REPO / "tests" / "evaluation" / "ddp_rewardbench_main.py"), tiny_decoder_dir,
         str(pairs_file), str(rb), str(root), str(tmp_path / "cache")],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    records = list(root.rglob("rewardbench/*.json"))
    assert len(records) == 1  # written by rank 0 only
    record = json.loads(records[0].read_text())
    ids = [r["id"] for r in record["rows"]]
    assert len(ids) == 101 and sorted(map(int, ids)) == list(range(101))
    assert record["rows_per_subset"] == {"hep-go": 50, "llmbar-natural": 51}
