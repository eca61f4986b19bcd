"""Import refusals from the security probe (issue 22 §4), on real files and a real SQLite store.

A dot-file imported without a name gets a derived name or is told to pass ``--name`` (it used
to be refused as "The dataset name '' cannot be used"); an HH-RLHF transcript without an
'Assistant:' turn is compared with HH-RLHF, not TRL; a NUL byte in a CSV cell is refused; the
users file and a job's --config are read through the readers' safe opener.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from workbench.context import AppContext
from workbench.data.readers import read_pairs
from workbench.errors import ConfigError, DataError
from workbench.jobs.commands import job_options
from workbench.plugins import PluginHost
from workbench.settings import Settings, load_users

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


def test_a_transcript_without_an_assistant_turn_is_told_about_hh_rlhf(tmp_path: Path) -> None:
    path = tmp_path / "hh.jsonl"
    path.write_text(json.dumps({"chosen": "\n\nHuman: Hi there", "rejected": "\n\nHuman: Hi there"}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="format 'hh-rlhf' needs chosen/rejected as full transcripts") as err:
        read_pairs(path)
    assert "'trl'" not in str(err.value) and "line 1" in str(err.value)


def test_a_nul_byte_in_a_csv_cell_is_refused_with_its_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv"
    path.write_text('prompt,chosen,rejected\n"Say hi.",Hi!,No.\n"Say bye.","By\x00e",No.\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"line 3, field 'chosen': holds a NUL byte"):
        read_pairs(path)
    path.write_text('prompt,chosen,rejected\n"Say hi.",Hi!,No.\n', encoding="utf-8")
    assert read_pairs(path)[0].chosen == "Hi!"


@pytest.mark.timeout(30)  # reading a FIFO used to block forever
def test_users_and_config_files_refuse_a_named_pipe_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "named.fifo"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="users file: .*named pipe"):
        load_users(fifo)
    with pytest.raises(ConfigError, match="config file: .*named pipe"):
        job_options(fifo, None, {})
