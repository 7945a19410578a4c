"""Read preference rows from a source string into :class:`PreferencePair` records.

A source is one of:

* a local file or glob: ``.jsonl``, ``.json`` (a list of rows, or ``{"data": [...]}``), ``.parquet``;
* ``builtin:arithmetic`` or ``builtin:arithmetic:N``: the quickstart set this package generates
  (480 or N pairs; no network, no files);
* anything else: a dataset name on the Hugging Face hub, read with ``datasets.load_dataset``
  (``name`` or ``name:config``), split chosen separately.

Local files are parsed here rather than by ``datasets`` so that every error names the file, the
line and the field.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

from lightning_critrm.errors import MissingInputError
from lightning_critrm.records import ColumnMap, PreferencePair, RecordError, normalize_row

BUILTIN_PREFIX = "builtin:"
LOCAL_SUFFIXES = (".jsonl", ".json", ".parquet")


def is_local(source: str) -> bool:
    return source.endswith(LOCAL_SUFFIXES) or os.path.exists(source)


def local_files(source: str) -> list[Path]:
    """Files a local source names (a file, a glob, or a folder of data files), sorted."""
    if os.path.isdir(source):
        files = [p for p in sorted(Path(source).rglob("*")) if p.suffix in LOCAL_SUFFIXES]
    else:
        files = [Path(p) for p in sorted(glob.glob(source))]
    if not files:
        raise MissingInputError(f"no data file matches {source!r} (looked from {os.getcwd()})")
    return files


def rows_of_file(path: Path) -> Iterator[tuple[str, Any]]:
    """Yield (location, raw row) for each row of a local file. A ``.jsonl`` location is its line,
    numbered from 1 as editors number them; a row of a JSON array or parquet file is its index from
    0, as ``data[i]`` and ``df.iloc[i]`` read it (hub sets too: :func:`_hub_rows`).
    A row that cannot be read (bad JSON or UTF-8 on a ``.jsonl`` line) comes as a
    :class:`RecordError` in place of the row, so a caller may skip it; problems with the whole file
    (missing, unreadable, empty, not a list) raise."""
    try:
        count = 0
        for where, row in _rows_of_file(path):
            count += 1
            yield where, row
    except PermissionError:
        raise MissingInputError(f"{path}: cannot be read (permission denied)") from None
    except IsADirectoryError:
        raise MissingInputError(f"{path}: is a folder, not a data file") from None
    except FileNotFoundError:
        raise MissingInputError(f"{path}: no such file") from None
    if count == 0:
        raise RecordError(f"{path}: holds no rows (the file is empty)")


def _rows_of_file(path: Path) -> Iterator[tuple[str, Any]]:
    if path.suffix == ".jsonl":
        # Read as bytes: a line that is not UTF-8 is then one bad row with its line number, not a
        # UnicodeDecodeError from deep inside the reader.
        with path.open("rb") as fh:
            for lineno, raw in enumerate(fh, start=1):
                where = f"{path}: line {lineno}"
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    yield where, RecordError(f"{where}: not valid UTF-8 (byte {err.start + 1} of the line)")
                    continue
                if not line.strip():
                    continue
                try:
                    yield where, json.loads(line.rstrip("\r\n"))  # columns of a cut line stay on it
                except json.JSONDecodeError as err:
                    yield where, RecordError(f"{where}: not valid JSON ({err.msg} at column {err.colno})")
    elif path.suffix == ".json":
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            line = raw.count(b"\n", 0, err.start) + 1
            raise RecordError(f"{path}: line {line}: not valid UTF-8") from None
        if not text.strip():
            return
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise RecordError(f"{path}: line {err.lineno}: not valid JSON ({err.msg})") from None
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            data = data["data"]
        if not isinstance(data, list):
            raise RecordError(f"{path}: expected a JSON list of rows (or {{'data': [...]}})")
        for i, row in enumerate(data):
            yield f"{path}: row {i}", row
    elif path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except (pa.ArrowInvalid, OSError) as err:
            if isinstance(err, (PermissionError, FileNotFoundError, IsADirectoryError)):
                raise
            raise RecordError(f"{path}: not a readable parquet file ({err})") from None
        for i, row in enumerate(table.to_pylist()):
            yield f"{path}: row {i}", row
    else:
        raise RecordError(f"{path}: unsupported file type (use .jsonl, .json or .parquet)")


def load_hub_dataset(source: str, repo: str, split: str, config: Optional[str] = None):
    """``datasets.load_dataset`` for a ``source`` that names no local path. A name that is neither
    says both readings, so a mistyped relative path is not taken for a hub set the error is about."""
    import datasets

    try:
        return datasets.load_dataset(repo, config, split=split)
    except (FileNotFoundError, ConnectionError) as err:  # (not found; offline or unreachable)
        raise MissingInputError(
            f"{source}: no such local file, glob or folder (looked from {os.getcwd()}), nor a hub dataset "
            f"that could be read ({type(err).__name__}: {' '.join(str(err).split())})") from None


def _hub_rows(name: str, split: str) -> Iterator[tuple[str, Any]]:
    repo, _, config = name.partition(":")
    ds = load_hub_dataset(name, repo, split, config or None)
    for i, row in enumerate(ds):
        yield f"{name} [{split}]: row {i}", row


@dataclass
class SourcePairs:
    """The preference pairs of a source, and the rows left out of them, each named by location."""

    pairs: list[PreferencePair]
    skipped: list[str] = field(default_factory=list)  # bad rows (on_bad_row: skip), with the reason
    identical: list[str] = field(default_factory=list)  # chosen and rejected are the same text
    failed_critique: int = 0  # pairs whose generated critique failed (set by the critique store)


def read_pairs(
    source: str,
    columns: ColumnMap,
    with_critiques: bool,
    split: str = "train",
    seed: int = 0,
    on_bad_row: Literal["error", "skip"] = "error",
) -> SourcePairs:
    """All preference pairs of ``source``. The first bad row raises a :class:`RecordError`, or
    with ``on_bad_row="skip"`` is left out and named in ``skipped``. A pair whose two completions
    are the same text is left out and named in ``identical``, whatever its critiques say: its
    rewards can only tie, which teaches nothing and counts as a wrong answer."""
    if source.startswith(BUILTIN_PREFIX):
        from lightning_critrm.data.arithmetic import builtin_pairs

        return SourcePairs(builtin_pairs(source[len(BUILTIN_PREFIX) :], seed=seed))
    if is_local(source):
        rows: Iterator[tuple[str, Any]] = (r for f in local_files(source) for r in rows_of_file(f))
    else:
        rows = _hub_rows(source, split)
    read = SourcePairs([])
    for where, row in rows:
        try:
            if isinstance(row, RecordError):
                raise row
            if not isinstance(row, dict):
                raise RecordError(f"{where}: expected a JSON object, got {type(row).__name__}")
            pair = normalize_row(row, columns, where, with_critiques)
        except RecordError as err:
            if on_bad_row == "error":
                raise
            read.skipped.append(str(err))
            continue
        if pair.chosen == pair.rejected:
            read.identical.append(where)
        else:
            read.pairs.append(pair)
    if not read.pairs:
        left_out = [f"{len(read.skipped)} bad rows skipped"] if read.skipped else []
        left_out += [f"{len(read.identical)} with identical completions"] if read.identical else []
        note = f" ({', '.join(left_out)})" if left_out else ""
        raise RecordError(f"{source}: no usable preference pair{note}")
    return read


def source_fingerprint(source: str, split: str) -> str:
    """Changes whenever the content a source names changes (for local files: size and mtime)."""
    h = hashlib.sha1(f"{source}|{split}".encode())
    if is_local(source):
        for f in local_files(source):
            st = f.stat()
            h.update(f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]
