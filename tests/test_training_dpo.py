"""DPO jobs end to end: demo-model LoRA run, 2-process gloo run with cancel/resume, bad configs."""
from __future__ import annotations

import json
import time

import pytest

from workbench.errors import ConfigError, DataError, ModelError
from workbench.jobs import JobManager
from workbench.settings import Settings
from workbench.training.dpo import DPO_JOB, falling_logps_warning

TOPICS = ["the sky", "a cat", "bread", "the sea", "music", "rain", "a fox", "trees"]


def write_pairs(path, n=8, labelled=True):
    with open(path, "w", encoding="utf-8") as fh:
        for t in TOPICS[:n]:
            row = {"prompt": f"Describe {t} in one short sentence.", "chosen": f"{t.capitalize()} is lovely.",
                   "rejected": "I cannot answer that, sorry. As an AI I do not have opinions on anything at all."}
            if not labelled:
                row = {"prompt": row["prompt"], "response_a": row["chosen"], "response_b": row["rejected"]}
            fh.write(json.dumps(row) + "\n")
    return path


@pytest.fixture
def manager(tmp_path, session_home):
    # Share the session home's converted demo model through the model root, with a fresh runs dir.
    return JobManager(Settings(home=tmp_path / "home", model_roots=[session_home / "models"]), job_types={"dpo": DPO_JOB})


# CI machines are small and busy: one intra-op thread per job process avoids oversubscription.
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


@pytest.mark.demo_model
def test_two_step_lora_run_on_demo_model(manager, demo_model_dir, demo_lm, tmp_path):
    from workbench.models.catalog import scan_catalog
    from workbench.models.loading import load_model
    from workbench.training.logprobs import preference_margins
    from workbench.training.pairs import load_pairs

    data = write_pairs(tmp_path / "pairs.jsonl", n=2)
    run = manager.submit("dpo", {
        "model": str(demo_model_dir), "dataset": str(data), "max_steps": 2, "batch_size": 1, "learning_rate": 1e-3,
        "max_length": 64, "held_out_fraction": 0.0, "lora_r": 8, "n_samples": 1, "sample_max_new_tokens": 4,
    }, env=ONE_THREAD)
    m = run.wait(600)
    assert m.status == "finished", run.log_tail(60)
    assert m.output == "adapter" and (run.output_path / "adapter_config.json").exists()
    rows = [r for r in run.metrics() if "loss" in r]
    assert [r["step"] for r in rows] == [1, 2]
    assert {"rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "logps/chosen", "logps/rejected"} <= set(rows[0])
    train = m.summary["train"]
    assert train["n"] == 2 and train["mean_logp_margin_after"] > train["mean_logp_margin_before"]
    sample = json.loads((run.dir / "samples.jsonl").read_text().splitlines()[0])
    assert {"prompt", "before", "after", "chosen", "rejected"} <= set(sample)

    # The adapter is in the catalog and loads on its base; it raises the margin on its training pairs.
    entry = next(e for e in scan_catalog(manager.settings) if e.name == f"run:{run.id}")
    assert entry.format == "peft" and entry.source == "run"
    tuned = load_model(entry.path)  # base found from the adapter's config, adapter merged
    pairs = load_pairs(str(data), manager.settings)
    args = ([p.prompt for p in pairs], [p.chosen for p in pairs], [p.rejected for p in pairs])
    after = preference_margins(tuned.model, tuned.tokenizer, *args)
    before = preference_margins(demo_lm.model, demo_lm.tokenizer, *args)
    assert (after > before + 1e-3).all(), (before, after)


def test_two_process_gloo_run_cancels_and_resumes(manager, tiny_checkpoint, tmp_path):
    data = write_pairs(tmp_path / "pairs.jsonl")
    run = manager.submit("dpo", {
        "model": str(tiny_checkpoint("llama")), "dataset": str(data), "max_steps": 30, "batch_size": 1, "learning_rate": 1e-3,
        "max_length": 112, "held_out_fraction": 0.25, "num_processes": 2, "save_steps": 1000, "n_samples": 1, "sample_max_new_tokens": 4,
    })
    deadline = time.monotonic() + 300
    while (run.progress().get("step") or 0) < 2:
        assert run.is_active(), run.log_tail(60)
        assert time.monotonic() < deadline
        time.sleep(0.05)
    run.cancel()
    m = run.wait(300)
    assert m.status == "cancelled", run.log_tail(60)
    assert m.summary == {"num_processes": 2, "backend": "gloo"}
    log = run.log_tail(400)
    assert "process 1 of 2" in log and "process 2 of 2" in log
    ckpt = run.latest_checkpoint()
    stopped = int(ckpt.name.split("-")[1])
    assert 2 <= stopped < 30 and (ckpt / "adapter_model.safetensors").exists()
    assert run.output_path is None

    manager.resume(run.id)
    m = run.wait(600)
    assert m.status == "finished", run.log_tail(60)
    assert f"resuming from {ckpt}" in run.log_tail(400)
    steps = [r["step"] for r in run.metrics() if "loss" in r]
    assert steps == list(range(1, 31))  # no step repeated or skipped across the two attempts
    held, train = m.summary["held_out"]["n"], m.summary["train"]["n"]
    assert m.attempts == 2 and held >= 1 and held + train == 8
    p = run.progress()
    assert (p["stage"], p["step"], p["total"]) == ("train", 30, 30)  # a finished run shows its steps, not "1/1"
    assert m.summary["held_out"]["logp_chosen_per_token_after"] < 0  # the log-prob report of the same held-out pairs

    from plugins.finetune import actions
    from plugins.finetune.figures import dpo_figure
    from workbench.app import job_ui

    assert [r[0] for r in actions.before_after_rows(run)] == ["held_out", "train"]
    assert len(actions.samples_rows(run)) == 1 and "finished" in job_ui.status_markdown(run)
    logged = [r for r in run.metrics() if "loss" in r]
    loss_curve = dpo_figure(run.metrics()).axes[0].lines[0]  # the loss panel draws the logged losses by step
    assert logged and list(loss_curve.get_xdata()) == [r["step"] for r in logged]
    assert list(loss_curve.get_ydata()) == [r["loss"] for r in logged]


def test_bad_configs_fail_before_a_run_exists(manager, tiny_checkpoint, tmp_path):
    model = str(tiny_checkpoint("llama"))
    data = str(write_pairs(tmp_path / "pairs.jsonl"))
    with pytest.raises(DataError, match="missing.jsonl: does not exist"):
        manager.submit("dpo", {"model": model, "dataset": str(tmp_path / "missing.jsonl")})
    with pytest.raises(DataError, match="neither a file nor a stored dataset"):
        manager.submit("dpo", {"model": model, "dataset": "no-such-dataset"})
    with pytest.raises(ModelError, match="Unknown model 'no-such-model'"):
        manager.submit("dpo", {"model": "no-such-model", "dataset": data})
    with pytest.raises(ConfigError, match=r"Batch size impossible: one optimizer step needs 16 pairs .* only 8 labelled"):
        manager.submit("dpo", {"model": model, "dataset": data, "batch_size": 8, "gradient_accumulation_steps": 2, "held_out_fraction": 0.0})
    with pytest.raises(ConfigError, match="did you mean 'learning_rate'"):
        manager.submit("dpo", {"model": model, "dataset": data, "learning_rat": 1e-3})
    with pytest.raises(DataError, match="None of the 8 pairs is labelled"):
        manager.submit("dpo", {"model": model, "dataset": str(write_pairs(tmp_path / "u.jsonl", labelled=False))})
    with pytest.raises(ConfigError, match="deepspeed needs GPUs"):
        manager.submit("dpo", {"model": model, "dataset": data, "num_processes": 2, "distributed": "deepspeed", "device": "cpu"})
    assert list(manager.runs_dir.iterdir()) == []


def test_falling_logps_warning_compares_the_same_pairs_per_token():
    import numpy as np

    from workbench.training.dpo import _pair_summary

    # Same 2 pairs before/after: both responses lose log-probability per token, the margin still grows.
    before = {"chosen": np.array([-10.0, -20.0]), "rejected": np.array([-12.0, -22.0]),
              "chosen_tokens": np.array([5.0, 10.0]), "rejected_tokens": np.array([4.0, 11.0])}
    after = {**before, "chosen": np.array([-12.0, -24.0]), "rejected": np.array([-20.0, -30.0])}
    falling = {"held_out": _pair_summary(before, after, beta=0.1)}
    s = falling["held_out"]
    assert s["logp_chosen_per_token_before"] == pytest.approx(-2.0) and s["logp_chosen_per_token_after"] == pytest.approx(-2.4)
    assert s["logp_margin_accuracy_after"] == 1.0 and s["mean_logp_margin_after"] > s["mean_logp_margin_before"]
    warning = falling_logps_warning(falling)
    assert warning and "same 2 held-out pairs" in warning and "chosen -2.00 → -2.40 per token (sum -15.0 → -18.0)" in warning
    rising = {"held_out": _pair_summary(after, before, beta=0.1)}
    assert falling_logps_warning(rising) is None
    # Longer responses alone (same per-token log-prob, larger sums) are not a fall.
    longer = {**before, "chosen": before["chosen"] * 2, "rejected": before["rejected"] * 2,
              "chosen_tokens": before["chosen_tokens"] * 2, "rejected_tokens": before["rejected_tokens"] * 2}
    assert falling_logps_warning({"held_out": _pair_summary(before, longer, beta=0.1)}) is None
    assert falling_logps_warning({}) is None


def test_cancel_mid_run_stops_at_the_next_step(manager, tiny_checkpoint, tmp_path):
    """Counted in training steps, not seconds (a shared CI machine's speed varies): DPO checks for
    a cancel after every micro-batch, so it ends at most a step after the one under way."""
    from workbench.training.pairs import load_pairs, run_split_ids

    data = write_pairs(tmp_path / "pairs.jsonl")
    run = manager.submit("dpo", {
        "model": str(tiny_checkpoint("llama")), "dataset": str(data), "max_steps": 10_000, "batch_size": 1, "gradient_accumulation_steps": 2,
        "max_length": 112, "held_out_fraction": 0.25, "save_steps": 10_000, "n_samples": 0,
    }, env=ONE_THREAD)
    deadline = time.monotonic() + 300
    while (run.progress().get("step") or 0) < 2:
        assert run.is_active(), run.log_tail(60)
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert run.progress()["stage"] == "train"
    run.cancel()
    step_at_cancel = run.progress()["step"]
    m = run.wait(300)
    assert m.status == "cancelled", run.log_tail(60)
    assert run.progress()["step"] <= step_at_cancel + 1, (step_at_cancel, run.progress(), run.log_tail(60))
    assert run.latest_checkpoint() is not None  # it saved where it stopped, so resume continues from there
    # A dataset run saved its split at start, as a session run does: what `workbench compare` splits pairs by.
    ids = run_split_ids(run.dir)
    assert ids is not None and ids.held_out and not ids.train & ids.held_out
    assert ids.train | ids.held_out == {p.id for p in load_pairs(str(data), manager.settings)}


def test_generated_accelerate_configs_load_in_accelerate(tmp_path):
    from accelerate.commands.config.config_args import load_config_from_file

    from workbench.training.launch import accelerate_config, write_accelerate_config

    for mode, expected in (("ddp", "MULTI_GPU"), ("deepspeed", "DEEPSPEED"), ("fsdp", "FSDP")):
        cfg = accelerate_config(8, cpu=False, distributed=mode, num_machines=2, machine_rank=1, main_process_ip="10.0.0.1")
        loaded = load_config_from_file(str(write_accelerate_config(tmp_path / f"{mode}.yaml", cfg)))
        assert loaded.distributed_type.value == expected and loaded.num_processes == 8 and loaded.machine_rank == 1
    assert loaded.fsdp_config["fsdp_version"] == 2
    with pytest.raises(ConfigError, match="main_process_ip"):
        accelerate_config(4, cpu=False, num_machines=2)
