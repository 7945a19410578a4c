"""`score` reads only an exported folder and the rows, with critiques as the model was trained."""

import json
import sys

import pytest
import torch

from lightning_critrm.cli import main
from lightning_critrm.errors import InputError
from lightning_critrm.reward.exported import ExportedRewardModel
from tests.conftest import write_jsonl
from tests.critique.conftest import fake_chat_server  # noqa: F401  (the fixture)
from tests.test_cli import tiny_config, tiny_endpoint_critic_config


def reference_rewards(out, formatter, items):
    from tests.model.test_export import exported_rewards

    return exported_rewards(out, [formatter.encode(p, c, crit).input_ids for p, c, crit in items])


def test_score_pairs_and_single_completions_with_critiques_from_columns(tmp_path, pairs_file,
                                                                        tiny_decoder_dir, capsys):
    cfg = tiny_config(tmp_path, tiny_decoder_dir, pairs_file)
    cli = main(["fit", "--config", str(cfg), "--trainer.max_steps", "2"])
    model = tmp_path / "rm"
    main(["export", "--config", str(cfg), "--ckpt_path", "last", "--out", str(model)])
    pairs = [json.loads(line) for line in pairs_file.read_text().splitlines()[:3]]
    singles = [{"prompt": r["prompt"], "completion": r["chosen"], "critique": r["chosen_critique"], "id": i}
               for i, r in enumerate(pairs)]
    for name, rows in (("pairs", pairs), ("singles", singles)):
        src, out = write_jsonl(tmp_path / f"{name}.jsonl", rows), tmp_path / f"{name}.scored.jsonl"
        main(["score", "--model", str(model), "--input", str(src), "--output", str(out)])
        scored = [json.loads(line) for line in out.read_text().splitlines()]
        assert [{k: v for k,
                 v in s.items() if not k.startswith(("reward", "preferred"))} for s in scored] == rows
        formatter = cli.datamodule.formatter
        if name == "pairs":
            items = [(({"role": "user", "content": r["prompt"]},), r[k],
                      r[f"{k}_critique"]) for r in rows for k in ("chosen", "rejected")]
            got = [v for s in scored for v in (s["reward_chosen"], s["reward_rejected"])]
            for s in scored:
                higher = "chosen" if s["reward_chosen"] > s["reward_rejected"] else "rejected"
                assert s["preferred"] == higher
        else:
            items = [(({"role": "user", "content": r["prompt"]},), r["completion"],
                      r["critique"]) for r in rows]
            got = [s["reward"] for s in scored]
        torch.testing.assert_close(torch.tensor(got), reference_rewards(model, formatter, items), atol=1e-4,
                                   rtol=1e-4)
    assert "scored 3 of 3 completions in 3 rows" in capsys.readouterr().out

    # --normalize: (reward - mean) / std with the validation statistics the export stored.
    stats = json.loads((model / "config.json").read_text())["lightning_critrm"]["reward_stats"]
    normalized = tmp_path / "singles.normalized.jsonl"
    main(["score", "--model", str(model), "--input", str(src), "--output", str(normalized), "--normalize",
          "true"])
    want = [(s["reward"] - stats["mean"]) / stats["std"] for s in scored]
    got = [json.loads(line)["reward"] for line in normalized.read_text().splitlines()]
    torch.testing.assert_close(torch.tensor(got), torch.tensor(want), atol=1e-6, rtol=1e-6)

    # --precision bf16-mixed: the same forward pass under bf16 autocast, weights and rewards fp32.
    mixed = tmp_path / "singles.bf16.jsonl"
    main(["score", "--model", str(model), "--input", str(src), "--output", str(mixed), "--precision",
          "bf16-mixed"])
    got = torch.tensor([json.loads(line)["reward"] for line in mixed.read_text().splitlines()])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want = reference_rewards(model, formatter, items)
    assert got.dtype == torch.float32 and not torch.equal(got, torch.tensor([s["reward"] for s in scored]))
    torch.testing.assert_close(got, want.float(), atol=1e-6, rtol=1e-6)
    with pytest.raises(InputError, match=r"--precision '16-mixed': use one of 32-true, bf16-mixed"):
        ExportedRewardModel(model, precision="16-mixed")

    # --shared_prompt: a pair's two completions in one row, the prompt once; the same rewards.
    shared = tmp_path / "pairs.shared.jsonl"
    main(["score", "--model", str(model), "--input", str(tmp_path / "pairs.jsonl"), "--output", str(shared),
          "--shared_prompt", "true"])
    got = [v for line in shared.read_text().splitlines() for v in (json.loads(line)["reward_chosen"],
                                                                   json.loads(line)["reward_rejected"])]
    pair_items = [(({"role": "user", "content": r["prompt"]},), r[k], r[f"{k}_critique"])
                  for r in pairs for k in ("chosen", "rejected")]
    want = reference_rewards(model, formatter, pair_items)
    torch.testing.assert_close(torch.tensor(got), want, atol=1e-5, rtol=1e-5)
    rm, rows_seen = ExportedRewardModel(model, shared_prompt=True), []
    forward = rm.net.forward
    rm.net.forward = lambda batch: rows_seen.append(batch.input_ids.shape[0]) or forward(batch)
    assert rm.rewards([item[:2] for item in pair_items], [item[2] for item in pair_items]) == got
    assert rows_seen == [3]  # six sequences, three prompts: three rows


def test_score_writes_missing_critiques_with_the_recorded_critic_then_reads_them_cached(
    tmp_path, pairs_file, tiny_decoder_dir, fake_chat_server, monkeypatch,  # noqa: F811 (the imported fixture)
):
    monkeypatch.setenv("LIGHTNING_CRITRM_CACHE", str(tmp_path / "cache"))
    cfg = tiny_endpoint_critic_config(tmp_path, tiny_decoder_dir, pairs_file, fake_chat_server.url)
    cli = main(["fit", "--config", str(cfg), "--trainer.max_steps", "2"])
    model = tmp_path / "rm"
    main(["export", "--config", str(cfg), "--ckpt_path", "last", "--out", str(model)])
    rows = [{"prompt": "What is 2 + 2?", "completion": "It is 4."},
            {"prompt": "What is 3 + 3?", "completion": "It is 7."}]
    src, out = write_jsonl(tmp_path / "new.jsonl", rows), tmp_path / "new.scored.jsonl"
    sent = len(fake_chat_server.requests)
    with pytest.raises(ValueError, match="give --critic_base_url"):  # the export records no endpoint
        main(["score", "--model", str(model), "--input", str(src), "--output", str(out)])
    served = ["--critic_base_url", fake_chat_server.url]
    main(["score", "--model", str(model), "--input", str(src), "--output", str(out), *served])
    # one critique per new completion, by the recorded critic
    assert len(fake_chat_server.requests) - sent == 2
    assert {r["model"] for r in fake_chat_server.requests[sent:]} == {"served-critic"}
    first = [json.loads(line)["reward"] for line in out.read_text().splitlines()]
    main(["score", "--model", str(model), "--input", str(src), "--output", str(out), *served])
    assert len(fake_chat_server.requests) - sent == 2  # cached: nothing asked again
    assert [json.loads(line)["reward"] for line in out.read_text().splitlines()] == first
    items = [(({"role": "user", "content": r["prompt"]},), r["completion"], f"Critique: {r['completion']} "
                                                                            "looks right.")
             for r in rows]
    torch.testing.assert_close(torch.tensor(first), reference_rewards(model, cli.datamodule.formatter, items),
                               atol=1e-4, rtol=1e-4)
    # The bound on requests in flight to the endpoint is the caller's to set (an endpoint is never a key).
    def bound(**kw):
        return ExportedRewardModel(model, critic_base_url=fake_chat_server.url, **kw).critique_store().critic

    assert bound().endpoint.max_concurrency == 8
    assert bound(critic_max_concurrency=64).endpoint.max_concurrency == 64
    assert bound(critic_max_concurrency=64).key(*items[0][:2]) == bound().key(*items[0][:2])
    with pytest.raises(InputError, match="--critic_max_concurrency must be >= 1, got 0"):
        bound(critic_max_concurrency=0)


def test_score_rows_errors_name_the_line_and_field(tmp_path, pairs_file, tiny_decoder_dir, monkeypatch,
                                                   capsys):
    from lightning_critrm.cli import run_command_line

    cfg = tiny_config(tmp_path, tiny_decoder_dir, pairs_file)
    main(["fit", "--config", str(cfg), "--trainer.max_steps", "1"])
    main(["export", "--config", str(cfg), "--ckpt_path", "last", "--out", str(tmp_path / "rm")])
    src = write_jsonl(tmp_path / "bad.jsonl",
                      [{"prompt": "Q", "completion": "A", "critique": "ok"}, {"prompt": "Q"}])
    monkeypatch.setattr(sys, "argv",
                        ["lightning_critrm", "score", "--model", str(tmp_path / "rm"), "--input", str(src),
                                      "--output", str(tmp_path / "o.jsonl")])
    with pytest.raises(SystemExit) as exit_info:
        run_command_line()
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.strip().endswith(
        f"error: {src}: line 2: field 'completion': missing (or give 'chosen' and 'rejected')")
    assert not (tmp_path / "o.jsonl").exists()


def test_shared_prompt_groups_keep_the_scored_sequences():
    from lightning_critrm.reward.exported import _kept_groups, prompt_groups

    texts = (("a", "1"), ("b", "2"), ("a", "3"), ("a", "4"))
    items = [([{"role": "user", "content": q}], c) for q, c in texts]
    assert prompt_groups(items) == [[0, 2, 3], [1]]
    # Sequence 2 has no critique (not scored): the rest renumbered 0..2.
    assert _kept_groups([[0, 2, 3], [1]], kept=[0, 1, 3]) == [[0, 2], [1]]
    assert _kept_groups(None, kept=[1, 4]) == [[0], [1]]
