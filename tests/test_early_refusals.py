"""Refusals that come before the work, in the user's words (issue 22 §4).

A named pipe given as ``--prompts`` is refused at once (it used to hang the command), layers a
model does not have are refused before the model loads, and a typed path holding a lone
surrogate is named instead of showing the codec error.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from plugins.steering.actions import fit_from_votes
from workbench.context import AppContext
from workbench.errors import ConfigError, DataError
from workbench.loop import read_prompt_file
from workbench.plugins import PluginHost
from workbench.settings import Settings


def test_steer_blind_refuses_a_named_pipe_as_prompts_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "prompts.fifo"
    os.mkfifo(fifo)
    env = {**os.environ, "WORKBENCH_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, "-m", "workbench.cli", "steer", "blind", "--vector", "x=1", "--prompts", str(fifo)],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2 and "named pipe" in done.stderr + done.stdout, done.stderr


def test_prompt_files_go_through_the_safe_opener(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="is a folder"):
        read_prompt_file(tmp_path)
    latin = tmp_path / "prompts.txt"
    latin.write_bytes("café\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        read_prompt_file(latin)
    with pytest.raises(DataError, match="does not exist"):
        read_prompt_file(tmp_path / "missing.txt")
    latin.write_text("one\n\ntwo\n", encoding="utf-8")
    assert read_prompt_file(latin) == ["one", "two"]


def test_layers_a_model_lacks_are_refused_before_it_loads(tmp_path: Path, tiny_checkpoint) -> None:
    ctx = AppContext(Settings(home=tmp_path), plugins=PluginHost(load=False))
    model = str(tiny_checkpoint("llama"))  # 2 layers
    with pytest.raises(ConfigError, match=r"between 1 and 2 \(llama has 2\); got '999'"):
        fit_from_votes(ctx, "s", "mean_diff", "999", model=model)
    with pytest.raises(ConfigError, match="not whole numbers"):
        fit_from_votes(ctx, "s", "mean_diff", "8,x", model=model)
    assert ctx.models == {}  # nothing was loaded for a request that could not run


def test_a_lone_surrogate_in_a_typed_path_is_named(tmp_path: Path) -> None:
    ctx = AppContext(Settings(home=tmp_path), plugins=PluginHost(load=False))
    with pytest.raises(DataError, match="U\\+D800, which cannot be part of a file name"):
        ctx.check_data_path("data\ud800.jsonl")


@pytest.mark.timeout(60)  # each of these used to block forever on a FIFO
def test_interaction_word_and_persona_files_refuse_a_named_pipe(tmp_path: Path) -> None:
    from workbench.lenses.wordlists import read_word_table
    from workbench.sae.interactions import read_interactions
    from workbench.training.persona import trait_counts

    fifo = tmp_path / "trait.jsonl"
    os.mkfifo(fifo)
    for read in (lambda: read_interactions(fifo), lambda: read_word_table(fifo), lambda: trait_counts(tmp_path, ["trait"], 0.5)):
        with pytest.raises(DataError, match="named pipe"):
            read()
