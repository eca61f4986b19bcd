"""The DPA rejection-sampling fine-tuning job, run through the real job runner on a tiny checkpoint."""
from __future__ import annotations

import json

import pytest

from workbench.errors import ConfigError, DataError, ModelError
from workbench.jobs import JobManager
from workbench.models.loading import load_model
from workbench.preference.reward_heads import AspectComparison, reward_models_dir, train_reward_model
from workbench.settings import Settings
from workbench.steering.rsf import RSF_JOB


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_checkpoint):
    settings = Settings(home=tmp_path_factory.mktemp("rsf-home"))
    settings.ensure_dirs()
    lm = load_model(tiny_checkpoint("llama"))
    comps = [AspectComparison(f"Q{i}", "fox " * (i % 5 + 6), "dog", "verbosity", "A") if i % 2 else
             AspectComparison(f"Q{i}", "dog", "fox " * (i % 5 + 6), "verbosity", "B") for i in range(12)]
    comps += [AspectComparison(f"Q{i}", "The fox.", "the fox", "formality", "A") if i % 2 else
              AspectComparison(f"Q{i}", "the dog", "The dog.", "formality", "B") for i in range(12)]
    rm = train_reward_model(lm, name="tiny-rm", layer=2, comparisons=comps)
    rm.save(reward_models_dir(settings))
    return settings, JobManager(settings, job_types={RSF_JOB.name: RSF_JOB})


def test_rsf_job_runs_an_iteration_and_outputs_a_loadable_adapter(setup):
    settings, jobs = setup
    run = jobs.submit("dpa-rsf", {"reward_model": "tiny-rm", "prompts": ["Hello", "The fox", "A dog"], "n": 3,
                                  "max_new_tokens": 6, "iterations": 2, "batch_size": 2, "temperature": 1.5})
    manifest = run.wait(timeout=300)
    assert manifest.status == "finished", run.log_tail(60)
    metrics = run.metrics()
    assert [m["iteration"] for m in metrics] == [1, 2]
    assert all(m["kept"] == 3 and m["best_score"] >= m["mean_score"] for m in metrics)
    assert {"reward_verbosity", "reward_formality", "loss"} <= set(metrics[0])
    assert (run.dir / "checkpoints" / "checkpoint-2" / "rsf_state.json").exists()
    adapter = run.output_path
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == run.config["model"]
    tuned = load_model(adapter)  # the catalog's run:<id> entry loads the same way
    assert tuned.format == "peft"
    assert manifest.summary["iterations"] == 2 and manifest.summary["attributes"] == ["formality", "verbosity"]


def test_rsf_config_is_validated_before_a_run_exists(setup):
    settings, jobs = setup
    before = len(jobs.runs())
    with pytest.raises(ModelError, match="No reward model named 'nope'"):
        jobs.submit("dpa-rsf", {"reward_model": "nope", "prompts": ["Hi"]})
    with pytest.raises(DataError, match="prompts"):
        jobs.submit("dpa-rsf", {"reward_model": "tiny-rm", "prompts": []})
    with pytest.raises(ConfigError, match="Unknown RSF option"):
        jobs.submit("dpa-rsf", {"reward_model": "tiny-rm", "prompts": ["Hi"], "epochz": 2})
    with pytest.raises(ConfigError, match="at least 2"):
        jobs.submit("dpa-rsf", {"reward_model": "tiny-rm", "prompts": ["Hi"], "n": 1})
    assert len(jobs.runs()) == before
