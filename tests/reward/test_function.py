"""The reward function an RL trainer calls, against `score` on the same texts, and inside a real
TRL GRPOTrainer run."""

import json

import pytest
import torch

from lightning_critrm.cli import main
from lightning_critrm.reward import RewardFunction
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


def test_plain_and_conversational_calls_get_score_s_rewards_with_each_completion_critiqued_once(
    tmp_path, critique_export, fake_chat_server  # noqa: F811
):
    reward = RewardFunction(str(critique_export), critic_base_url=fake_chat_server.url)
    prompts = ["What is 2 + 2?", "What is 2 + 2?", "What is 5 + 5?"]
    completions = ["It is 4.", "It is 5.", "It is 10."]
    sent = len(fake_chat_server.requests)
    plain = reward(prompts=prompts, completions=completions, completion_ids=[[1]] * 3, trainer_state=None)
    assert len(fake_chat_server.requests) - sent == 3
    chat = reward([[{"role": "user", "content": p}] for p in prompts],
                  [[{"role": "assistant", "content": c}] for c in completions])
    assert len(fake_chat_server.requests) - sent == 3  # the same completions: cached
    want = scored_by_score(tmp_path, critique_export, fake_chat_server.url, prompts, completions)
    torch.testing.assert_close(torch.tensor(plain), torch.tensor(want), atol=1e-4, rtol=1e-4)
    assert chat == plain and reward.__name__ == "critique_reward"


def test_bad_calls_name_the_item(critique_export, fake_chat_server):  # noqa: F811
    reward = RewardFunction(str(critique_export), critic_base_url=fake_chat_server.url)
    with pytest.raises(ValueError, match=r"2 prompts for 1 completions"):
        reward(["a", "b"], ["c"])
    with pytest.raises(ValueError, match=r"completions\[1\]: expected a string or messages ending in"):
        reward(["a", "b"], ["c", [{"role": "user", "content": "d"}]])
    with pytest.raises(ValueError, match=r"prompts\[0\]: expected a string or chat messages"):
        reward([[{"content": "a"}]], ["c"])


def test_a_grpo_trainer_is_rewarded_by_the_function(tmp_path, critique_export, fake_chat_server,  # noqa: F811
                                                    tiny_decoder_dir):
    import datasets
    from trl import GRPOConfig, GRPOTrainer

    reward = RewardFunction(str(critique_export), critic_base_url=fake_chat_server.url)
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
    trainer = GRPOTrainer(model=tiny_decoder_dir, reward_funcs=[recorded], args=config, train_dataset=prompts)
    trainer.train()
    assert len(received) == 2 and all(len(r[2]) == 4 for r in received)
    sent_prompts = [p for r in received for p in r[0]]
    sent_completions = [c for r in received for c in r[1]]
    want = scored_by_score(tmp_path, critique_export, fake_chat_server.url, sent_prompts, sent_completions)
    got = [v for r in received for v in r[2]]
    torch.testing.assert_close(torch.tensor(got), torch.tensor(want), atol=1e-4, rtol=1e-4)
    logged = [h["rewards/critique_reward/mean"] for h in trainer.state.log_history
              if "rewards/critique_reward/mean" in h]
    assert logged == pytest.approx([sum(r[2]) / 4 for r in received], abs=1e-4)


def test_normalizing_without_statistics_is_refused_before_any_critique(critique_export,
                                                                       fake_chat_server):  # noqa: F811
    config = json.loads((critique_export / "config.json").read_text())
    del config["lightning_critrm"]["reward_stats"]
    (critique_export / "config.json").write_text(json.dumps(config))
    reward = RewardFunction(str(critique_export), normalize=True, critic_base_url=fake_chat_server.url)
    sent = len(fake_chat_server.requests)
    with pytest.raises(ValueError, match="no reward statistics to normalize with"):
        reward(["What is 1 + 1?"], ["It is 2."])
    assert len(fake_chat_server.requests) == sent
