"""Directional Preference Alignment (DPA): a user preference is a unit direction v in reward space.

With a multi-objective reward model r(x, y) ∈ R^k, a user who wants "more helpfulness, less
verbosity" is a direction v, and the response they want maximises vᵀr(x, y). Two controls:

- inference time: sample n responses and keep the one with the highest vᵀr (best-of-n);
  the candidates' reward vectors show the trade-off front the choice was made on;
- prompt conditioning for DPA-trained checkpoints: the direction goes into the system
  prompt as integer weights round(100·v) (the template of Wang et al. 2024,
  "Arithmetic Control of LLMs for Diverse User Preferences").
"""
from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from workbench.data.types import Prompt
from workbench.errors import ConfigError
from workbench.jobs.options import SamplingOptions
from workbench.models.generation import generate
from workbench.models.loading import LoadedModel
from workbench.preference.reward_heads import RewardModel

DPA_SYSTEM_TEMPLATE = (
    "You are a helpful, respectful, and honest assistant who always responds to the user in a harmless way. "
    "Your response should maximize weighted rating = {weighted}"
)


def angle_direction(theta_degrees: float) -> np.ndarray:
    """v = (cos θ, sin θ) for two attributes: θ = 0 is all first attribute, 90° all second."""
    theta = math.radians(theta_degrees)
    return np.array([math.cos(theta), math.sin(theta)])


def plane_direction(attributes: Sequence[str], x: str, y: str, theta_degrees: float) -> np.ndarray:
    """A direction over all ``attributes`` that moves in the plane of two of them: cos θ on ``x``,
    sin θ on ``y``, 0 elsewhere, so one θ slider works with any number of attributes."""
    missing = [a for a in (x, y) if a not in attributes]
    if missing:
        raise ConfigError(f"{', '.join(map(repr, missing))} is not an attribute of this reward model ({', '.join(attributes)}).")
    if x == y:
        raise ConfigError(f"θ moves between two different attributes; both are {x!r}.", hint="Pick another attribute for one of the two axes.")
    v = np.zeros(len(attributes))
    v[list(attributes).index(x)], v[list(attributes).index(y)] = angle_direction(theta_degrees)
    return v


def unit_direction(weights: Sequence[float]) -> np.ndarray:
    """Per-attribute slider values normalised to a unit vector."""
    v = np.asarray(weights, dtype=np.float64)
    norm = float(np.linalg.norm(v))
    if v.ndim != 1 or not np.isfinite(norm) or norm == 0:
        raise ConfigError(f"A preference direction needs at least one non-zero weight; got {list(weights)}.",
                          hint="Move at least one attribute slider away from 0.")
    return v / norm


def dpa_system_prompt(attributes: Sequence[str], direction: Sequence[float], template: str = DPA_SYSTEM_TEMPLATE) -> str:
    """The DPA system prompt for ``direction`` over ``attributes`` (weights as rounded 100·v)."""
    v = unit_direction(direction)
    if len(v) != len(attributes):
        raise ConfigError(f"The direction has {len(v)} components but there are {len(attributes)} attributes ({', '.join(attributes)}).")
    weighted = " + ".join(f"{a}*{int(round(100 * w))}" for a, w in zip(attributes, v, strict=True))
    return template.format(weighted=weighted)


def pareto_front(rewards: np.ndarray) -> np.ndarray:
    """Mask of candidates no other candidate beats on every attribute (≥ all, > one)."""
    r = np.asarray(rewards, dtype=np.float64)
    ge = (r[:, None, :] >= r[None, :, :]).all(-1)
    gt = (r[:, None, :] > r[None, :, :]).any(-1)
    dominated = (ge & gt).any(0)  # [j] is dominated if some i >= j everywhere and > somewhere
    return ~dominated


@dataclass
class BestOfN:
    """The candidates, their reward vectors ``[n, k]``, scores vᵀr and the pick."""

    prompt: Prompt
    attributes: list[str]
    direction: np.ndarray
    candidates: list[str]
    rewards: np.ndarray
    scores: np.ndarray
    best: int
    front: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def response(self) -> str:
        return self.candidates[self.best]

    def rows(self) -> list[dict[str, object]]:
        """One dict per candidate (for tables and plots)."""
        return [
            {"candidate": i, "chosen": i == self.best, "on_front": bool(self.front[i]), "score": float(self.scores[i]),
             **{a: float(self.rewards[i, j]) for j, a in enumerate(self.attributes)}, "response": text}
            for i, text in enumerate(self.candidates)
        ]


def _attribute_view(reward_model: RewardModel, attributes: Sequence[str] | None) -> tuple[list[str], list[int]]:
    names = list(attributes) if attributes else list(reward_model.attributes)
    return names, [reward_model.index(a) for a in names]


def rerank(reward_model: RewardModel, rewards_all: np.ndarray, direction: Sequence[float],
           attributes: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """(rewards over the chosen attributes, scores vᵀr, index of the best) for precomputed rewards."""
    names, idx = _attribute_view(reward_model, attributes)
    v = unit_direction(direction)
    if len(v) != len(names):
        raise ConfigError(f"The direction has {len(v)} components for {len(names)} attributes ({', '.join(names)}).")
    rewards = np.asarray(rewards_all)[:, idx]
    scores = rewards @ v
    return rewards, scores, int(np.argmax(scores))


def best_of_n(lm: LoadedModel, prompt: Prompt, reward_model: RewardModel, direction: Sequence[float], *, n: int = 8,
              attributes: Sequence[str] | None = None, settings: SamplingOptions | None = None,
              system: str | None = None, batch_size: int = 16) -> BestOfN:
    """Sample ``n`` responses in one batch (seeded), score them with the reward model, keep the best by vᵀr."""
    if n < 1:
        raise ConfigError(f"n must be at least 1, got {n}.")
    names, _ = _attribute_view(reward_model, attributes)
    settings = settings or SamplingOptions()
    if not settings.do_sample and n > 1:
        raise ConfigError("Best-of-n with greedy decoding gives n identical candidates.", hint="Turn sampling on (temperature > 0).")
    t0 = time.perf_counter()
    candidates = generate(lm, [prompt] * n, settings, system=system)
    t1 = time.perf_counter()
    rewards_all = reward_model.score(lm, [prompt] * n, candidates, batch_size=batch_size)
    t2 = time.perf_counter()
    rewards, scores, best = rerank(reward_model, rewards_all, direction, names)
    return BestOfN(prompt=prompt, attributes=names, direction=unit_direction(direction), candidates=candidates, rewards=rewards,
                   scores=scores, best=best, front=pareto_front(rewards),
                   timings={"generate_s": t1 - t0, "score_s": t2 - t1, "score_s_per_candidate": (t2 - t1) / n})
