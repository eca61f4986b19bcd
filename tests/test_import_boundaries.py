"""The quick commands load no heavy library (issue 23 §1).

Each command runs through ``workbench.cli.main`` in a fresh interpreter with an empty
workbench home; afterwards ``sys.modules`` must hold none of torch, scipy, transformers or
gradio. A package ``__init__`` or a context attribute that imports one eagerly fails here.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "scipy", "transformers", "gradio")

PROBE = f"""
import json, sys
HEAVY = {HEAVY!r}
sys.argv = ["workbench", *json.loads(sys.argv[1])]
code = 0
if len(sys.argv) > 1:
    from workbench.cli import main
    try:
        main()
    except SystemExit as exc:
        code = exc.code or 0
else:
    import workbench.cli
print("\\nLOADED=" + json.dumps({{"code": code, "heavy": sorted(m for m in HEAVY if m in sys.modules)}}))
"""


def loaded_heavy(args: list[str], home: Path) -> list[str]:
    """Run one command in a fresh interpreter; the heavy modules it left in ``sys.modules``."""
    env = {**os.environ, "WORKBENCH_HOME": str(home)}
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.rsplit("LOADED=", 1)[1])
    assert report["code"] == 0, proc.stdout + proc.stderr
    return report["heavy"]


@pytest.mark.parametrize("args", [[], ["data", "list"], ["runs", "list"], ["plugins"], ["label", "sessions"]], ids=" ".join)
def test_quick_commands_load_no_heavy_library(args: list[str], tmp_path: Path) -> None:
    assert loaded_heavy(args, tmp_path) == []

