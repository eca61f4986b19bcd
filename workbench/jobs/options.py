"""Option groups several jobs share, declared once and nested (``lora: LoRAOptions``).

A group is a plain dataclass of ``option`` fields: ``from_dict`` checks it inside its job's
config (``DPO option lora option r must be at least 1``), the CLI gets ``--<group>-<option>``
flags (``--lora-r``; an option's ``flag`` keeps an older name such as ``--target-modules``),
and config.yaml stores it as a mapping (``lora: {r: 8, alpha: 16, …}``). Torch-free: the CLI
and the forms import it at start-up.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from workbench.errors import ConfigError
from workbench.jobs.config import option


@dataclass
class LoRAOptions:
    """A LoRA adapter (PEFT ``LoraConfig``): what DPO and RSF train when they do not train every weight."""

    r: int = option(8, "LoRA rank.", min=1)
    alpha: int = option(16, "LoRA alpha (scale = alpha / r).", min=1)
    dropout: float = option(0.0, "LoRA dropout.", min=0.0, max=1.0, exclusive_max=True)
    target_modules: str | None = option(None, "Modules LoRA adapts: PEFT's target_modules (all-linear, or a regular expression "
                                        "over module names); none: the job's own choice.", flag="target_modules")


@dataclass
class SamplingOptions:
    """How a model answers (``transformers`` ``generate`` settings): greedy with ``do_sample`` false.

    One class for a job's options, the chat, the Steering tab and every ``generate`` call:
    torch-free, so the CLI and the forms import it at start-up.
    """

    max_new_tokens: int = option(256, "New tokens per answer.", min=1)
    temperature: float = option(0.7, "Sampling temperature (with do_sample).", min=0.0)
    top_p: float = option(0.9, "Nucleus sampling mass, in (0, 1] (with do_sample).", min=0.0, max=1.0)
    top_k: int = option(50, "Sample among the k most likely tokens (with do_sample).", min=0)
    repetition_penalty: float = option(1.0, "Repetition penalty (1: none).", min=0.0)
    do_sample: bool = option(True, "Sample; false decodes greedily (temperature, top_p and top_k are then unused).")
    seed: int | None = option(0, "Seed of the sampling, so an answer can be drawn again (none: unseeded).")

    def __post_init__(self) -> None:
        self.check()  # built in code too (the chat, a sweep), not only from a config: refuse bad settings there as well

    def check(self) -> None:
        """Rules between options (a temperature of 0 only when greedy)."""
        if self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}.")
        if self.do_sample and self.temperature <= 0:
            raise ConfigError("temperature must be > 0 when sampling.", hint="Set do_sample=False for greedy decoding.")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}.")

    def generate_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``model.generate`` (the seed is set apart; greedy drops the sampling knobs)."""
        kw = asdict(self)
        kw.pop("seed")
        if not self.do_sample:
            for key in ("temperature", "top_p", "top_k"):
                kw.pop(key)
        return kw
