"""The command line as a user runs it: real subprocesses, real files, exit codes."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures" / "data"


def wb(*args: str, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "workbench.cli", *args, "--home", str(home)],
        capture_output=True, text=True, timeout=300,
    )


def test_data_import_list_show_export(tmp_path):
    home = tmp_path / "home"
    out = wb("data", "import", str(FIXTURES / "hh_rlhf.jsonl"), "--name", "hh", home=home)
    assert out.returncode == 0, out.stderr
    assert "imported" in out.stdout and "'hh'" in out.stdout
    listing = wb("data", "list", home=home)
    assert "hh" in listing.stdout
    shown = [json.loads(line) for line in wb("data", "show", "hh", "--limit", "2", home=home).stdout.splitlines()]
    assert len(shown) == 2 and shown[0]["preferred"] == "A"
    target = tmp_path / "dpo.jsonl"
    exported = wb("data", "export", "hh", str(target), "--format", "trl-jsonl", home=home)
    assert exported.returncode == 0, exported.stderr
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert rows and {"prompt", "chosen", "rejected"} <= set(rows[0])


def test_bad_file_exits_nonzero_names_the_line_and_imports_nothing(tmp_path):
    home = tmp_path / "home"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n{"prompt": "p2", "chosen": "a2"\n')
    out = wb("data", "import", str(bad), home=home)
    assert out.returncode == 2
    assert "bad.jsonl" in out.stderr and "line 2" in out.stderr and "Traceback" not in out.stderr
    assert "bad" not in wb("data", "list", home=home).stdout.split("\n", 1)[-1]
    missing = wb("data", "import", str(tmp_path / "nope.jsonl"), home=home)
    assert missing.returncode == 2 and "nope.jsonl" in missing.stderr


def test_models_lists_embedded_and_unknown_dataset_is_an_error(tmp_path):
    home = tmp_path / "home"
    out = wb("models", "--json", home=home)
    assert out.returncode == 0, out.stderr
    names = {r["name"] for r in json.loads(out.stdout)}
    assert {"SmolLM2-135M-Instruct", "all-MiniLM-L6-v2"} <= names
    unknown = wb("data", "show", "no-such-dataset", home=home)
    assert unknown.returncode == 2 and "no-such-dataset" in unknown.stderr


def test_public_bind_without_auth_is_refused(tmp_path):
    out = wb("serve", "--host", "0.0.0.0", "--port", "7999", home=tmp_path / "home")
    assert out.returncode == 2 and "WORKBENCH_AUTH" in out.stderr


def test_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "workbench.cli", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    for command in ("serve", "models", "data", "plugins", "setup"):
        assert command in out.stdout


def test_unknown_option_is_a_usage_error_not_a_traceback(tmp_path):
    out = wb("data", "list", "--bogus", home=tmp_path)
    assert out.returncode == 2
    assert "No such option: --bogus" in out.stderr and "Traceback" not in out.stderr + out.stdout
