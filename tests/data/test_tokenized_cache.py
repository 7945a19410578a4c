from lightning_critrm.data.formatting import SequenceFormatter
from lightning_critrm.data.tokenized_cache import build_or_load
from lightning_critrm.records import PreferencePair

PAIRS = [PreferencePair(({"role": "user", "content": f"Q{i}"},), f"good {i}", f"bad {i}") for i in range(4)]


def test_an_entry_with_failed_critiques_is_rebuilt_only_when_they_change(tmp_path, chat_tokenizer):
    formatter = SequenceFormatter(chat_tokenizer, 128, None)
    loads = []

    def loader(dropped):
        def load():
            loads.append(dropped)
            return PAIRS[: 4 - dropped], dropped
        return load

    ds, stats = build_or_load(loader(1), formatter, "k", tmp_path)
    assert len(ds) == 3 and stats.pairs_dropped_failed_critique == 1 and stats.pairs_read == 4
    sentinel = tmp_path / "tokenized" / "k" / "sentinel"
    sentinel.touch()
    again, _ = build_or_load(loader(1), formatter, "k", tmp_path)  # same failures: the entry holds
    assert len(again) == 3 and loads == [1, 1] and sentinel.exists()  # read to check, not rebuilt
    fixed, stats = build_or_load(loader(0), formatter, "k", tmp_path)  # a critique was generated since
    assert len(fixed) == 4 and stats.pairs_dropped_failed_critique == 0 and loads == [1, 1, 0]
    assert not sentinel.exists()  # rebuilt
    build_or_load(loader(0), formatter, "k", tmp_path)
    assert loads == [1, 1, 0]  # nothing dropped: loaded without reading the source
