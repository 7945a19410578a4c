import pytest

from lightning_critrm.critique import CachePolicy, CriticConfig
from lightning_critrm.critique.backend import CriticBackend, Generation
from lightning_critrm.data import PreferenceDataModule, tokenized_cache


class WordCritic(CriticBackend):
    """Writes '<word> critique' for every completion."""

    word = "first"

    def generate(self, requests):
        return [Generation(f"{WordCritic.word} critique", None, 5, 2) for _ in requests]


def module(tmp_path, pairs_file, backbone, store: str) -> PreferenceDataModule:
    critic = CriticConfig(model=backbone, cache=CachePolicy(path=str(tmp_path / store)))
    dm = PreferenceDataModule(source=str(pairs_file), backbone=backbone, cache_dir=str(tmp_path / "cache"),
                              critiques="generate", critic=critic, val_fraction=0.25)
    dm.critique_store.backend_factory = WordCritic
    dm.prepare_data()
    dm.setup("fit")
    return dm


def first_text(dm) -> str:
    return dm.tokenizer.decode(dm.train_dataset[0]["chosen_input_ids"])


def test_the_entry_keys_on_the_critiques_read_so_a_swapped_store_is_never_mixed_up(
    tmp_path, pairs_file, tiny_decoder_dir, monkeypatch
):
    import shutil

    WordCritic.word = "first"
    assert "first critique" in first_text(module(tmp_path, pairs_file, tiny_decoder_dir, "a.sqlite"))
    WordCritic.word = "second"
    assert "second critique" in first_text(module(tmp_path, pairs_file, tiny_decoder_dir, "b.sqlite"))
    # The same file name with other contents (a regenerated or copied store): other tokens.
    assert not (tmp_path / "b.sqlite-wal").exists()
    shutil.copy(tmp_path / "b.sqlite", tmp_path / "a.sqlite")
    assert "second critique" in first_text(module(tmp_path, pairs_file, tiny_decoder_dir, "a.sqlite"))

    def boom(*args, **kwargs):
        raise AssertionError("retokenized")

    monkeypatch.setattr(tokenized_cache, "_encode_rows", boom)  # unchanged critiques: the entry holds
    assert "second critique" in first_text(module(tmp_path, pairs_file, tiny_decoder_dir, "a.sqlite"))
    WordCritic.word = "third"
    with pytest.raises(AssertionError, match="retokenized"):
        module(tmp_path, pairs_file, tiny_decoder_dir, "c.sqlite")
