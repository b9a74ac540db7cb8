"""The headless Chromium the browser benchmarks drive (Debian's, through Playwright): its path and
flags, as tests/e2e/conftest.py uses them. Scripts in this folder import it as ``browser``."""

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
