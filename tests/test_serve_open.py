"""``workbench serve --open`` opens the app in the user's browser once it answers (as Jupyter does)."""
from __future__ import annotations

import stat
import time

from test_server import make_home, start_server


def test_only_the_server_started_with_open_hands_its_url_to_the_browser(tmp_path, demo_model_dir, monkeypatch) -> None:
    """No sleep for the "nothing happens" half: a server without ``--open`` is already listening when
    one with ``--open`` starts; by the time the second one's URL reaches the browser (a whole
    server start later), the first would have opened its own long before, so it must not appear."""
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "fake-browser"  # a real executable: Python's webbrowser runs $BROWSER with the URL
    browser.write_text(f'#!/bin/sh\necho "$1" >> {opened}\n')
    browser.chmod(browser.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("BROWSER", str(browser))
    quiet = start_server(make_home(tmp_path / "quiet", demo_model_dir))
    try:
        loud = start_server(make_home(tmp_path / "loud", demo_model_dir), "--open")
        try:
            deadline = time.monotonic() + 60
            while not opened.exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            assert opened.read_text().split() == [loud.url.rstrip("/") + "/"], loud.logs()
        finally:
            loud.stop()
    finally:
        quiet.stop()
