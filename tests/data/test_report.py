import logging

from datasets import Dataset

from lightning_critrm.data.report import _listing, report_data
from lightning_critrm.data.tokenized_cache import TokenizedStats


class Recorder:
    """A logger with TensorBoard's add_text, recording what it is given."""

    def __init__(self):
        self.metrics, self.texts = {}, {}
        self.experiment = self

    def log_metrics(self, metrics, step):
        self.metrics.update({(name, step): value for name, value in metrics.items()})

    def add_text(self, tag, text, step):
        self.texts[tag] = text


def test_a_listing_shows_the_first_lines_and_counts_the_rest():
    assert _listing(["a", "b"], "  ") == "  a\n  b"
    assert _listing(["a", "b", "c"], "- ", most=2) == (
        "- a\n- b\n- ... and 1 more (TensorBoard: the data/ text entries)")


def test_counts_go_to_the_log_and_the_logger_and_rows_left_out_are_named(caplog):
    stats = {"source": TokenizedStats(pairs_read=6, pairs_truncated=2, pairs_dropped_identical=1,
                                      pairs_dropped_failed_critique=0, rows_skipped=["a.jsonl:3 (prompt)"],
                                      identical_completions=["a.jsonl:5"])}
    train = Dataset.from_dict({"prompt_key": ["p", "p", "q"]})
    val = Dataset.from_dict({"prompt_key": ["r"]})
    logger = Recorder()
    with caplog.at_level(logging.INFO, logger="lightning_critrm.data.report"):
        report_data(stats, train, val, "columns", logger)
    assert "train: 3 pairs over 2 prompts; val: 1 pairs over 1 prompts; critiques: columns" in caplog.text
    assert "source: 1 bad row(s) skipped (data.on_bad_row: skip):\n  a.jsonl:3 (prompt)" in caplog.text
    assert "source: 1 pair(s) dropped: chosen and rejected are the same text:\n  a.jsonl:5" in caplog.text
    assert logger.metrics == {
        ("data/train_pairs", 0): 3, ("data/val_pairs", 0): 1, ("data/source_pairs_truncated", 0): 2,
        ("data/source_pairs_dropped", 0): 1, ("data/source_pairs_dropped_failed_critique", 0): 0,
        ("data/source_pairs_dropped_identical_completions", 0): 1, ("data/source_rows_skipped", 0): 1,
    }
    assert logger.texts == {"data/source_skipped_rows": "    a.jsonl:3 (prompt)",
                            "data/source_identical_pairs": "    a.jsonl:5"}
