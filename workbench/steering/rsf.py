"""DPA rejection-sampling fine-tuning (RSF) as a background job.

One iteration: for every prompt draw a random preference direction v, put it in the DPA
system prompt, sample n responses from the current policy, keep the best by vᵀr (rewards
from a multi-objective reward model read through the frozen base model), then fine-tune the
policy (a LoRA adapter) on the kept responses with the direction still in the system
prompt. Iterate. The result is a model that follows directions given in its system prompt
(Wang et al. 2024, "Arithmetic Control of LLMs for Diverse User Preferences").

Runs through ``workbench.jobs``: progress and metrics as JSONL, a checkpoint (adapter +
iteration number) after every iteration, cancel between prompts and steps, resume from the
last finished iteration. The output is a PEFT adapter folder, listed as ``run:<id>``.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from workbench.errors import ConfigError, DataError
from workbench.files import atomic_path, atomic_write_text
from workbench.jobs import JobCancelled, JobContext, JobType
from workbench.jobs.config import JobConfig, option, parsed
from workbench.jobs.options import LoRAOptions, SamplingOptions
from workbench.models.generation import generate, render_prompt
from workbench.models.loading import LoadedModel
from workbench.models.resolve import resolve
from workbench.preference.reward_heads import load_reward_model
from workbench.settings import Settings
from workbench.steering.dpa import dpa_system_prompt

STATE_FILE = "rsf_state.json"
OUTPUT = "adapter"


def random_directions(k: int, count: int, rng: np.random.Generator, angle_min: float, angle_max: float) -> np.ndarray:
    """Unit directions: for two attributes angles uniform in [angle_min, angle_max] degrees, else
    uniform on the sphere with the first component made non-negative (the main objective stays on)."""
    if k == 2:
        theta = np.radians(rng.uniform(angle_min, angle_max, size=count))
        return np.stack([np.cos(theta), np.sin(theta)], axis=1)
    v = rng.normal(size=(count, k))
    v[:, 0] = np.abs(v[:, 0])
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@dataclass
class RSFJobConfig(JobConfig):
    """Options of an RSF run."""

    what: ClassVar[str] = "RSF"
    moved: ClassVar[dict[str, str]] = {"lora_r": "lora.r", "lora_alpha": "lora.alpha", "max_new_tokens": "sampling.max_new_tokens",
                                       "temperature": "sampling.temperature", "top_p": "sampling.top_p"}
    reward_model: str | None = option(None, "Name of a saved multi-objective reward model (train one in the Steering tab).")
    model: str | None = option(None, "Base policy: catalog name or path (default: the reward model's base model).")
    prompts: list[str] = option(default_factory=list, help="Prompts to sample from, one per list item.")
    iterations: int = option(1, "Sample → rerank → fine-tune iterations.", min=1)
    n: int = option(4, "Responses sampled per prompt (the best of n is kept).", min=2)
    # Short, diverse candidates: best-of-n needs them to differ; the seed is set per prompt and iteration.
    sampling: SamplingOptions = option(default_factory=lambda: SamplingOptions(max_new_tokens=48, temperature=1.0, top_p=0.95),
                                       help="How candidates are sampled (do_sample stays on: best-of-n needs different answers; the seed comes from the run's seed, per prompt and iteration).")
    learning_rate: float = option(2e-4, "LoRA learning rate.", min=0.0)
    epochs: int = option(1, "Epochs over the kept responses per iteration.", min=1)
    batch_size: int = option(4, "Responses per training batch.", min=1)
    lora: LoRAOptions = option(default_factory=LoRAOptions, help="The LoRA adapter trained (target_modules none: the attention "
                               "projections found by name, else every linear layer but the output head).")
    seed: int = option(0, "Random seed.")
    angle_min: float = option(-90.0, "Smallest direction angle in degrees (two attributes).", min=-180.0, max=180.0)
    angle_max: float = option(90.0, "Largest direction angle in degrees (two attributes).", min=-180.0, max=180.0)

    def check(self) -> None:
        if not self.reward_model:
            raise ConfigError("An RSF run needs a reward model (its name).", hint="Train one in the Steering tab (DPA section) first.")
        if not self.prompts or not all(p.strip() for p in self.prompts):
            raise DataError("`prompts` must be a non-empty list of non-empty strings.", field="prompts")
        if not self.sampling.do_sample:
            raise ConfigError("RSF samples n candidates per prompt: sampling.do_sample must stay true.",
                              hint="Lower sampling.temperature for closer candidates instead.")
        if self.angle_min > self.angle_max:
            raise ConfigError(f"angle_min {self.angle_min} is above angle_max {self.angle_max}.")


def validate(cfg: RSFJobConfig | dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Resolve the base model and reward model, and refuse a run that cannot start."""
    cfg = parsed(RSFJobConfig, cfg)
    rm = load_reward_model(settings, str(cfg.reward_model))
    model = cfg.model or rm.base_path
    ref = resolve(settings, model)
    cfg.model = str(ref.path.resolve()) if Path(model).expanduser().exists() else model
    cfg.reward_model, cfg.prompts = rm.name, [p.strip() for p in cfg.prompts]
    return cfg.to_dict()


def _lora(model: torch.nn.Module, cfg: RSFJobConfig, adapter_dir: Path | None) -> Any:
    from peft import LoraConfig, PeftModel, get_peft_model  # peft: only in _lora()

    if adapter_dir is not None:
        return PeftModel.from_pretrained(model, adapter_dir, is_trainable=True)
    targets = cfg.lora.target_modules
    if targets is None:
        names = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
        targets = sorted(names & {"q_proj", "k_proj", "v_proj", "o_proj", "c_attn", "query_key_value", "dense", "qkv_proj"}) or sorted(names - {"lm_head"})
    return get_peft_model(model, LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                                            target_modules=targets, task_type="CAUSAL_LM"))


def _examples(policy: LoadedModel, rows: list[tuple[str, str, str]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Tokenised (system, prompt, response) rows with the loss on the response (and EOS) only."""
    tok = policy.tokenizer
    special = not getattr(tok, "chat_template", None)
    out = []
    for system, prompt, response in rows:
        prefix = tok(render_prompt(tok, prompt, system), add_special_tokens=special)["input_ids"]
        answer = tok(response, add_special_tokens=False)["input_ids"] + ([tok.eos_token_id] if tok.eos_token_id is not None else [])
        ids = torch.tensor(prefix + answer)
        labels = ids.clone()
        labels[:len(prefix)] = -100
        out.append((ids, labels))
    return out


def _train(policy: LoadedModel, peft_model: Any, examples: list[tuple[torch.Tensor, torch.Tensor]], cfg: RSFJobConfig,
           job: JobContext, rng: np.random.Generator) -> float:
    """Supervised fine-tuning on the kept responses; returns the mean loss."""
    optim = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=cfg.learning_rate)
    pad = policy.tokenizer.pad_token_id or 0
    peft_model.train()
    losses = []
    bs = cfg.batch_size
    for _ in range(cfg.epochs):
        order = rng.permutation(len(examples))
        for b in range(0, len(order), bs):
            batch = [examples[i] for i in order[b:b + bs]]
            width = max(len(ids) for ids, _ in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            labels = torch.full((len(batch), width), -100, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for i, (x, y) in enumerate(batch):
                ids[i, :len(x)], labels[i, :len(y)], mask[i, :len(x)] = x, y, 1
            loss = peft_model(input_ids=ids.to(policy.device), attention_mask=mask.to(policy.device), labels=labels.to(policy.device)).loss
            optim.zero_grad()
            loss.backward()
            optim.step()
            losses.append(loss.item())
            if job.should_stop():
                break
    peft_model.eval()
    return float(np.mean(losses)) if losses else math.nan


def run(job: JobContext) -> str:
    """The RSF job: iterate sample → rerank by vᵀr → fine-tune, checkpointing every iteration."""
    cfg: RSFJobConfig = job.options
    torch.manual_seed(cfg.seed)
    rm = load_reward_model(job.settings, str(cfg.reward_model))
    scorer = job.load_model(cfg.model)  # frozen: the reward model reads its features
    policy = job.load_model(cfg.model)  # a second copy: LoRA-wrapped and trained in place
    rm.check_model(scorer)
    start, adapter_dir = 0, None
    if job.resume and (ckpt := job.latest_checkpoint()) is not None:
        start = json.loads((ckpt / STATE_FILE).read_text())["iteration"]
        adapter_dir = ckpt
        job.log.info("resuming after iteration %d from %s", start, ckpt)
    peft_model = _lora(policy.model, cfg, adapter_dir)
    policy.model = peft_model
    prompts, n, iterations = cfg.prompts, cfg.n, cfg.iterations
    total = iterations * (len(prompts) + 1)
    for iteration in range(start + 1, iterations + 1):
        rng = np.random.default_rng(cfg.seed + iteration)
        directions = random_directions(len(rm.attributes), len(prompts), rng, cfg.angle_min, cfg.angle_max)
        kept, best_scores, mean_scores, kept_rewards = [], [], [], []
        for i, (prompt, v) in enumerate(zip(prompts, directions, strict=True)):
            system = dpa_system_prompt(rm.attributes, v)
            # each prompt of each iteration its own seed, from the run's seed (a copy: job.options stays as given)
            settings = replace(cfg.sampling, seed=cfg.seed * 100_003 + iteration * 1009 + i)
            candidates = generate(policy, [prompt] * n, settings, system=system)
            usable = [c for c in candidates if c.strip()]
            if usable:
                rewards = rm.score(scorer, [prompt] * len(usable), usable)
                scores = rewards @ v
                best = int(np.argmax(scores))
                kept.append((system, prompt, usable[best]))
                best_scores.append(float(scores[best])), mean_scores.append(float(scores.mean())), kept_rewards.append(rewards[best])
            job.progress((iteration - 1) * (len(prompts) + 1) + i + 1, total, f"iteration {iteration}: sampled prompt {i + 1}/{len(prompts)}")
            if job.should_stop():
                raise JobCancelled
        if not kept:
            raise DataError("Every sampled response was empty; nothing to fine-tune on.", hint="Raise max_new_tokens or the temperature.")
        loss = _train(policy, peft_model, _examples(policy, kept), cfg, job, rng)
        row = {"iteration": iteration, "kept": len(kept), "loss": loss, "best_score": float(np.mean(best_scores)),
               "mean_score": float(np.mean(mean_scores)),
               **{f"reward_{a}": float(np.mean([r[j] for r in kept_rewards])) for j, a in enumerate(rm.attributes)}}
        job.log_metrics(row)
        job.log.info("iteration %d: %s", iteration, row)
        ckpt = job.checkpoints_dir / f"checkpoint-{iteration}"
        with atomic_path(ckpt) as tmp:
            peft_model.save_pretrained(tmp)
            (tmp / STATE_FILE).write_text(json.dumps({"iteration": iteration}))
        job.progress(iteration * (len(prompts) + 1), total, f"iteration {iteration} trained (loss {loss:.3f})")
        if job.should_stop():
            raise JobCancelled
    with atomic_path(job.run_dir / OUTPUT) as out:
        peft_model.save_pretrained(out)
        policy.tokenizer.save_pretrained(out)
        _record_base(out, str(scorer.path))
    last = json.loads((job.latest_checkpoint() / STATE_FILE).read_text()) if job.latest_checkpoint() else {"iteration": 0}
    job.set_summary(iterations=last["iteration"], reward_model=rm.name, attributes=rm.attributes)
    return OUTPUT


def _record_base(adapter_dir: Path, base: str) -> None:
    """Point the adapter at its base by absolute path, so the catalog can load it anywhere."""
    path = adapter_dir / "adapter_config.json"
    cfg = json.loads(path.read_text(encoding="utf-8"))
    cfg["base_model_name_or_path"] = base
    atomic_write_text(path, json.dumps(cfg, indent=2))


RSF_JOB = JobType("dpa-rsf", run, validate, config_cls=RSFJobConfig, description="DPA rejection-sampling fine-tuning: best-of-n by vᵀr for random directions v, "
                  "fine-tuned with the direction in the system prompt")
