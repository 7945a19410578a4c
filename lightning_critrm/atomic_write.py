"""Write a file or a folder so that readers see all of it or none of it.

The one home of atomic writes: checkpoints, exports, scores, tokenized caches, backbones converted
once, study results and every JSON record go through :func:`atomic_file` or :func:`atomic_folder`.
A process killed mid-write (``kill -9``, a lost node) leaves only a hidden ``*.tmp-*`` sibling that
nothing reads, never a truncated file where the old one was.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


@contextmanager
def atomic_file(path: Path, mode: str = "wb") -> Iterator[IO]:
    """Yield a handle on a temporary sibling of ``path`` (``mode`` ``"wb"`` or ``"w"``, UTF-8); on
    success flush it to disk and rename it over ``path``, which the OS does atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; the file is an ordinary one
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_bytes_atomically(path: Path, data: bytes) -> None:
    with atomic_file(path, "wb") as fh:
        fh.write(data)


def write_text_atomically(path: Path, text: str) -> None:
    with atomic_file(path, "w") as fh:
        fh.write(text)


@contextmanager
def atomic_folder(target: Path, complete_marker: str) -> Iterator[Path]:
    """Yield a temporary sibling of ``target`` to fill; on success rename it to ``target``.

    If another process renamed an equivalent folder into place first (``complete_marker`` exists
    in it), that one is kept and this one discarded.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    try:
        yield tmp
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / complete_marker).exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
