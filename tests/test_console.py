"""Only this tool's output reaches the terminal; everything else goes to the run's log file."""

import os
import subprocess
import sys
import textwrap

from tests.conftest import REPO

SCRIPT = textwrap.dedent(
    """
    import logging, os, subprocess, sys, warnings
    from pathlib import Path
    from lightning_critrm import console

    theirs = logging.getLogger("somelib")
    theirs.addHandler(logging.StreamHandler())  # bound to sys.stderr, as libraries do at import
    theirs.setLevel(logging.INFO)
    assert console.send_other_output_to(Path(sys.argv[1]))
    print("ours: summary")
    print("ours: bar", file=console.progress_stream())
    logging.getLogger("lightning_critrm.data").warning("ours: a warning")
    logging.getLogger("lightning_critrm.data").info("ours: an info line")
    theirs.info("theirs: info log")
    warnings.warn("theirs: a warning")
    print("theirs: stderr", file=sys.stderr)
    os.write(1, b"theirs: native stdout\\n")
    subprocess.run([sys.executable, "-c", "print('theirs: child process')"], check=True)
    console.restore_terminal()
    print("ours: after restore")
    assert os.environ.get("VLLM_LOGGING_STREAM") is None
    """
)


def run(tmp_path, **env):
    log = tmp_path / "logs" / "fit.log"
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(log)], cwd=REPO, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
    )
    assert done.returncode == 0, done.stderr
    return done, log


def test_the_terminal_shows_ours_and_the_log_file_keeps_the_rest(tmp_path):
    done, log = run(tmp_path)
    assert done.stdout.splitlines() == ["ours: summary", "ours: after restore"]
    assert done.stderr.splitlines() == ["ours: bar", "warning: ours: a warning", "ours: an info line"]
    text = log.read_text()
    assert text.startswith("==== ") and "lightning_critrm" in text.splitlines()[0]
    for line in ["theirs: info log", "theirs: a warning", "theirs: stderr", "theirs: native stdout",
                 "theirs: child process", "ours: an info line", "ours: a warning"]:
        assert line in text, line
    assert "ours: summary" not in text and "ours: bar" not in text


def test_show_logs_leaves_everything_on_the_terminal(tmp_path):
    script = ("import sys; from pathlib import Path; from lightning_critrm import console; "
              "print(console.send_other_output_to(Path(sys.argv[1]))); print('theirs', file=sys.stderr)")
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "logs" / "fit.log")], cwd=REPO, capture_output=True,
        text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO), "LIGHTNING_CRITRM_SHOW_LOGS": "1"},
    )
    assert (done.stdout, done.stderr) == ("False\n", "theirs\n")
    assert not (tmp_path / "logs").exists()
