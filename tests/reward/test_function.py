"""The reward function an RL trainer calls, against `score` on the same texts, and inside a real
TRL GRPOTrainer run."""

import json

import pytest
import torch

from lightning_critrm.reward import RewardFunction
from tests.reward.conftest import grpo_rewards, scored_by_score


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
    # The two completions of "What is 2 + 2?" in one row, their prompt once: the same rewards.
    shared = RewardFunction(str(critique_export), critic_base_url=fake_chat_server.url, shared_prompt=True)
    torch.testing.assert_close(torch.tensor(shared(prompts, completions)), torch.tensor(plain), atol=1e-5,
                               rtol=1e-5)


def test_bad_calls_name_the_item(critique_export, fake_chat_server):  # noqa: F811
    reward = RewardFunction(str(critique_export), critic_base_url=fake_chat_server.url)
    with pytest.raises(ValueError, match=r"2 prompts for 1 completions"):
        reward(["a", "b"], ["c"])
    with pytest.raises(ValueError, match=r"completions\[1\]\[0\].role: the last message must be"):
        reward(["a", "b"], ["c", [{"role": "user", "content": "d"}]])
    with pytest.raises(ValueError, match=r"prompts\[0\]\[0\].role: expected a string"):
        reward([[{"content": "a"}]], ["c"])
    with pytest.raises(ValueError, match=r"completions\[0\]: expected a string or chat messages, got a"):
        reward(["a"], [3])


def test_a_grpo_trainer_is_rewarded_by_the_function(tmp_path, critique_export, fake_chat_server,  # noqa: F811
                                                    tiny_decoder_dir):
    reward = RewardFunction(str(critique_export), critic_base_url=fake_chat_server.url)
    received = grpo_rewards(tmp_path, tiny_decoder_dir, reward)
    prompts, completions, got = ([x for r in received for x in r[k]] for k in range(3))
    want = scored_by_score(tmp_path, critique_export, fake_chat_server.url, prompts, completions)
    torch.testing.assert_close(torch.tensor(got), torch.tensor(want), atol=1e-4, rtol=1e-4)


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
