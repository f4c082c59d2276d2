"""A real browser (Debian's chromium under chromedriver, driven by Selenium) on the console of a real cluster.

``console_factory(bootstrap_urls)`` starts ``gafka console`` on a kernel-chosen port; ``browser`` is a headless
Chromium with a fresh profile. Screenshots go to ``$GAFKA_CONSOLE_SCREENSHOTS`` when set (``docs/console`` to
refresh the documentation's pictures), else into the test's temporary directory.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from replication.conftest import cluster_factory

__all__ = ["browser", "cluster_factory", "console_factory", "screenshots"]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
_LISTENING = re.compile(r"event=console_listening url=(\S+)")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
)


@pytest.fixture
def console_factory(tmp_path: Path) -> Iterator[Callable[[Sequence[str]], str]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(bootstrap: Sequence[str]) -> str:
        log_path = tmp_path / f"console-{len(started)}.log"
        command = [sys.executable, "-m", "gafka.cli.main", "console", "--bootstrap", ",".join(bootstrap)]
        with log_path.open("wb") as log_file:
            process = subprocess.Popen([*command, "--listen", "127.0.0.1:0"], stdout=log_file, stderr=subprocess.STDOUT)
        started.append(process)
        deadline = time.monotonic() + 30
        while True:
            match = _LISTENING.search(log_path.read_text(errors="replace"))
            if match:
                url = match.group(1)
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"gafka console did not start:\n{log_path.read_text(errors='replace')}")
            time.sleep(0.05)
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    return url
            if time.monotonic() > deadline:
                raise AssertionError("gafka console does not answer")
            time.sleep(0.05)

    yield start
    for process in started:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if shutil.which(path) is None]
    if missing:
        raise AssertionError(
            f"{', '.join(missing)} missing: apt-get install chromium chromium-driver (scripts/test does)"
        )
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads)})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads  # type: ignore[attr-defined]
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    target = Path(os.environ.get("GAFKA_CONSOLE_SCREENSHOTS") or tmp_path / "screenshots")
    target.mkdir(parents=True, exist_ok=True)
    return target
