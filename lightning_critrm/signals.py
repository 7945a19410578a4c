"""Stopping cleanly: SIGTERM (what SLURM, ``timeout`` and container runtimes send) ends a job the way
Ctrl-C does, and no child process outlives the command that started it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

SIGTERM_EXIT_CODE = 128 + signal.SIGTERM


@contextmanager
def sigterm_raises_systemexit() -> Iterator[None]:
    """Inside this block SIGTERM raises ``SystemExit(143)`` in the main thread, so ``finally``
    blocks run (a vLLM critic shuts its engine processes down) instead of the process vanishing
    and leaving them orphaned. The previous handler is restored afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise SystemExit(SIGTERM_EXIT_CODE)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_logged(command: Sequence[str], log: Path) -> int:
    """Run ``command`` with its output appended to ``log`` (the command line first) and return its
    exit status. Ctrl-C or SIGTERM here stops it too (SIGTERM, so a training run saves its
    checkpoint; killed after 60 s) before the exception goes on."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write((" ".join(command) + "\n\n").encode())
        out.flush()
        process = subprocess.Popen(list(command), stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
        try:
            return process.wait()
        except BaseException:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            raise


def last_lines(log: Path, count: int = 15) -> str:
    """The last ``count`` lines of a log, indented, for an error that names it."""
    tail = log.read_text(errors="replace").strip().splitlines()[-count:]
    return "\n".join(f"  {line}" for line in tail)


def child_pids() -> set[int]:
    """Pids of the processes this one has started and that still run (children's children too)."""
    try:
        import psutil
    except ImportError:
        return set()
    return {c.pid for c in psutil.Process().children(recursive=True)}


def end_child_processes(spare: set[int] = frozenset(), grace_s: float = 0.0,
                        timeout_s: float = 5.0) -> list[int]:
    """Let the child processes not in ``spare`` exit by themselves for ``grace_s`` seconds, then
    terminate (and after ``timeout_s`` kill) those left; returns the pids that had to be ended.
    The last line of defence: engines and workers are shut down by their owners first."""
    try:
        import psutil
    except ImportError:  # psutil is a dependency; without it there is nothing to do
        return []
    children = [c for c in psutil.Process().children(recursive=True) if c.pid not in spare]
    # Only our own ranks finish by themselves; helpers such as multiprocessing's resource tracker
    # live as long as their parent, so waiting for them would only add the grace period.
    ranks = [c for c in children if _is_our_rank(c)]
    _, left = psutil.wait_procs(ranks, timeout=grace_s) if grace_s and ranks else ([], ranks)
    left = list(left) + [c for c in children if c not in ranks]
    for child in left:
        try:
            child.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(left, timeout=timeout_s)
    for child in alive:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    return [c.pid for c in left]


def _is_our_rank(process) -> bool:
    try:
        return "lightning_critrm" in " ".join(process.cmdline())
    except Exception:  # gone, or not ours to read
        return False


# The guard of `children_of_this_block`: a separate interpreter that notes the descendants of this
# process twice a second and, when the pipe from this process closes (the block ended, or the
# process died, SIGKILL included), ends those still running.
_GUARD = """
import os, sys, threading, psutil
owner, own = psutil.Process(int(sys.argv[1])), os.getpid()
before = {int(pid) for pid in sys.argv[2].split(",") if pid}
seen = {}
closed = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), closed.set()), daemon=True).start()
while not closed.wait(0.5):
    try:
        for p in owner.children(recursive=True):
            if p.pid != own and p.pid not in before:
                seen.setdefault(p.pid, p)
    except psutil.Error:
        pass
left = [p for p in seen.values() if p.is_running()]  # psutil knows a reused pid from the one noted
for p in left:
    try:
        p.terminate()
    except psutil.Error:
        pass
for p in psutil.wait_procs(left, timeout=5)[1]:
    try:
        p.kill()
    except psutil.Error:
        pass
"""


@contextmanager
def children_of_this_block() -> Iterator[None]:
    """Every process started inside this block (and their children) is ended when it ends, or
    when this process dies, even by SIGKILL, which runs no ``finally``. For helpers that are not
    this process's children by the time it exits: a local Ray cluster's agents, reparented once
    its raylet stops, would otherwise outlive the command for minutes."""
    before = ",".join(map(str, sorted(child_pids())))
    guard = subprocess.Popen([sys.executable, "-c", _GUARD, str(os.getpid()), before], stdin=subprocess.PIPE,
                             start_new_session=True)  # Ctrl-C reaches the block, not its guard
    try:
        yield
    finally:
        guard.stdin.close()
        guard.wait()
