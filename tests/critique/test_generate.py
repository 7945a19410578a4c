import dataclasses

import pytest

from lightning_critrm.critique import CriticConfig, CritiqueCache, attach_critiques, fill_cache, requests_for
from lightning_critrm.critique.backend import CriticBackend, Generation
from lightning_critrm.critique.config import CachePolicy, Engine, Sampling
from lightning_critrm.critique.transformers_backend import TransformersCritic
from lightning_critrm.records import PreferencePair

PAIRS = [
    PreferencePair(({"role": "user", "content": f"Q{i}"},), f"good {i}", f"bad {i}") for i in range(5)
] + [PreferencePair(({"role": "user", "content": "Q0"},), "good 0", "other 0")]  # shares a completion


class CountingCritic(CriticBackend):
    """Writes 'critique of <completion>'; fails on completions listed in ``fail``."""

    calls: list[int] = []

    def __init__(self, config, fail=()):
        super().__init__(config)
        self.fail = set(fail)

    def generate(self, requests):
        CountingCritic.calls.append(len(requests))
        out = []
        for messages in requests:
            completion = messages[0]["content"].split("[Response]\n")[1].split("\n\n[Critique]")[0]
            out.append(Generation(None, "empty output") if completion in self.fail else Generation(f"critique of {completion}", None, 10, 3))
        return out


@pytest.fixture(autouse=True)
def reset_calls():
    CountingCritic.calls = []


def test_one_request_per_distinct_completion():
    requests = requests_for(PAIRS, CriticConfig())
    assert len(requests) == 11  # 5 pairs x 2 + "other 0"; "good 0" is asked once


def test_second_pass_makes_no_generator_call(tmp_path):
    config = CriticConfig(cache=CachePolicy(batch_size=4))
    requests = requests_for(PAIRS, config)
    with CritiqueCache(tmp_path / "c.sqlite") as cache:
        first = fill_cache(requests, config, cache, backend_factory=CountingCritic, progress=False)
        assert (first.generated, first.cached, first.failed) == (11, 0, 0)
        assert CountingCritic.calls == [4, 4, 3] and first.completion_tokens == 33
        again = fill_cache(requests, config, cache, backend_factory=lambda c: pytest.fail("model loaded"), progress=False)
        assert (again.generated, again.cached) == (0, 11)
        attached = attach_critiques(PAIRS, config, cache)
    assert attached.dropped_failed == 0 and attached.missing == 0
    assert attached.pairs[1].chosen_critique == "critique of good 1"
    assert attached.pairs[1].rejected_critique == "critique of bad 1"


def test_failed_critiques_are_recorded_reported_dropped_and_retried(tmp_path):
    config = CriticConfig(cache=CachePolicy(batch_size=16))
    requests = requests_for(PAIRS, config)
    with CritiqueCache(tmp_path / "c.sqlite") as cache:
        summary = fill_cache(requests, config, cache, backend_factory=lambda c: CountingCritic(c, fail={"bad 2"}), progress=False)
        assert (summary.generated, summary.failed) == (10, 1)
        assert cache.count("failed") == 1
        attached = attach_critiques(PAIRS, config, cache)
        assert attached.dropped_failed == 1 and len(attached.pairs) == 5
        retry = fill_cache(requests, config, cache, backend_factory=CountingCritic, progress=False)
        assert (retry.generated, retry.cached, retry.failed) == (1, 10, 0)



class ShortContextCritic(CountingCritic):
    """Fails "bad 2" as a 50-token prompt that does not fit a context of ``max_model_len``
    (40 when unset, the model's own limit), as the vLLM backend does."""

    def generate(self, requests):
        out = super().generate(requests)
        limit = self.config.engine.max_model_len or 40
        for i, messages in enumerate(requests):
            if "[Response]\nbad 2\n" in messages[0]["content"] and 50 >= limit:
                out[i] = Generation(None, f"prompt has 50 tokens, the critic's max_model_len is {limit}", 50, too_long=True)
        return out


def test_too_long_prompts_are_not_retried_until_the_context_fits(tmp_path):
    config = CriticConfig(cache=CachePolicy(batch_size=16))
    requests = requests_for(PAIRS, config)
    with CritiqueCache(tmp_path / "c.sqlite") as cache:
        first = fill_cache(requests, config, cache, backend_factory=ShortContextCritic, progress=False)
        assert (first.generated, first.failed) == (10, 1)
        # The same critic would fail it again: no engine start, and the summary says why.
        again = fill_cache(requests, config, cache, backend_factory=lambda c: pytest.fail("critic started"), progress=False)
        assert (again.cached, again.generated, again.too_long) == (10, 0, 1)
        assert "1 still too long for the critic (set critic.engine.max_model_len above their length" in str(again)
        assert attach_critiques(PAIRS, config, cache).dropped_failed == 1  # still dropped and counted
        short = dataclasses.replace(config, engine=Engine(max_model_len=50))  # 50 tokens need a context of at least 51
        assert fill_cache(requests, short, cache, backend_factory=lambda c: pytest.fail("started"), progress=False).too_long == 1
        longer = dataclasses.replace(config, engine=Engine(max_model_len=64))  # not part of the key: same critiques
        retry = fill_cache(requests, longer, cache, backend_factory=ShortContextCritic, progress=False)
        assert (retry.cached, retry.generated, retry.failed, retry.too_long) == (10, 1, 0, 0)
        assert CountingCritic.calls == [11, 1]


def test_other_critic_settings_do_not_reuse_critiques(tmp_path):
    config = CriticConfig()
    with CritiqueCache(tmp_path / "c.sqlite") as cache:
        fill_cache(requests_for(PAIRS, config), config, cache, backend_factory=CountingCritic, progress=False)
        other = dataclasses.replace(config, template_version="v2")
        assert attach_critiques(PAIRS, other, cache).missing == 6


def test_transformers_backend_is_greedy_ordered_and_batch_independent(tiny_decoder_dir):
    config = CriticConfig(model=tiny_decoder_dir, sampling=Sampling(max_new_tokens=8), engine=Engine(generation_batch_size=2))
    critic = TransformersCritic(config)
    requests = [[{"role": "user", "content": "x" * n}] for n in (30, 2, 15, 7)]
    once = critic.generate(requests)
    assert len(once) == 4 and all(g.prompt_tokens > 0 for g in once)
    assert all(g.completion_tokens <= 8 for g in once)
    assert critic.generate(requests) == once  # greedy: reruns reproduce
    assert [critic.generate([r])[0] for r in requests] == once  # padding does not change results
