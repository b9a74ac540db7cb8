"""The app's background warm-up: once per server process, a low-priority ``python -m toyopt
warmup`` compiles the default preset's methods into toyopt's disk cache, so that their runs can use
the compiled backend (``runs.choose_backend``) without a wait on the page.

The warm-up is a child process: it shares the server's process group (stopping the server's group
stops it), a daemon thread waits for it (no zombie) and kills it after ``WARMUP_SECONDS``, and its
output goes to ``warmup.log`` in toyopt's cache directory. It does not start where no C++ compiler
is found, nor when ``$TOYOPT_WARMUP`` is 0 (the tests set that).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import streamlit as st

from ..compiled import cache_dir, compiler_missing
from ..setups import DEFAULT_SETUP
from . import state

#: Set to 0 to start no warm-up.
WARMUP_ENV = "TOYOPT_WARMUP"
#: The warm-up is killed after this long (cold, a method compiles in well under a minute).
WARMUP_SECONDS = 1800
#: Niceness of the warm-up: the page's own runs come first.
WARMUP_NICE = 10


def command(setup: str = DEFAULT_SETUP) -> list[str]:
    """The warm-up's command line: the setup's methods (those the app opens on), at low priority
    where ``nice`` exists."""
    methods = state.setup_methods(setup)
    warmup = [sys.executable, "-m", "toyopt", "warmup", "--setup", setup, "--method", *methods]
    nice = shutil.which("nice")
    return [nice, "-n", str(WARMUP_NICE), *warmup] if nice else warmup


def disabled() -> str | None:
    """Why no warm-up starts here, or None."""
    if os.environ.get(WARMUP_ENV, "1").strip() == "0":
        return f"${WARMUP_ENV} is 0"
    return compiler_missing()


def log_path() -> Path:
    return cache_dir() / "warmup.log"


def start(setup: str = DEFAULT_SETUP) -> subprocess.Popen | None:
    """Start the warm-up (see the module docstring); None when ``disabled``."""
    if disabled():
        return None
    log = log_path()
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # one core: the other serves the page
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            command(setup), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env
        )
    threading.Thread(target=_reap, args=(proc,), name="toyopt-warmup-reaper", daemon=True).start()
    return proc


def _reap(proc: subprocess.Popen) -> None:
    """Wait for the warm-up; kill it after WARMUP_SECONDS (then wait again: no zombie)."""
    try:
        proc.wait(timeout=WARMUP_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@st.cache_resource(show_spinner=False)
def background() -> subprocess.Popen | None:
    """The server's one warm-up (started on the first page load of the process)."""
    return start()
