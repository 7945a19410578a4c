import pytest

from lightning_critrm.critique import CriticConfig
from lightning_critrm.critique.config import Sampling
from lightning_critrm.critique.store import CritiqueStore
from lightning_critrm.errors import NotReadyError
from tests.critique.test_fill import CountingCritic

PROMPT = ({"role": "user", "content": "What is 2 + 2?"},)


@pytest.fixture(autouse=True)
def reset_calls():
    CountingCritic.calls = []


def test_a_store_generates_only_what_it_lacks_and_reads_it_back(tmp_path, tiny_decoder_dir):
    store = CritiqueStore(CriticConfig(model=tiny_decoder_dir), tmp_path / "c.sqlite",
                          backend_factory=CountingCritic)
    items = [(PROMPT, "4"), (PROMPT, "5"), (PROMPT, "4")]  # one completion twice: generated once
    first = store.fill(items, require_cached=False, progress=False)
    assert (first.requested, first.generated) == (2, 2) and CountingCritic.calls == [2]
    assert store.lookup(items) == ["critique of 4", "critique of 5", "critique of 4"]
    again = store.fill(items + [(PROMPT, "22")], require_cached=False, progress=False)
    assert (again.cached, again.generated) == (2, 1)
    # 4, 5 and 3 distinct, 3 missing
    with pytest.raises(NotReadyError, match="1 of 3 critiques are not in .* generate them first with"):
        store.fill(items + [(PROMPT, "3")], require_cached=True, progress=False)


def test_another_critic_shares_the_file_but_none_of_the_critiques(tmp_path, tiny_decoder_dir):
    store = CritiqueStore(CriticConfig(model=tiny_decoder_dir), tmp_path / "c.sqlite",
                          backend_factory=CountingCritic)
    store.fill([(PROMPT, "4")], require_cached=False, progress=False)
    other = store.with_critic(CriticConfig(model=tiny_decoder_dir, sampling=Sampling(temperature=0.7)))
    assert other.path == store.path and other.backend_factory is CountingCritic
    assert other.lookup([(PROMPT, "4")]) == [None] and store.lookup([(PROMPT, "4")]) == ["critique of 4"]


def test_read_tells_a_failed_critique_from_a_missing_one(tmp_path, tiny_decoder_dir):
    store = CritiqueStore(CriticConfig(model=tiny_decoder_dir), tmp_path / "c.sqlite",
                          backend_factory=lambda config: CountingCritic(config, fail={"5"}))
    store.fill([(PROMPT, "4"), (PROMPT, "5")], require_cached=False, progress=False)
    assert store.read([(PROMPT, "4"), (PROMPT, "5"), (PROMPT, "6")]) == [
        ("critique of 4", None), (None, "empty output"), (None, None)]


def test_a_kept_backend_is_built_once_for_every_fill_and_closed_at_the_end(tmp_path, tiny_decoder_dir):
    built, closed = [], []

    class Tracked(CountingCritic):
        def __init__(self, config):
            super().__init__(config)
            built.append(self)

        def close(self):
            closed.append(self)

    store = CritiqueStore(CriticConfig(model=tiny_decoder_dir), tmp_path / "c.sqlite",
                          backend_factory=Tracked)
    with store.backend_kept():
        for completion in ("4", "5", "6"):
            store.fill([(PROMPT, completion)], require_cached=False, progress=False)
        assert len(built) == 1 and closed == []
    assert closed == built and store.backend_factory is Tracked
    store.fill([(PROMPT, "7")], require_cached=False, progress=False)  # outside the block: per fill again
    assert len(built) == 2 and closed == built


def test_a_kept_backend_can_be_started_on_entry(tmp_path, tiny_decoder_dir):
    store = CritiqueStore(CriticConfig(model=tiny_decoder_dir), tmp_path / "c.sqlite",
                          backend_factory=CountingCritic)
    built = []
    store.backend_factory = lambda config: built.append(config) or CountingCritic(config)
    with store.backend_kept(start=True):
        assert len(built) == 1  # before any fill
        store.fill([(PROMPT, "4")], require_cached=False, progress=False)
    assert len(built) == 1 and CountingCritic.calls == [1]


def test_a_kept_backend_asked_to_overlap_calls_is_built_so_and_yielded(tmp_path, tiny_decoder_dir):
    asked = []

    def factory(config, concurrent=False):
        asked.append(concurrent)
        return CountingCritic(config)

    store = CritiqueStore(CriticConfig(model=tiny_decoder_dir), tmp_path / "c.sqlite",
                          backend_factory=factory)
    with store.backend_kept(start=True, concurrent=True) as backend:
        assert asked == [True] and not backend.concurrent  # what the backend built says of itself
        store.fill([(PROMPT, "4")], require_cached=False, progress=False)
    assert asked == [True] and CountingCritic.calls == [1]
