"""The one atomic-write helper: a crash inside the block keeps the old file or folder and leaves no temporaries.

Each kind of result written through ``workbench.files.atomic_path`` is crashed mid-write
here for real (an exception raised inside the block, or an unserialisable value).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from workbench.activations import ActivationCache
from workbench.errors import WorkbenchError
from workbench.files import atomic_path, atomic_write_text, is_temporary
from workbench.preference.reward_heads import RewardModel, list_reward_models, reward_models_dir
from workbench.settings import Settings


class Crash(Exception):
    pass


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_file_crash_keeps_previous_file(tmp_path):
    target = tmp_path / "result.json"
    atomic_write_text(target, "old")
    with pytest.raises(Crash), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise Crash
    assert target.read_text() == "old"
    assert _names(tmp_path) == ["result.json"]
    atomic_write_text(target, "new")
    assert target.read_text() == "new" and _names(tmp_path) == ["result.json"]


def test_folder_crash_keeps_previous_folder_and_success_replaces_it(tmp_path):
    target = tmp_path / "run"
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "a.txt").write_text("old")
    with pytest.raises(Crash), atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "a.txt").write_text("half")
        raise Crash
    assert (target / "a.txt").read_text() == "old" and _names(tmp_path) == ["run"]
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "b.txt").write_text("new")
    assert _names(target) == ["b.txt"] and _names(tmp_path) == ["run"]


def test_crash_removes_parent_folders_it_created(tmp_path):
    with pytest.raises(Crash), atomic_path(tmp_path / "x" / "y" / "f.txt") as tmp:
        tmp.write_text("half")
        raise Crash
    assert _names(tmp_path) == []


def test_keep_existing_discards_the_second_writer(tmp_path):
    target = tmp_path / "entry"
    with atomic_path(target, keep_existing=True) as first, atomic_path(target, keep_existing=True) as second:
        first.mkdir(), second.mkdir()
        (first / "v").write_text("first")
        (second / "v").write_text("second")
    # The inner block (second) finished first and won; the outer one found it and was discarded.
    assert (target / "v").read_text() == "second" and _names(tmp_path) == ["entry"]


def test_temporary_names_are_recognised(tmp_path):
    with atomic_path(tmp_path / "run-1") as tmp:
        assert is_temporary(tmp.name)
        tmp.mkdir()
    assert not is_temporary("run-1") and not is_temporary(".hidden")


def test_activation_cache_entry_crash_leaves_nothing(tmp_path):
    cache = ActivationCache(tmp_path)
    with pytest.raises(Crash), cache.writer("a" * 64) as writer:
        writer.array("layer_0", (3, 4), np.float32)[:] = 1.0
        raise Crash
    assert _names(tmp_path) == [] and cache.get("a" * 64) is None
    with pytest.raises(WorkbenchError, match="without commit"), cache.writer("a" * 64) as writer:
        writer.array("layer_0", (3, 4), np.float32)
    assert _names(tmp_path) == []
    with cache.writer("a" * 64) as writer:
        writer.array("layer_0", (3, 4), np.float32)[:] = 2.0
        writer.commit({"n_texts": 3})
    entry = cache.get("a" * 64)
    assert entry is not None and float(entry.arrays["layer_0"].sum()) == 24.0


def test_reward_model_save_crash_keeps_previous_save(tmp_path):
    settings = Settings(home=tmp_path)
    rm = RewardModel("r", "base", "/base", 1, ["a"], ["ridge"], np.ones((1, 4)), np.zeros(1), np.zeros(4), np.ones(4))
    folder = rm.save(reward_models_dir(settings))
    rm.metrics = {"a": {"heldout_pairwise_accuracy": object()}}  # not JSON: the save fails after heads.npz is written
    with pytest.raises(TypeError):
        rm.save(reward_models_dir(settings))
    assert json.loads((folder / "reward_model.json").read_text())["metrics"] == {}
    assert _names(reward_models_dir(settings)) == ["r"]
    assert [row["name"] for row in list_reward_models(settings)] == ["r"]
