"""Import refusals from the security probe (issue 22 §4), on real files and a real SQLite store.

A dot-file imported without a name gets a derived name or is told to pass ``--name`` (it used
to be refused as "The dataset name '' cannot be used").
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench.context import AppContext
from workbench.errors import DataError
from workbench.plugins import PluginHost
from workbench.settings import Settings

ROW = {"prompt": "Say hi.", "chosen": "Hi!", "rejected": "Go away."}


def test_a_dot_file_gets_a_name_or_is_told_to_pass_one(tmp_path: Path) -> None:
    ctx = AppContext(Settings(home=tmp_path / "home"), plugins=PluginHost(load=False))
    hidden = tmp_path / ".pairs.jsonl"
    hidden.write_text(json.dumps(ROW) + "\n", encoding="utf-8")
    assert ctx.import_dataset(hidden) == "pairs"
    dotted = tmp_path / ".jsonl"
    dotted.write_text(json.dumps(ROW) + "\n", encoding="utf-8")
    assert ctx.import_dataset(dotted) == "jsonl"
    bare = tmp_path / "..."
    bare.write_text(json.dumps(ROW) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"\.\.\.: no dataset name can be made") as err:
        ctx.import_dataset(bare, format="trl")
    assert "--name NAME" in (err.value.hint or "")
