import sqlite3

import pytest

from lightning_critrm.critique.cache import CritiqueCache, CritiqueRow


def row(key, status="ok", text="fine", critic="c"):
    return CritiqueRow(key, status, text if status == "ok" else None, None if status == "ok" else "boom",
                       critic)


def test_batches_round_trip_and_ok_rows_are_never_overwritten(tmp_path):
    with CritiqueCache(tmp_path / "c.sqlite") as cache:
        cache.put_batch([row("a"), row("b", "failed")])
        cache.put_batch([row("a", text="other"), row("b", text="retried")])
        got = cache.get_many(["a", "b", "zzz"])
        assert got["a"].critique == "fine"  # ok stays
        assert got["b"].status == "ok" and got["b"].critique == "retried"  # failed is retried
        assert set(got) == {"a", "b"} and cache.count() == 2 and cache.count("ok") == 2


def test_a_batch_is_all_or_nothing(tmp_path):
    with CritiqueCache(tmp_path / "c.sqlite") as cache:
        cache.put_batch([row("a")])
        bad = CritiqueRow("y", "not-a-status", None, None, "c")  # violates the CHECK constraint
        with pytest.raises(sqlite3.IntegrityError):
            cache.put_batch([row("x"), bad, row("z")])
        assert cache.count() == 1 and not cache.get_many(["x", "z"])


def test_a_second_connection_reads_committed_batches(tmp_path):
    path = tmp_path / "c.sqlite"
    with CritiqueCache(path) as writer, CritiqueCache(path) as reader:
        writer.put_batch([row(str(i)) for i in range(1000)])  # also crosses the 900-parameter chunking
        assert len(reader.get_many(str(i) for i in range(1000))) == 1000
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_cache_from_before_the_too_long_column_opens_with_its_rows(tmp_path):
    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE critiques (key TEXT PRIMARY KEY, status TEXT NOT NULL CHECK (status IN ('ok', "
        "'failed')), critique TEXT, error TEXT, critic TEXT NOT NULL, prompt_tokens INTEGER, "
        "completion_tokens INTEGER, seconds REAL, created_at REAL NOT NULL)"
    )
    old.execute("INSERT INTO critiques VALUES ('a', 'ok', 'fine', NULL, 'c', 1, 2, 0.5, 0)")
    old.commit()
    old.close()
    with CritiqueCache(path) as cache:
        assert cache.get_many(["a"])["a"] == CritiqueRow("a", "ok", "fine", None, "c", 1, 2, 0.5,
                                                         too_long=False)
        cache.put_batch([CritiqueRow("b", "failed", None, "prompt too long", "c", 99, too_long=True)])
        assert cache.get_many(["b"])["b"].too_long
