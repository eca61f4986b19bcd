"""DPO fine-tuning (TRL ``DPOTrainer``, LoRA or full) as a job, with a before/after report.

``validate_dpo`` checks everything it can before a run exists (dataset, model, batch size);
``run_dpo`` runs in the job worker: it trains in-process, or starts ``accelerate launch``
for several processes (whose ranks run ``python -m workbench.training.dpo <run_dir>``), then
evaluates the result on held-out pairs and writes sample generations side by side.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from workbench.errors import ConfigError, ModelError
from workbench.jobs import manifest as files
from workbench.jobs.config import parsed
from workbench.jobs.context import JobCancelled, JobContext, activate
from workbench.jobs.options import SamplingOptions
from workbench.jobs.registry import JobType
from workbench.jobs.worker import job_context
from workbench.models.embedded import DEMO_MODEL_NAME
from workbench.settings import Settings
from workbench.training.configs import DPOJobConfig
from workbench.training.launch import accelerate_command, accelerate_config, write_accelerate_config
from workbench.training.pairs import (
    SESSION_FILE,
    SPLIT_FILE,
    PairSplit,
    check_max_length,
    dpo_rows,
    freeze_session_split,
    frozen_session_split,
    load_pairs,
    save_split_ids,
    session_split,
    split_pairs,
)

OUTPUT = {"lora": "adapter", "full": "model"}  # method → output folder (DPOJobConfig.method)


def validate_dpo(cfg: DPOJobConfig | dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Check the dataset, model and batch size before any run starts."""
    cfg = parsed(DPOJobConfig, cfg)
    per_step = cfg.batch_size * cfg.gradient_accumulation_steps * cfg.num_processes
    split = pairs_of(cfg, settings, min_votes=per_step + (1 if cfg.held_out_fraction > 0 else 0))
    if per_step > len(split.train):
        left = split.skipped_text()
        raise ConfigError(
            f"Batch size impossible: one optimizer step needs {per_step} pairs (batch_size {cfg.batch_size} × "
            f"gradient_accumulation_steps {cfg.gradient_accumulation_steps} × num_processes {cfg.num_processes}), "
            f"but only {len(split.train)} labelled training pairs remain after holding out {len(split.held_out)}"
            + (f" and {left}" if left else "") + ".",
            hint="Lower batch_size or gradient_accumulation_steps, hold out fewer pairs, or label more pairs.")
    if cfg.dataset and Path(cfg.dataset).expanduser().exists():
        cfg.dataset = str(Path(cfg.dataset).expanduser().resolve())
    # workbench.models imports torch: the CLI builds its flags from this module without it.
    from workbench.models.resolve import resolve, tokenizer  # torch: only in validate_dpo()

    cfg.model = cfg.model or DEMO_MODEL_NAME
    ref = resolve(settings, cfg.model)
    if ref.format == "peft":
        raise ModelError(f"{ref.path} is a PEFT adapter; DPO starts from a full model folder (config.json + safetensors) or a GGUF.",
                         hint="Pick the base model (merge an adapter into it first).")
    if Path(cfg.model).expanduser().exists():
        cfg.model = str(ref.path.resolve())
    check_max_length(split.train, tokenizer(settings, cfg.model), cfg.max_length)
    if cfg.num_processes > 1:
        accelerate_config(cfg.num_processes, cpu=_use_cpu(cfg.device), distributed=cfg.distributed,
                          num_machines=cfg.num_machines, main_process_ip=cfg.main_process_ip)
    return cfg.to_dict()


def _use_cpu(device: str) -> bool:
    import torch  # torch: only in _use_cpu()

    return device == "cpu" or (device == "auto" and not torch.cuda.is_available())


def pairs_of(cfg: DPOJobConfig, settings: Settings, min_votes: int = 1) -> PairSplit:
    """The run's (train, held-out) pairs: a dataset's labelled pairs, or a session's A/B votes as they are now."""
    if cfg.session:
        return session_split(settings, cfg.session, cfg.held_out_fraction, cfg.seed, min_strength=cfg.min_strength,
                             drop_pairs=cfg.drop_pairs, min_votes=min_votes)
    return split_pairs(load_pairs(str(cfg.dataset), settings, cfg.format), cfg.held_out_fraction, cfg.seed, source=str(cfg.dataset))


def _split(job: JobContext) -> PairSplit:
    """The pairs this run trains and reports on; a session run reads the votes it froze at start."""
    cfg: DPOJobConfig = job.options
    if cfg.session:
        frozen = frozen_session_split(job.run_dir)
        if frozen is None:
            raise RuntimeError(f"{job.run_dir / SESSION_FILE} is missing: a session run freezes its votes before training.")
        return frozen
    return pairs_of(cfg, job.settings)


def _freeze_split(job: JobContext) -> None:
    """At the run's first start, save what it trains on and holds out (what ``workbench compare`` splits by):
    a session's votes with the session and vote snapshot, or a dataset's pair ids."""
    cfg: DPOJobConfig = job.options
    if not cfg.session:
        if not (job.run_dir / SPLIT_FILE).exists():
            save_split_ids(job.run_dir, pairs_of(cfg, job.settings))
        return
    if frozen_session_split(job.run_dir) is not None:
        return
    split = pairs_of(cfg, job.settings)
    freeze_session_split(job.run_dir, split)
    job.set_summary(votes=split.record)
    job.log.info("session %s: training on %d vote(s), %d held out, left out %s; snapshot %s", cfg.session, len(split.train),
                 len(split.held_out), split.left_out or "none", split.record["snapshot"]["sha256"][:12])


# -- training (one process, or one rank of an accelerate launch) ---------------------------
def train_dpo(job: JobContext) -> bool:
    """Train; returns False when the run was cancelled (a checkpoint was written first)."""
    # torch, TRL, PEFT and datasets load in the worker only, not when the CLI or the app imports this module.
    import torch  # torch: only in train_dpo()
    from datasets import Dataset  # datasets: only in train_dpo()
    from peft import LoraConfig  # peft: only in train_dpo()
    from trl import DPOConfig, DPOTrainer  # trl: only in train_dpo()

    from workbench.training.callbacks import JobCallback  # torch: only in train_dpo()

    cfg: DPOJobConfig = job.options
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    lm = job.load_model(cfg.model, device="cpu", dtype="float32", stop_inside=False)  # the trainer places it; float32 master weights
    if cfg.num_processes == 1:  # one process: a cancel stops inside a step's forward or backward (ranks stop together at a step's end)
        job.stop_inside(lm.adapter.layers(lm.model), backward=True)
    tok = lm.tokenizer
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    use_cpu = _use_cpu(cfg.device)
    bf16 = not use_cpu and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    args = DPOConfig(
        output_dir=str(job.run_dir / files.CHECKPOINTS), max_steps=cfg.max_steps if cfg.max_steps > 0 else -1,
        num_train_epochs=cfg.num_epochs, per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps, learning_rate=cfg.learning_rate,
        beta=cfg.beta, loss_type=[cfg.loss_type], max_length=cfg.max_length,
        precompute_ref_log_probs=cfg.precompute_ref_log_probs, logging_steps=cfg.logging_steps,
        save_strategy="steps", save_steps=cfg.save_steps, report_to=[], seed=cfg.seed, use_cpu=use_cpu, bf16=bf16,
        disable_tqdm=True, dataloader_num_workers=0, remove_unused_columns=False,
        gradient_checkpointing=False,  # TRL's default re-runs each forward in the backward: 24 % of a CPU step, memory we do not need
    )
    peft_config = None
    if cfg.method == "lora":
        peft_config = LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                                 target_modules=cfg.lora.target_modules or "all-linear", task_type="CAUSAL_LM")
    if job.should_stop():  # cancelled while the model loaded: no trainer, no tokenized dataset
        return False
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
    try:
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    except JobCancelled:  # mid-step: the weights and optimizer are still those of the last finished step
        if trainer.state.global_step > 0:
            trainer._save_checkpoint(trainer.model, trial=None)  # what the trainer writes at a step's end; resume reads it
        job.log.info("cancelled inside training step %d", trainer.state.global_step + 1)
        return False
    if callback.cancelled:
        return False
    out = job.run_dir / OUTPUT[cfg.method]
    trainer.save_model(str(out))
    if trainer.is_world_process_zero():
        tok.save_pretrained(str(out))
    return True


# -- before/after ---------------------------------------------------------------------------
def _pair_summary(before: Any, after: Any, beta: float) -> dict[str, float]:
    """Accuracy, margins and the chosen/rejected log-probs of the SAME pairs before and after.

    ``before``/``after`` hold, per pair, log p(chosen) and log p(rejected) summed over the
    response tokens and their token counts; the per-token means separate "the model now
    dislikes both" from "longer responses have lower sums".
    """
    margin_b, margin_a = before["chosen"] - before["rejected"], after["chosen"] - after["rejected"]
    implicit = beta * (margin_a - margin_b)  # β[(log π − log π_ref)(chosen) − (…)(rejected)]
    out = {
        "n": int(len(margin_b)), "logp_margin_accuracy_before": float((margin_b > 0).mean()),
        "logp_margin_accuracy_after": float((margin_a > 0).mean()),
        "mean_logp_margin_before": float(margin_b.mean()), "mean_logp_margin_after": float(margin_a.mean()),
        "implicit_reward_accuracy": float((implicit > 0).mean()), "mean_implicit_reward_margin": float(implicit.mean()),
    }
    for side in ("chosen", "rejected"):
        for when, values in (("before", before), ("after", after)):
            out[f"logp_{side}_{when}"] = float(values[side].mean())
            out[f"logp_{side}_per_token_{when}"] = float((values[side] / values[f"{side}_tokens"]).mean())
    return out


def evaluate_dpo(job: JobContext) -> dict[str, Any]:
    """Held-out (and training) pair accuracies before vs after, and sample generations side by side."""
    from peft import PeftModel  # heavy: worker only

    from workbench.models.generation import generate  # torch: only in evaluate_dpo()
    from workbench.training.logprobs import response_token_counts, sequence_logprobs  # torch: only in evaluate_dpo()

    cfg: DPOJobConfig = job.options
    split = _split(job)
    device = None if cfg.device == "auto" else cfg.device
    base = job.load_model(cfg.model, device=device)
    out_dir = job.run_dir / OUTPUT[cfg.method]
    if cfg.method == "lora":
        tuned_model = PeftModel.from_pretrained(base.model, str(out_dir)).eval()
        tuned = dataclasses.replace(base, model=tuned_model)
    else:
        tuned = job.load_model(out_dir, device=device)
    if job.should_stop():  # cancelled while the models loaded
        raise JobCancelled

    evaluated = [(name, pairs) for name, pairs in (("held_out", split.held_out), ("train", split.train[:cfg.eval_max_pairs])) if pairs]
    # Progress in pairs: each pair is scored twice (before, after), each time as chosen + rejected.
    total, scored = sum(4 * len(pairs) for _, pairs in evaluated), 0

    def on_batch(rows: int) -> None:
        """After every batch: k of n pairs (an ETA that moves) and a cancel noticed within one batch."""
        nonlocal scored
        scored += rows
        job.progress(scored // 4, total // 4, f"{scored // 4} of {total // 4} pairs scored before/after", stage="evaluate")
        if job.should_stop():
            raise JobCancelled

    def logps(lm: Any, pairs: list[Any]) -> dict[str, Any]:
        if cfg.method == "lora" and lm is base:
            with tuned.model.disable_adapter():
                return logps(tuned, pairs)
        prompts, n = [p.prompt for p in pairs], len(pairs)
        responses = [p.chosen for p in pairs] + [p.rejected for p in pairs]
        both = sequence_logprobs(lm.model, lm.tokenizer, prompts * 2, responses, batch_size=cfg.eval_batch_size,
                                 max_length=cfg.max_length, on_batch=on_batch)
        counts = response_token_counts(lm.tokenizer, prompts * 2, responses, max_length=cfg.max_length)
        return {"chosen": both[:n], "rejected": both[n:], "chosen_tokens": counts[:n], "rejected_tokens": counts[n:]}

    summary: dict[str, Any] = {}
    job.progress(0, total // 4, f"0 of {total // 4} pairs scored before/after", stage="evaluate")
    for name, pairs in evaluated:
        summary[name] = _pair_summary(logps(base, pairs), logps(tuned, pairs), cfg.beta)
    warning = falling_logps_warning(summary)
    if warning:
        summary["warnings"] = [warning]
    sample_pairs = (split.held_out or split.train)[:cfg.n_samples]
    if sample_pairs:
        greedy = SamplingOptions(max_new_tokens=cfg.sample_max_new_tokens, do_sample=False)
        texts: dict[str, list[str]] = {"before": [], "after": []}
        n = 2 * len(sample_pairs)
        job.progress(0, n, f"0 of {n} sample answers", stage="samples")
        for i, p in enumerate(sample_pairs):  # one prompt at a time: progress and a cancel between answers
            for when in ("before", "after"):
                if cfg.method == "lora" and when == "before":
                    with tuned.model.disable_adapter():
                        texts[when] += generate(tuned, [p.prompt], greedy)
                else:
                    texts[when] += generate(base if when == "before" else tuned, [p.prompt], greedy)
                done = 2 * i + (when == "after") + 1
                job.progress(done, n, f"{done} of {n} sample answers", stage="samples")
                if job.should_stop():
                    raise JobCancelled
        with open(job.run_dir / "samples.jsonl", "w", encoding="utf-8") as fh:
            for p, b, a in zip(sample_pairs, texts["before"], texts["after"], strict=True):
                fh.write(json.dumps({"pair_id": p.id, "prompt": p.prompt_text, "before": b, "after": a,
                                     "chosen": p.chosen, "rejected": p.rejected}, ensure_ascii=False) + "\n")
    return summary


def falling_logps_warning(summary: dict[str, Any]) -> str | None:
    """A warning when log p(chosen) and log p(rejected) of the same pairs both fell per token.

    DPO only needs their gap to grow; when both fall the model is moving probability mass
    to responses that are in neither set, which often degrades generations. Compared on
    the held-out pairs (the training pairs when none are held out), before vs after, so
    neither batch composition nor response length can fake it.
    """
    split = "held_out" if "held_out" in summary else "train"
    s = summary.get(split) or {}
    keys = [f"logp_{side}_per_token_{when}" for side in ("chosen", "rejected") for when in ("before", "after")]
    if not all(k in s for k in keys):
        return None
    chosen = (s["logp_chosen_per_token_before"], s["logp_chosen_per_token_after"])
    rejected = (s["logp_rejected_per_token_before"], s["logp_rejected_per_token_after"])
    if chosen[1] < chosen[0] and rejected[1] < rejected[0]:
        where = "held-out" if split == "held_out" else "training"
        return (f"Both log-probabilities are falling on the same {s['n']} {where} pairs: chosen {chosen[0]:.2f} → {chosen[1]:.2f} "
                f"per token (sum {s['logp_chosen_before']:.1f} → {s['logp_chosen_after']:.1f}), rejected {rejected[0]:.2f} → "
                f"{rejected[1]:.2f} per token (sum {s['logp_rejected_before']:.1f} → {s['logp_rejected_after']:.1f}). The model is "
                "moving probability to responses in neither set; check the sample generations, and consider a lower learning "
                "rate or a larger beta.")
    return None


# -- the job -------------------------------------------------------------------------------
def _launch_ranks(job: JobContext) -> bool:
    """Run ``accelerate launch`` for the ranks; their output goes to this worker's log."""
    cfg: DPOJobConfig = job.options
    acc = accelerate_config(cfg.num_processes, cpu=_use_cpu(cfg.device), distributed=cfg.distributed,
                            num_machines=cfg.num_machines, machine_rank=cfg.machine_rank,
                            main_process_ip=cfg.main_process_ip, main_process_port=cfg.main_process_port,
                            zero_stage=cfg.zero_stage, mixed_precision="bf16")
    config_file = write_accelerate_config(job.run_dir / "accelerate.yaml", acc)
    cmd = accelerate_command(config_file, "workbench.training.dpo", str(job.run_dir))
    job.log.info("launching %d processes: %s", cfg.num_processes, " ".join(cmd))
    env = dict(os.environ)
    if _use_cpu(cfg.device):
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // cfg.num_processes)))
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
    cfg: DPOJobConfig = job.options
    _freeze_split(job)
    trained = _launch_ranks(job) if cfg.num_processes > 1 else train_dpo(job)
    if not trained:
        raise JobCancelled
    trained_to = files.read_progress(job.run_dir)  # rank 0's last training step
    summary = evaluate_dpo(job)
    job.set_summary(**summary)
    if trained_to.get("total"):  # a finished run shows its training steps, not the report's stage
        job.progress(trained_to["step"], trained_to["total"], "finished", stage="train")
    return OUTPUT[cfg.method]


DPO_JOB = JobType("dpo", run_dpo, validate_dpo, description="DPO fine-tuning with TRL (LoRA or full)", config_cls=DPOJobConfig)


def main(run_dir: str) -> None:
    """Entry point of one rank under ``accelerate launch``."""
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    path = Path(run_dir)
    m = files.read_manifest(path)
    job = job_context(path, m)
    activate(job)
    train_dpo(job)


if __name__ == "__main__":
    main(sys.argv[1])
