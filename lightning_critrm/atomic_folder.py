"""Write a folder, or a file, so that readers see all of it or none of it."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_folder(target: Path, complete_marker: str) -> Iterator[Path]:
    """Yield a temporary sibling of ``target`` to fill; on success rename it to ``target``.

    A killed process leaves only a ``*.tmp-*`` folder that nothing trusts. If another process
    renamed an equivalent folder into place first (``complete_marker`` exists in it), that one is
    kept and this one discarded.
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


def write_bytes_atomically(path: Path, data: bytes) -> None:
    """Write ``path`` through a temporary sibling renamed into place: a reader (or a study resumed
    after a kill) sees the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".tmp-", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; the file is an ordinary one
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text_atomically(path: Path, text: str) -> None:
    write_bytes_atomically(path, text.encode("utf-8"))
