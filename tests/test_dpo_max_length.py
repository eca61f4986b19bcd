"""A max_length that would truncate every training pair is refused before a run exists, in numbers."""
from __future__ import annotations

import pytest
from test_training_dpo import write_pairs

from workbench.errors import ConfigError
from workbench.jobs import JobManager
from workbench.models.loading import load_model
from workbench.settings import Settings
from workbench.training.dpo import DPO_JOB, validate_dpo
from workbench.training.pairs import load_pairs, longest_sides


def test_max_length_below_every_pair_is_refused_with_the_shortest_count(tiny_checkpoint, tmp_path) -> None:
    settings = Settings(home=tmp_path / "home")
    manager = JobManager(settings, job_types={"dpo": DPO_JOB})
    model, data = str(tiny_checkpoint("llama")), str(write_pairs(tmp_path / "pairs.jsonl"))
    lengths = longest_sides(load_pairs(data, settings), load_model(model, device="cpu").tokenizer)
    shortest, longest = min(lengths), max(lengths)
    assert 8 < shortest < longest  # the rejected answer is the long one, the topics differ in length
    options = {"model": model, "dataset": data, "held_out_fraction": 0.0}
    with pytest.raises(ConfigError, match=rf"max_length {shortest - 1} would truncate every one of the 8 training pairs: the shortest "
                                          rf"prompt \+ response is {shortest} tokens \(the longest {longest}\)") as err:
        manager.submit("dpo", {**options, "max_length": shortest - 1})
    assert f"Set max_length to at least {shortest}; {longest} keeps every pair whole." in str(err.value)
    assert list(manager.runs_dir.iterdir()) == []
    # Truncating some pairs but not all is the user's call: accepted.
    assert validate_dpo({**options, "max_length": shortest}, settings)["max_length"] == shortest
