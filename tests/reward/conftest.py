"""An exported critique-reading reward model whose critic is the fake chat endpoint, and what `score`
writes for it: what the reward function and the server are held to."""

import json

import pytest

from lightning_critrm.cli import main
from tests.conftest import write_jsonl
from tests.critique.conftest import fake_chat_server  # noqa: F401  (the fixture)
from tests.test_cli import tiny_endpoint_critic_config


@pytest.fixture
def critique_export(tmp_path, pairs_file, tiny_decoder_dir, fake_chat_server, monkeypatch):  # noqa: F811
    """A tiny critique-reading RM exported after two steps, its critic the fake endpoint."""
    monkeypatch.setenv("LIGHTNING_CRITRM_CACHE", str(tmp_path / "cache"))
    cfg = tiny_endpoint_critic_config(tmp_path, tiny_decoder_dir, pairs_file, fake_chat_server.url)
    main(["fit", "--config", str(cfg), "--trainer.max_steps", "2"])
    main(["export", "--config", str(cfg), "--ckpt_path", "last", "--out", str(tmp_path / "rm")])
    return tmp_path / "rm"


def scored_by_score(tmp_path, model, url, prompts, completions, name="rows"):
    """What `score` writes for the same (prompt, completion) texts."""
    rows = [{"prompt": p, "completion": c} for p, c in zip(prompts, completions)]
    src, out = write_jsonl(tmp_path / f"{name}.jsonl", rows), tmp_path / f"{name}.scored.jsonl"
    main(["score", "--model", str(model), "--input", str(src), "--output", str(out),
          "--critic_base_url", url])
    return [json.loads(line)["reward"] for line in out.read_text().splitlines()]


def grpo_rewards(tmp_path, policy, reward) -> list[tuple[list, list, list]]:
    """Run a real TRL GRPOTrainer (2 steps of 4 completions, ``policy`` a tiny local model) rewarded
    by ``reward``; returns what each reward call received and answered: (prompts, completions,
    rewards). Asserts that TRL logged those rewards."""
    import datasets
    from trl import GRPOConfig, GRPOTrainer

    received = []

    def recorded(prompts, completions, **kwargs):
        rewards = reward(prompts, completions, **kwargs)
        received.append((list(prompts), list(completions), rewards))
        return rewards

    recorded.__name__ = reward.__name__
    prompts = datasets.Dataset.from_dict({"prompt": [f"What is {i} + {i}?" for i in range(4)]})
    config = GRPOConfig(output_dir=str(tmp_path / "grpo"), per_device_train_batch_size=4, num_generations=4,
                        max_completion_length=8, max_steps=2, learning_rate=1e-4, logging_steps=1,
                        report_to="none", use_cpu=True, bf16=False, save_strategy="no", seed=0)
    trainer = GRPOTrainer(model=policy, reward_funcs=[recorded], args=config, train_dataset=prompts)
    trainer.train()
    assert len(received) == 2 and all(len(r[2]) == 4 for r in received)
    logged = [h["rewards/critique_reward/mean"] for h in trainer.state.log_history
              if "rewards/critique_reward/mean" in h]
    assert logged == pytest.approx([sum(r[2]) / 4 for r in received], abs=1e-4)
    return received
