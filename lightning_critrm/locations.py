"""Settings that name a place on disk, checked before any work: the one-line error names the
setting, the path and what is wrong with it (a file where a folder goes, a folder where a file
goes, a file of another kind, a place that cannot be written).

Checked up front rather than where each path is used, so a mistake costs seconds, not a critique
job or a training run that cannot save.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from lightning_critrm.errors import InputError, MissingInputError

# The first bytes of the files the tool reads back: what each setting's file must start with.
SIGNATURES = {
    "checkpoint": (b"PK\x03\x04", b"\x80"),  # torch.save's zip archive; a legacy pickle
    "SQLite critique cache": (b"SQLite format 3\x00",),
}


def writable_folder(path: str | os.PathLike, setting: str) -> Path:
    """``path`` as a folder this process can write into, created if missing."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{setting} {path}: is a file, where a folder goes")
    _blocking_file(path, setting)
    try:
        path.mkdir(parents=True, exist_ok=True)
        # Write access is tried, not read from permission bits: root ignores those, a read-only
        # mount does not.
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise InputError(f"{setting} {path}: cannot be written ({err.strerror or err})") from None
    return path


def writable_file(path: str | os.PathLike, setting: str) -> Path:
    """``path`` as a file this process can create or replace (its folder created if missing)."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{setting} {path}: is a folder, where a file goes")
    writable_folder(path.parent, f"{setting} (its folder)")  # Path("out").parent is Path(".")
    if path.exists() and not os.access(path, os.W_OK):
        raise InputError(f"{setting} {path}: cannot be written (permission denied)")
    return path


def file_of_kind(path: str | os.PathLike, setting: str, kind: str) -> Path:
    """``path`` as an existing file of ``kind`` (a key of :data:`SIGNATURES`), or nothing yet."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{setting} {path}: is a folder, where a {kind} file goes")
    if path.exists() and path.stat().st_size:
        try:
            with path.open("rb") as fh:
                head = fh.read(16)
        except OSError as err:
            raise MissingInputError(f"{setting} {path}: cannot be read ({err.strerror or err})") from None
        if not head.startswith(SIGNATURES[kind]):
            raise InputError(f"{setting} {path}: is not a {kind} file")
    return path


def _blocking_file(path: Path, setting: str) -> None:
    """A file standing where one of ``path``'s folders would be created."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"{setting} {path}: {parent} is a file, where a folder goes")
            return
