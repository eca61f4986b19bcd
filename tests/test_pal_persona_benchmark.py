"""benchmarks/pal_persona.py reads the persona trait files from --data, not only from ../shared/data/persona."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from workbench.training.persona import PersonaSpec

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "pal_persona.py"


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300)


def write_trait(folder: Path, trait: str, yes: int, no: int) -> None:
    rows = [{"statement": f"{trait} statement {i}", "label_confidence": 0.95, "answer_matching_behavior": " Yes" if i < yes else " No"}
            for i in range(yes + no)]
    (folder / f"{trait}.jsonl").write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")


def test_data_folder_is_the_one_given(tmp_path: Path) -> None:
    res = run_script("--data", str(tmp_path / "nope"))
    assert res.returncode == 2 and f"--data {tmp_path / 'nope'}: not a folder" in res.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    res = run_script("--data", str(empty), "--seeds", "0")  # the default traits are looked up there, not in ../shared
    assert res.returncode == 2 and "persona trait file not found" in res.stderr and str(empty) in res.stderr, res.stderr


def test_eligible_traits_come_from_the_data_folder(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("pal_persona", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    half = PersonaSpec().statements_per_trait // 2
    write_trait(tmp_path, "enough", half, half)
    write_trait(tmp_path, "one_sided", 2 * half, half - 1)
    assert module.eligible_traits(PersonaSpec(), tmp_path) == ["enough"]
