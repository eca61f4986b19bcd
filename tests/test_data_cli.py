"""``workbench data show FILE`` previews an import (detected format, counts) without importing,
and ``workbench data list`` shows the format a dataset was read as — through the real CLI."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures" / "data"


def wb(*args: str, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workbench.cli", *args, "--home", str(home)], capture_output=True, text=True, timeout=300)


def test_show_a_file_previews_without_importing(tmp_path):
    home = tmp_path / "home"
    out = wb("data", "show", str(FIXTURES / "hh_rlhf.jsonl"), "--limit", "1", home=home)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    n = sum(1 for line in (FIXTURES / "hh_rlhf.jsonl").read_text().splitlines() if line.strip())
    assert "format: hh-rlhf (detected)" in lines and f"pairs: {n} (A {n}); prompts: {n}" in out.stdout
    assert "(not imported)" in lines[0] and json.loads(lines[-1])["preferred"] == "A"
    assert sum(line.startswith("{") for line in lines) == 1
    listing = wb("data", "list", home=home).stdout.splitlines()
    assert not any("hh_rlhf" in line for line in listing)  # nothing was imported

    unlabeled = wb("data", "show", str(FIXTURES / "unlabeled.csv"), "--limit", "0", home=home)
    assert unlabeled.returncode == 0 and "format: unlabeled (detected)" in unlabeled.stdout and "unlabeled " in unlabeled.stdout
    forced = wb("data", "show", str(FIXTURES / "trl_plain.jsonl"), "--format", "trl", "--limit", "0", home=home)
    assert forced.returncode == 0 and "format: trl\n" in forced.stdout


def test_show_a_bad_file_names_the_line_and_a_stored_name_wins(tmp_path):
    home = tmp_path / "home"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n{"prompt": "p2", "chosen": "a2"}\n')
    out = wb("data", "show", str(bad), home=home)
    assert out.returncode == 2 and "line 2" in out.stderr and "Traceback" not in out.stderr
    assert wb("data", "import", str(FIXTURES / "trl_plain.jsonl"), "--name", "trl_plain", home=home).returncode == 0
    stored = wb("data", "show", "trl_plain", "--limit", "1", home=home)  # a dataset name, not the file in the cwd
    assert stored.returncode == 0 and "not imported" not in stored.stdout and len(stored.stdout.splitlines()) == 1


def test_list_shows_the_detected_format_not_auto(tmp_path):
    home = tmp_path / "home"
    for name in ("hh_rlhf.jsonl", "sharegpt.json"):
        assert wb("data", "import", str(FIXTURES / name), home=home).returncode == 0
    rows = {line.split()[0]: line.split()[2] for line in wb("data", "list", home=home).stdout.splitlines()[1:]}
    assert rows["hh_rlhf"] == "hh-rlhf" and rows["sharegpt"] == "sharegpt"
    assert "auto" not in rows.values()
