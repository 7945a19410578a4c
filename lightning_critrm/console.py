"""What reaches the terminal: this tool's progress bars, notices, summaries and errors.

Everything else a run prints (vLLM's engine processes, transformers and datasets, Lightning's info
logs, native warnings from C++) goes to a log file in the run folder. Those are hundreds of lines
that matter when something goes wrong, not while it goes right. ``--show_logs``, or
``LIGHTNING_CRITRM_SHOW_LOGS=1`` in the environment, shows them on the terminal as they come.

How: file descriptors 1 and 2 of the process point at the log file, so child processes and native
code write there. Python's ``sys.stdout`` is rebound to the terminal, so ``print`` and Lightning's
progress bar reach it. ``sys.stderr`` stays on the file: logging handlers, warnings and other
libraries' progress bars write there.
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, TextIO

SHOW_LOGS_ENV = "LIGHTNING_CRITRM_SHOW_LOGS"
# The package's own logger: info lines and warnings reach the terminal, debug lines the log file.
PACKAGE_LOGGER = "lightning_critrm"


def show_logs_requested() -> bool:
    return os.environ.get(SHOW_LOGS_ENV, "").strip().lower() in ("1", "true", "yes", "on")


@dataclass
class _Redirect:
    log_path: Path
    saved_fds: tuple[int, int]
    terminal_out: TextIO
    terminal_err: TextIO
    previous_stdout: TextIO
    previous_env: dict[str, Optional[str]]


_active: Optional[_Redirect] = None
_handlers: list[logging.Handler] = []


def log_path() -> Optional[Path]:
    """The file third-party output goes to, while it is redirected."""
    return _active.log_path if _active else None


def progress_stream() -> Optional[TextIO]:
    """Where this tool's own progress bars write (None: tqdm's default, stderr)."""
    return _active.terminal_err if _active else None


def send_other_output_to(path: Path, package_logs_to_terminal: bool = True) -> bool:
    """Send everything but this tool's own output to ``path`` (appended, with a header line per
    command) until ``restore_terminal``. The package's own log lines go to the file and, unless
    ``package_logs_to_terminal`` is False (ranks other than 0), to the terminal. Does nothing, and returns
    False, when showing them was asked for, when already redirected, or when stdout/stderr are not the
    process's own file
    descriptors 1 and 2 (a test harness capturing them)."""
    global _active
    if _active is not None or show_logs_requested():
        return False
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        if sys.stdout.fileno() != 1 or sys.stderr.fileno() != 2:
            return False
    except (AttributeError, OSError, ValueError):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    log_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    command = shlex.join([Path(sys.executable).name, "-m", "lightning_critrm", *sys.argv[1:]])
    os.write(log_fd, f"==== {time.strftime('%Y-%m-%d %H:%M:%S')} pid {os.getpid()}: {command}\n".encode())
    saved = (os.dup(1), os.dup(2))
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    terminal_out = os.fdopen(os.dup(1), "w", buffering=1, encoding=encoding, errors="replace")
    terminal_err = os.fdopen(os.dup(2), "w", buffering=1, encoding=encoding, errors="replace")
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    # vLLM logs to sys.stdout by default, which is the terminal now; its engine processes inherit this.
    env = {"VLLM_LOGGING_STREAM": "ext://sys.stderr"}
    redirect = _Redirect(path, saved, terminal_out, terminal_err, sys.stdout,
                         {k: os.environ.get(k) for k in env})
    os.environ.update(env)
    sys.stdout = terminal_out
    _rich_console_to(sys.stderr)  # Lightning's model summary table: into the file
    to_file = logging.StreamHandler(sys.stderr)
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    _attach_package_handlers(logging.StreamHandler(terminal_err) if package_logs_to_terminal else None,
                             to_file)
    _active = redirect
    return True


def show_package_logs() -> None:
    """Without redirection (``--show_logs``): the package's info lines and warnings on stderr."""
    if _active is None and not _handlers:
        _attach_package_handlers(logging.StreamHandler(sys.stderr))


def _attach_package_handlers(to_terminal: Optional[logging.Handler], *others: logging.Handler) -> None:
    package = logging.getLogger(PACKAGE_LOGGER)
    if to_terminal is not None:
        to_terminal.setLevel(logging.INFO)
        to_terminal.setFormatter(_TerminalFormatter())
    for handler in (h for h in (to_terminal, *others) if h is not None):
        package.addHandler(handler)
        _handlers.append(handler)
    if package.level == logging.NOTSET or package.level > logging.INFO:
        package.setLevel(logging.INFO)  # debug lines stay off unless asked for


def restore_terminal() -> None:
    """Point stdout and stderr back at the terminal and detach the package's log handlers. Safe
    to call when nothing was redirected."""
    global _active
    package = logging.getLogger(PACKAGE_LOGGER)
    while _handlers:
        package.removeHandler(_handlers.pop())
    redirect, _active = _active, None
    if redirect is None:
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os.dup2(redirect.saved_fds[0], 1)
    os.dup2(redirect.saved_fds[1], 2)
    for fd in redirect.saved_fds:
        os.close(fd)
    sys.stdout = redirect.previous_stdout
    _rich_console_to(None)
    for key, value in redirect.previous_env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    for stream in (redirect.terminal_out, redirect.terminal_err):
        stream.close()


class _TerminalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        return message if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {message}"


def _rich_console_to(stream: Optional[TextIO]) -> None:
    """Rich's shared console (None: follow sys.stdout again), if rich is installed."""
    try:
        import rich
    except ImportError:
        return
    rich.get_console().file = stream
