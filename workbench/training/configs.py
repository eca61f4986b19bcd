"""Typed options of the fine-tuning jobs (DPO, PAL): one dataclass each, light to import.

The CLI (``workbench train``) and the Fine-tune tab build their flags and form fields from
these at start-up, so this module imports no torch; the jobs themselves live in
``training.dpo`` and ``training.pal_job``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from workbench.errors import ConfigError
from workbench.jobs.config import JobConfig, option
from workbench.jobs.options import LoRAOptions

# TRL's DPO loss types (DPOConfig.loss_type of trl 1.16), less exo_pair: it needs a label_smoothing above 0,
# which this job does not expose, so DPOTrainer would refuse it only once the run started.
DPOLossType = Literal["sigmoid", "hinge", "ipo", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot", "aot_unpaired",
                      "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm"]
Device = Literal["auto", "cpu", "cuda"]
VoteStrength = Literal[1, 2]


@dataclass
class DPOJobConfig(JobConfig):
    """Options of a DPO run (the CLI flags and the Fine-tune form are generated from these)."""

    what: ClassVar[str] = "DPO"
    moved: ClassVar[dict[str, str]] = {"lora_r": "lora.r", "lora_alpha": "lora.alpha", "lora_dropout": "lora.dropout",
                                       "target_modules": "lora.target_modules"}
    model: str | None = option(None, "Catalog name or path of the model to train: a full model or a GGUF, not an adapter "
                               "(default: the embedded demo model).")
    dataset: str | None = option(None, "Stored dataset name or pair file (TRL, HH-RLHF, labeling export…); or give session.")
    session: str | None = option(None, "Labeling session whose A/B votes are the training pairs (instead of dataset).")
    min_strength: VoteStrength | None = option(None, "With session: keep only votes at least this strong (1 slight, 2 clear).")
    drop_pairs: list[str] = option(default_factory=list, help="With session: pair ids to leave out (e.g. the top ones by CHES).")
    format: str = option("auto", "Pair file format (auto detects it).", cli=False)
    method: Literal["lora", "full"] = option("lora", "lora (PEFT adapter) or full (all weights).")
    lora: LoRAOptions = option(default_factory=lambda: LoRAOptions(target_modules="all-linear"),
                               help="The LoRA adapter with method lora (--lora-r, --lora-alpha, --lora-dropout, --target-modules).")
    beta: float = option(0.1, "DPO beta (strength of the KL anchor), > 0.", min=0.0)
    loss_type: DPOLossType = option("sigmoid", "TRL DPO loss type.")
    learning_rate: float = option(5e-5, "Learning rate, > 0.", min=0.0)
    max_steps: int = option(100, "Optimizer steps (0 = use num_epochs).", min=0)
    num_epochs: float = option(1.0, "Epochs when max_steps is 0.", min=0.0)
    batch_size: int = option(2, "Pairs per device per step.", min=1)
    gradient_accumulation_steps: int = option(1, "Batches accumulated per optimizer step.", min=1)
    max_length: int = option(512, "Max tokens of prompt + response.", min=1)
    # Off by default, measured (docs/loop.md, "DPO defaults"): with LoRA the reference is the adapter-disabled model, so
    # precomputing saves no memory; it swaps one no-grad forward per step for a pass over every pair up front, which
    # pays only past one epoch (0.82-0.94x at two epochs) and costs below it (1.19x at a quarter epoch).
    precompute_ref_log_probs: bool = option(False, "Compute reference log-probs once before training: saves the second model "
                                            "copy of a full fine-tune; with LoRA it only moves work up front.")
    held_out_fraction: float = option(0.1, "Share of pairs held out for the before/after report.", min=0.0, max=1.0, exclusive_max=True)
    save_steps: int = option(50, "Save a checkpoint every this many steps.", min=1)
    logging_steps: int = option(1, "Log metrics every this many steps.", min=1)
    seed: int = option(0, "Random seed (pair split, shuffling, LoRA init).")
    num_processes: int = option(1, "Processes for accelerate launch (GPUs, or CPU processes with gloo).", min=1)
    distributed: Literal["ddp", "deepspeed", "fsdp"] = option("ddp", "Multi-process backend (with num_processes > 1).")
    zero_stage: int = option(2, "DeepSpeed ZeRO stage.", min=0, max=3)
    num_machines: int = option(1, "Machines in a multi-node run.", min=1)
    machine_rank: int = option(0, "This machine's rank in a multi-node run.", min=0)
    main_process_ip: str | None = option(None, "Address of machine rank 0 (multi-node).")
    main_process_port: int | None = option(None, "Port of machine rank 0 (multi-node).", min=1, max=65535)
    device: Device = option("auto", "Device for training and the before/after report (auto: cuda when there is one).")
    n_samples: int = option(4, "Held-out prompts answered before and after, side by side.", min=0)
    sample_max_new_tokens: int = option(48, "Tokens per sample generation.", min=1)
    eval_batch_size: int = option(8, "Pairs per batch in the before/after report.", min=1)
    eval_max_pairs: int = option(64, "Training pairs scored in the before/after report.", min=1)

    def check(self) -> None:
        if self.beta <= 0 or self.learning_rate <= 0:
            raise ConfigError("DPO options beta and learning_rate must be positive.")
        if self.max_steps < 1 and self.num_epochs <= 0:
            raise ConfigError("Set max_steps ≥ 1, or max_steps: 0 with num_epochs > 0.")
        _one_source(self.dataset, self.session, "a stored dataset name or a pair file (TRL, HH-RLHF, labeling export…)")
        if not self.session and (self.min_strength is not None or self.drop_pairs):
            raise ConfigError("min_strength and drop_pairs apply to a session's votes; this run reads a dataset.",
                              hint="Remove them, or train from a session instead.")


def _one_source(dataset: str | None, session: str | None, what: str) -> None:
    """Exactly one of dataset and session: a run trains on one set of pairs."""
    if bool(dataset) == bool(session):
        raise ConfigError("Give exactly one of dataset and session." if dataset else "No dataset given (nor a session).",
                          hint=f"Pass {what}, or the name of a labeling session (its A/B votes become the pairs).")


@dataclass
class PALJobConfig(JobConfig):
    """Options of a PAL run (the CLI flags and the Fine-tune form are generated from these)."""

    what: ClassVar[str] = "PAL"
    dataset: str | None = option(None, "Pairs with a user id per pair: file path or stored dataset (see docs/pal_persona.md); or give session.")
    session: str | None = option(None, "Labeling session whose A/B votes train PAL, one user per annotator (instead of dataset).")
    min_strength: VoteStrength | None = option(None, "With session: keep only votes at least this strong (1 slight, 2 clear).")
    late_annotators: list[str] = option(default_factory=list, help="With session: annotators treated as joining later "
                                        "(unseen users, adapted from their first votes by shots).")
    format: str = option("auto", "Pair file format (auto detects it).", cli=False)
    model: str | None = option(None, "Frozen feature model: catalog name or path (default: the all-MiniLM-L6-v2 sentence embedder).")
    layer: int | None = option(None, "Feature layer (default: the last).")
    pooling: Literal["mean", "last"] = option("mean", "How token states become one vector.")
    user_field: str = option("user", "Pair metadata field holding the user id.")
    unseen_field: str = option("user_kind", "Metadata field marking unseen users ('unseen').")
    split_field: str = option("split", "Metadata field with train/test per pair.")
    oracle_field: str = option("p_a", "Metadata field with the true P(A preferred), for the oracle row.")
    group_field: str = option("group", "Metadata field with the user's true group, for the latent view.")
    unseen_fraction: float = option(0.0, "Share of users held out as unseen when no unseen_field is given.", min=0.0, max=1.0)
    test_fraction: float = option(0.2, "Share of pairs held out for testing when no split_field is given.", min=0.0, max=1.0)
    variant: Literal["A", "B", "both"] = option("both", "A (ideal point), B (mixture of prompt mappings) or both.")
    k: int = option(4, "Number of prototypes / preference groups.", min=1)
    dim: int = option(16, "Latent dimension.", min=1)
    hidden: int = option(64, "Hidden width of the mappings.", min=1)
    epochs: int = option(40, "Training epochs per model.", min=1)
    learning_rate: float = option(3e-3, "Learning rate.", min=0.0)
    batch_size: int = option(256, "Pairs per batch.", min=1)
    weight_decay: float = option(1e-4, "AdamW weight decay.", min=0.0)
    shots: list[int] = option(default_factory=lambda: [1, 5, 10, 20, 50, 100], help="Shot counts for unseen users (1 to 100 each).")
    adapt_steps: int = option(300, "Adaptation steps for a new user's weights.", min=1)
    adapt_lr: float = option(0.1, "Adaptation learning rate.", min=0.0)
    seed: int = option(0, "Random seed.")

    def check(self) -> None:
        if not all(1 <= s <= 100 for s in self.shots):
            raise ConfigError(f"PAL option shots must be whole numbers from 1 to 100, got {self.shots!r}.")
        _one_source(self.dataset, self.session, "a pair file with a user id per pair (e.g. from scripts/make_persona_benchmark.py)")
        if not self.session and (self.min_strength is not None or self.late_annotators):
            raise ConfigError("min_strength and late_annotators apply to a session's votes; this run reads a dataset.",
                              hint="Remove them, or train from a session instead.")
