"""Start the app with `streamlit run` on a free loopback port for the browser journeys.

``streamlit_server`` is a factory: each call starts one more server (its own process group) and
returns a :class:`Server`; every server it started is stopped at the end of the session. ``app_url``
is the shared server of the journeys; a test that needs a server of its own (the concurrency test)
calls the factory itself."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
START_TIMEOUT = 60.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """One `streamlit run app.py` on 127.0.0.1."""

    url: str
    proc: subprocess.Popen

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=20)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


def start_server(timeout: float = START_TIMEOUT) -> Server:
    """Start the app on a free loopback port and wait until its health endpoint answers."""
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "app.py",
        "--server.headless",
        "true",
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
    ]
    # No background warm-up (a compile on the shared cores) unless the caller's environment asks.
    env = {**os.environ, "TOYOPT_WARMUP": os.environ.get("TOYOPT_WARMUP", "0")}
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True, env=env
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return Server(url, proc)
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=20)
            raise RuntimeError(f"streamlit did not start: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.3)


@pytest.fixture(scope="session")
def streamlit_server():
    started: list[Server] = []

    def make() -> Server:
        server = start_server()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def app_url(streamlit_server):
    return streamlit_server().url


@pytest.fixture(scope="session")
def chromium_options() -> dict:
    """Keyword arguments for ``playwright.chromium.launch``: the Debian Chromium, headless."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium)")
    return {"executable_path": CHROMIUM, "args": list(CHROMIUM_ARGS)}


@pytest.fixture(scope="session")
def browser(chromium_options):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(**chromium_options)
        yield b
        b.close()
