import dataclasses

import pytest

from lightning_critrm.critique import CriticConfig, CritiqueCache, attach_critiques, fill_cache, requests_for
from lightning_critrm.critique.backend import CriticBackend, Generation
from lightning_critrm.critique.config import CachePolicy, Engine, Sampling
from lightning_critrm.critique.fill import current, requests_for_completions
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
            failed = completion in self.fail
            out.append(Generation(None, "empty output") if failed else Generation(f"critique of {completion}",
                                                                                   None, 10, 3))
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
        again = fill_cache(requests, config, cache, backend_factory=lambda c: pytest.fail("model loaded"),
                           progress=False)
        assert (again.generated, again.cached) == (0, 11)
        attached = attach_critiques(PAIRS, config, cache)
    assert attached.dropped_failed == 0 and attached.missing == 0
    assert attached.pairs[1].chosen_critique == "critique of good 1"
    assert attached.pairs[1].rejected_critique == "critique of bad 1"


def test_failed_critiques_are_recorded_reported_dropped_and_retried(tmp_path):
    config = CriticConfig(cache=CachePolicy(batch_size=16))
    requests = requests_for(PAIRS, config)
    with CritiqueCache(tmp_path / "c.sqlite") as cache:
        summary = fill_cache(requests, config, cache,
                             backend_factory=lambda c: CountingCritic(c, fail={"bad 2"}), progress=False)
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
                out[i] = Generation(None, f"prompt has 50 tokens, the critic's max_model_len is {limit}", 50,
                                    too_long=True)
        return out


def test_too_long_prompts_are_not_retried_until_the_context_fits(tmp_path):
    config = CriticConfig(cache=CachePolicy(batch_size=16))
    requests = requests_for(PAIRS, config)
    with CritiqueCache(tmp_path / "c.sqlite") as cache:
        first = fill_cache(requests, config, cache, backend_factory=ShortContextCritic, progress=False)
        assert (first.generated, first.failed) == (10, 1)
        # The same critic would fail it again: no engine start, and the summary says why.
        again = fill_cache(requests, config, cache, backend_factory=lambda c: pytest.fail("critic started"),
                           progress=False)
        assert (again.cached, again.generated, again.too_long) == (10, 0, 1)
        assert ("1 still too long for the critic (set critic.engine.max_model_len above their length"
                in str(again))
        assert attach_critiques(PAIRS, config, cache).dropped_failed == 1  # still dropped and counted
        # 50 tokens need a context of at least 51
        short = dataclasses.replace(config, engine=Engine(max_model_len=50))
        assert fill_cache(requests, short, cache, backend_factory=lambda c: pytest.fail("started"),
                          progress=False).too_long == 1
        # not part of the key: same critiques
        longer = dataclasses.replace(config, engine=Engine(max_model_len=64))
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
    config = CriticConfig(model=tiny_decoder_dir, sampling=Sampling(max_new_tokens=8),
                          engine=Engine(generation_batch_size=2))
    critic = TransformersCritic(config)
    requests = [[{"role": "user", "content": "x" * n}] for n in (30, 2, 15, 7)]
    once = critic.generate(requests)
    assert len(once) == 4 and all(g.prompt_tokens > 0 for g in once)
    assert all(g.completion_tokens <= 8 for g in once)
    assert critic.generate(requests) == once  # greedy: reruns reproduce
    assert [critic.generate([r])[0] for r in requests] == once  # padding does not change results


class ContextCritic(CriticBackend):
    """Writes like vLLM under a context of ``engine.max_model_len``: a prompt of ``prompt_len``
    tokens (the number in the completion) gets min(max_new_tokens, context - prompt) tokens."""

    def generate(self, requests):
        context, wanted = self.config.engine.max_model_len, self.config.sampling.max_new_tokens
        out = []
        for messages in requests:
            prompt = int(messages[0]["content"].split("[Response]\n")[1].split(" ")[0])
            if prompt >= context:
                out.append(Generation(None, "too long", prompt, too_long=True, context=context))
                continue
            n = min(wanted, context - prompt)
            out.append(Generation(f"{n} tokens under {context}", None, prompt, n, context=context))
        return out


def test_the_context_length_rewrites_only_the_critiques_it_changes(tmp_path):
    # prompt 90: cut at 100 (10 of 48 tokens); prompt 20: ends before any context here (68 tokens)
    items = [(({"role": "user", "content": "Q"},), f"{n} tokens of prompt") for n in (90, 20)]

    def fill(context):
        config = CriticConfig(sampling=Sampling(max_new_tokens=48), engine=Engine(max_model_len=context))
        with CritiqueCache(tmp_path / "c.sqlite") as cache:
            summary = fill_cache(requests_for_completions(items, config), config, cache, ContextCritic,
                                 progress=False)
        keys = [config.key(*item) for item in items]
        with CritiqueCache(tmp_path / "c.sqlite") as cache:
            stored = current(cache.get_many(keys), context)
        return summary.generated, [stored[k].critique if k in stored else None for k in keys]

    assert fill(100) == (2, ["10 tokens under 100", "48 tokens under 100"])
    assert fill(100) == (0, ["10 tokens under 100", "48 tokens under 100"])  # nothing to redo
    assert fill(200) == (1, ["48 tokens under 200", "48 tokens under 100"])  # the cut one, longer now
    assert fill(80) == (0, [None, "48 tokens under 100"])  # 20 + 48 fits 80: kept; 90 is too long now
    assert fill(60) == (1, [None, "40 tokens under 60"])  # now 20 + 48 would be cut at 60
