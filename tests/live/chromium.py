"""Headless Chromium in the background: it loads a page, and prints the DOM once it has loaded.

The browser tests' one-shot `rendered_dom` runs on virtual time, which stands still while a
request is open, and an EventSource's always is; here time is real, and the page decides when
it has loaded (page.py holds back its last image until the test is done with it).
"""

import threading
from pathlib import Path

from tests.browser.conftest import RUN_TIMEOUT, CommandFailed, run


class BackgroundPage:
    def __init__(self, binary: str, profile: Path, url: str) -> None:
        self._command = [
            binary,
            "--headless=new",
            "--no-sandbox",  # needed as root, and in most containers
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--dump-dom",
            url,
        ]
        self._dom: str | None = None
        self._error: CommandFailed | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            self._dom = run(self._command, timeout=RUN_TIMEOUT)
        except CommandFailed as error:
            self._error = error

    def dom(self) -> str:
        """The DOM Chromium printed; waits for it (Chromium is killed after RUN_TIMEOUT)."""
        self._thread.join(RUN_TIMEOUT + 10)
        assert not self._thread.is_alive(), "Chromium did not finish"
        if self._error is not None:
            raise self._error
        assert self._dom is not None
        return self._dom
