"""``workbench serve --open`` opens the app in the user's browser once it answers (as Jupyter does)."""
from __future__ import annotations

import stat
import time

from test_server import make_home, start_server


def test_open_flag_hands_the_url_to_the_browser_once_listening(tmp_path, demo_model_dir, monkeypatch) -> None:
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "fake-browser"  # a real executable: Python's webbrowser runs $BROWSER with the URL
    browser.write_text(f'#!/bin/sh\necho "$1" >> {opened}\n')
    browser.chmod(browser.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("BROWSER", str(browser))
    srv = start_server(make_home(tmp_path, demo_model_dir), "--open")
    try:
        deadline = time.monotonic() + 60
        while not opened.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert opened.read_text().split() == [srv.url.rstrip("/") + "/"], srv.logs()
    finally:
        srv.stop()


def test_without_open_no_browser_is_started(tmp_path, demo_model_dir, monkeypatch) -> None:
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "fake-browser"
    browser.write_text(f'#!/bin/sh\necho "$1" >> {opened}\n')
    browser.chmod(browser.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("BROWSER", str(browser))
    srv = start_server(make_home(tmp_path, demo_model_dir))
    try:
        time.sleep(2)
        assert not opened.exists()
    finally:
        srv.stop()
