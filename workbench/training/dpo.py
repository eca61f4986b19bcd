"""DPO fine-tuning (TRL ``DPOTrainer``, LoRA or full) as a job, with a before/after report.

``validate_dpo`` checks everything it can before a run exists (dataset, model, batch size);
``run_dpo`` runs in the job worker: it trains in-process, or starts ``accelerate launch``
for several processes (whose ranks run ``python -m workbench.training.dpo <run_dir>``), then
evaluates the result on held-out pairs and writes sample generations side by side.
"""
from __future__ import annotations

import dataclasses
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from workbench.errors import ConfigError, ModelError
from workbench.jobs import manifest as files
from workbench.jobs.context import JobCancelled, JobContext
from workbench.jobs.registry import JobType, check_options
from workbench.settings import Settings

DEFAULTS: dict[str, Any] = {
    "model": "SmolLM2-135M-Instruct", "dataset": None, "format": "auto",
    "method": "lora", "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.0, "target_modules": "all-linear",
    "beta": 0.1, "loss_type": "sigmoid", "learning_rate": 5e-5, "max_steps": 100, "num_epochs": 1.0,
    "batch_size": 2, "gradient_accumulation_steps": 1, "max_length": 512,
    "precompute_ref_log_probs": False, "held_out_fraction": 0.1, "save_steps": 50, "logging_steps": 1, "seed": 0,
    "num_processes": 1, "distributed": "ddp", "zero_stage": 2, "num_machines": 1, "machine_rank": 0,
    "main_process_ip": None, "main_process_port": None,
    "device": "auto", "n_samples": 4, "sample_max_new_tokens": 48, "eval_batch_size": 8, "eval_max_pairs": 64,
}
POSITIVE_INT = ("lora_r", "batch_size", "gradient_accumulation_steps", "max_length", "save_steps", "logging_steps",
                "num_processes", "num_machines", "eval_batch_size", "sample_max_new_tokens")
OUTPUT = {"lora": "adapter", "full": "model"}


def resolve_model_path(model: str, settings: Settings) -> Path:
    """A trainable Hugging Face folder for a catalog name or a path (the demo GGUF is converted)."""
    from workbench.models.catalog import find_entry, scan_catalog
    from workbench.models.embedded import DEMO_MODEL_NAME, ensure_demo_model

    if model == DEMO_MODEL_NAME:
        return ensure_demo_model(settings)
    entry = find_entry(scan_catalog(settings), model)
    path = entry.path if entry else Path(model).expanduser()
    if not path.exists():
        raise ModelError(f"Unknown model {model!r}: not in the catalog and no such path.",
                         hint="Run `workbench models` to list trainable models, or give the path of a Hugging Face model folder.")
    if not (path.is_dir() and (path / "config.json").exists()):
        kind = "a PEFT adapter" if (path / "adapter_config.json").exists() else "not a Hugging Face model folder"
        raise ModelError(f"{path} is {kind}; DPO starts from a full model folder (config.json + safetensors).",
                         hint="Pick the base model (merge an adapter into it first), or load a GGUF once in the app to convert it.")
    return path.resolve()


def validate_dpo(config: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Fill defaults and check the dataset, model and batch size before any run starts."""
    from workbench.training.pairs import load_pairs, split_pairs

    check_options(config, DEFAULTS, "DPO")
    cfg = {**DEFAULTS, **{k: v for k, v in config.items() if v is not None}}
    for key in POSITIVE_INT:
        if not isinstance(cfg[key], int) or cfg[key] < 1:
            raise ConfigError(f"DPO option {key} must be a whole number ≥ 1, got {cfg[key]!r}.")
    if cfg["method"] not in OUTPUT:
        raise ConfigError(f"Unknown method {cfg['method']!r}.", hint="Use method: lora (PEFT adapter) or full (all weights).")
    if not 0 <= cfg["held_out_fraction"] < 1:
        raise ConfigError(f"held_out_fraction must be in [0, 1), got {cfg['held_out_fraction']}.")
    if cfg["beta"] <= 0 or cfg["learning_rate"] <= 0:
        raise ConfigError("beta and learning_rate must be positive.")
    if cfg["max_steps"] < 1 and cfg["num_epochs"] <= 0:
        raise ConfigError("Set max_steps ≥ 1, or max_steps: 0 with num_epochs > 0.")
    if not cfg["dataset"]:
        raise ConfigError("No dataset given.", hint="Pass a stored dataset name or a pair file (TRL, HH-RLHF, labeling export…).")
    pairs = load_pairs(str(cfg["dataset"]), settings, cfg["format"])
    split = split_pairs(pairs, cfg["held_out_fraction"], cfg["seed"], source=str(cfg["dataset"]))
    per_step = cfg["batch_size"] * cfg["gradient_accumulation_steps"] * cfg["num_processes"]
    if per_step > len(split.train):
        raise ConfigError(
            f"Batch size impossible: one optimizer step needs {per_step} pairs (batch_size {cfg['batch_size']} × "
            f"gradient_accumulation_steps {cfg['gradient_accumulation_steps']} × num_processes {cfg['num_processes']}), "
            f"but only {len(split.train)} labelled training pairs remain after holding out {len(split.held_out)}"
            + (f" and skipping {split.skipped} ties/unlabelled" if split.skipped else "") + ".",
            hint="Lower batch_size or gradient_accumulation_steps, hold out fewer pairs, or label more pairs.")
    if Path(str(cfg["dataset"])).expanduser().exists():
        cfg["dataset"] = str(Path(str(cfg["dataset"])).expanduser().resolve())
    cfg["model_path"] = str(resolve_model_path(str(cfg["model"]), settings))
    from workbench.training.launch import accelerate_config

    if cfg["num_processes"] > 1:
        accelerate_config(cfg["num_processes"], cpu=_use_cpu(cfg["device"]), distributed=cfg["distributed"],
                          num_machines=cfg["num_machines"], main_process_ip=cfg["main_process_ip"])
    cfg["n_train"], cfg["n_held_out"], cfg["n_skipped"] = len(split.train), len(split.held_out), split.skipped
    return cfg


def _use_cpu(device: str) -> bool:
    import torch

    return device == "cpu" or (device == "auto" and not torch.cuda.is_available())


def _split(job: JobContext) -> Any:
    from workbench.training.pairs import load_pairs, split_pairs

    cfg = job.config
    return split_pairs(load_pairs(cfg["dataset"], job.settings, cfg["format"]), cfg["held_out_fraction"], cfg["seed"])


# -- training (one process, or one rank of an accelerate launch) ---------------------------
def train_dpo(job: JobContext) -> bool:
    """Train; returns False when the run was cancelled (a checkpoint was written first)."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from trl import DPOConfig, DPOTrainer

    from workbench.models.loading import load_model
    from workbench.training.callbacks import JobCallback
    from workbench.training.pairs import dpo_rows

    cfg, s = job.config, job.settings
    random.seed(cfg["seed"])
    torch.manual_seed(cfg["seed"])
    lm = load_model(cfg["model_path"], device="cpu", dtype="float32", allow_pickle=s.allow_pickle, trust_remote_code=s.trust_remote_code)
    tok = lm.tokenizer
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    use_cpu = _use_cpu(cfg["device"])
    bf16 = not use_cpu and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    args = DPOConfig(
        output_dir=str(job.run_dir / files.CHECKPOINTS), max_steps=cfg["max_steps"] if cfg["max_steps"] > 0 else -1,
        num_train_epochs=cfg["num_epochs"], per_device_train_batch_size=cfg["batch_size"],
        gradient_accumulation_steps=cfg["gradient_accumulation_steps"], learning_rate=cfg["learning_rate"],
        beta=cfg["beta"], loss_type=[cfg["loss_type"]], max_length=cfg["max_length"],
        precompute_ref_log_probs=cfg["precompute_ref_log_probs"], logging_steps=cfg["logging_steps"],
        save_strategy="steps", save_steps=cfg["save_steps"], report_to=[], seed=cfg["seed"], use_cpu=use_cpu, bf16=bf16,
        disable_tqdm=True, dataloader_num_workers=0, remove_unused_columns=False,
    )
    peft_config = None
    if cfg["method"] == "lora":
        peft_config = LoraConfig(r=cfg["lora_r"], lora_alpha=cfg["lora_alpha"], lora_dropout=cfg["lora_dropout"],
                                 target_modules=cfg["target_modules"], task_type="CAUSAL_LM")
    callback = JobCallback(job)
    trainer = DPOTrainer(model=lm.model, args=args, train_dataset=Dataset.from_list(dpo_rows(_split(job).train, tok)),
                         processing_class=tok, peft_config=peft_config, callbacks=[callback])
    state = trainer.accelerator.state
    job.log.info("process %d of %d (%s, backend %s)", state.process_index + 1, state.num_processes,
                 state.distributed_type.value if hasattr(state.distributed_type, "value") else state.distributed_type, state.backend)
    if trainer.is_world_process_zero():
        job.set_summary(num_processes=state.num_processes, backend=state.backend or "none")
    resume_from = job.latest_checkpoint() if job.resume else None
    if job.resume:
        job.log.info("resuming from %s", resume_from or "the start (no checkpoint was saved)")
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    if callback.cancelled:
        return False
    out = job.run_dir / OUTPUT[cfg["method"]]
    trainer.save_model(str(out))
    if trainer.is_world_process_zero():
        tok.save_pretrained(str(out))
    return True


# -- before/after ---------------------------------------------------------------------------
def _margins_summary(before: Any, after: Any, beta: float) -> dict[str, float]:
    implicit = beta * (after - before)  # β[(log π − log π_ref)(chosen) − (…)(rejected)]
    return {
        "n": int(len(before)), "logp_margin_accuracy_before": float((before > 0).mean()), "logp_margin_accuracy_after": float((after > 0).mean()),
        "mean_logp_margin_before": float(before.mean()), "mean_logp_margin_after": float(after.mean()),
        "implicit_reward_accuracy": float((implicit > 0).mean()), "mean_implicit_reward_margin": float(implicit.mean()),
    }


def evaluate_dpo(job: JobContext) -> dict[str, Any]:
    """Held-out (and training) pair accuracies before vs after, and sample generations side by side."""
    import numpy as np
    from peft import PeftModel

    from workbench.models.generation import SamplingSettings, generate
    from workbench.models.loading import load_model
    from workbench.training.logprobs import preference_margins

    cfg, s = job.config, job.settings
    split = _split(job)
    base = load_model(cfg["model_path"], device=s.device if cfg["device"] == "auto" else cfg["device"], dtype=s.dtype,
                      allow_pickle=s.allow_pickle, trust_remote_code=s.trust_remote_code)
    out_dir = job.run_dir / OUTPUT[cfg["method"]]
    if cfg["method"] == "lora":
        tuned_model = PeftModel.from_pretrained(base.model, str(out_dir)).eval()
        tuned = dataclasses.replace(base, model=tuned_model)
    else:
        tuned = load_model(out_dir, device=s.device if cfg["device"] == "auto" else cfg["device"], dtype=s.dtype)

    def margins(lm: Any, pairs: list[Any]) -> Any:
        if cfg["method"] == "lora" and lm is base:
            with tuned.model.disable_adapter():
                return margins(tuned, pairs)
        return preference_margins(lm.model, lm.tokenizer, [p.prompt for p in pairs], [p.chosen for p in pairs],
                                  [p.rejected for p in pairs], batch_size=cfg["eval_batch_size"], max_length=cfg["max_length"])

    summary: dict[str, Any] = {}
    for name, pairs in (("held_out", split.held_out), ("train", split.train[:cfg["eval_max_pairs"]])):
        if pairs:
            before, after = margins(base, pairs), margins(tuned, pairs)
            summary[name] = _margins_summary(np.asarray(before), np.asarray(after), cfg["beta"])
    sample_pairs = (split.held_out or split.train)[:cfg["n_samples"]]
    if sample_pairs:
        greedy = SamplingSettings(max_new_tokens=cfg["sample_max_new_tokens"], do_sample=False)
        prompts = [p.prompt for p in sample_pairs]
        if cfg["method"] == "lora":
            with tuned.model.disable_adapter():
                before_text = generate(tuned, prompts, greedy)
        else:
            before_text = generate(base, prompts, greedy)
        after_text = generate(tuned, prompts, greedy)
        with open(job.run_dir / "samples.jsonl", "w", encoding="utf-8") as fh:
            for p, b, a in zip(sample_pairs, before_text, after_text, strict=True):
                fh.write(json.dumps({"pair_id": p.id, "prompt": p.prompt_text, "before": b, "after": a,
                                     "chosen": p.chosen, "rejected": p.rejected}, ensure_ascii=False) + "\n")
    return summary


# -- the job -------------------------------------------------------------------------------
def _launch_ranks(job: JobContext) -> bool:
    """Run ``accelerate launch`` for the ranks; their output goes to this worker's log."""
    from workbench.training.launch import accelerate_command, accelerate_config, write_accelerate_config

    cfg = job.config
    acc = accelerate_config(cfg["num_processes"], cpu=_use_cpu(cfg["device"]), distributed=cfg["distributed"],
                            num_machines=cfg["num_machines"], machine_rank=cfg["machine_rank"],
                            main_process_ip=cfg["main_process_ip"], main_process_port=cfg["main_process_port"],
                            zero_stage=cfg["zero_stage"], mixed_precision="bf16")
    config_file = write_accelerate_config(job.run_dir / "accelerate.yaml", acc)
    cmd = accelerate_command(config_file, "workbench.training.dpo", str(job.run_dir))
    job.log.info("launching %d processes: %s", cfg["num_processes"], " ".join(cmd))
    env = dict(os.environ)
    if _use_cpu(cfg["device"]):
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // cfg["num_processes"])))
    sys.stdout.flush()
    proc = subprocess.Popen(cmd, env=env, cwd=job.run_dir, stdin=subprocess.DEVNULL)  # inherits the log file
    while proc.poll() is None:
        time.sleep(0.5)
    if job.should_stop():
        return False
    if proc.returncode != 0:
        raise RuntimeError(f"accelerate launch exited with code {proc.returncode}; the ranks' errors are in the log above.")
    return True


def run_dpo(job: JobContext) -> str:
    cfg = job.config
    trained = _launch_ranks(job) if cfg["num_processes"] > 1 else train_dpo(job)
    if not trained:
        raise JobCancelled
    job.progress(1, 1, "evaluating before/after")
    summary = evaluate_dpo(job)
    job.set_summary(**summary)
    return OUTPUT[cfg["method"]]


DPO_JOB = JobType("dpo", run_dpo, validate_dpo, description="DPO fine-tuning with TRL (LoRA or full)")


def falling_logps_warning(rows: list[dict[str, Any]], window: int = 5) -> str | None:
    """A warning when log p(chosen) and log p(rejected) both fell since the start of training.

    DPO only needs their gap to grow; when both fall the model is moving probability mass
    to responses that are in neither set, which often degrades generations.
    """
    pts = [r for r in rows if "logps/chosen" in r and "logps/rejected" in r]
    if len(pts) < 2 * min(window, 2):
        return None
    w = max(1, min(window, len(pts) // 2))
    first = {k: sum(r[k] for r in pts[:w]) / w for k in ("logps/chosen", "logps/rejected")}
    last = {k: sum(r[k] for r in pts[-w:]) / w for k in ("logps/chosen", "logps/rejected")}
    if last["logps/chosen"] < first["logps/chosen"] and last["logps/rejected"] < first["logps/rejected"]:
        return (f"Both log-probabilities are falling: chosen {first['logps/chosen']:.1f} → {last['logps/chosen']:.1f}, "
                f"rejected {first['logps/rejected']:.1f} → {last['logps/rejected']:.1f}. The model is moving probability to "
                "responses in neither set; check the sample generations, and consider a lower learning rate or a larger beta.")
    return None


def main(run_dir: str) -> None:
    """Entry point of one rank under ``accelerate launch``."""
    import logging

    from workbench.jobs.worker import settings_from

    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    path = Path(run_dir)
    m = files.read_manifest(path)
    job = JobContext(path, files.read_config(path), settings_from(m.settings), resume=m.resume, run_id=m.id)
    train_dpo(job)


if __name__ == "__main__":
    main(sys.argv[1])
