"""What the models think of a pair, shown to an annotator only after they voted.

For each response: its summed log-probability under the session's policy and reference
models, the implicit DPO reward margin β·[(log π(a) − log π_ref(a)) − (log π(b) − log π_ref(b))]
(positive = the policy, relative to the reference, prefers A), a saved reward model's score
difference, and the length difference. Over a whole session, the pairs where this model
preference points against the human majority form a queue worth a second look.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from workbench.data.types import Judgment, Pair
from workbench.labeling.sessions import SessionSettings


def model_scores(ctx: Any, pairs: Sequence[Pair], settings: SessionSettings, *, batch_size: int = 8) -> dict[str, dict[str, float]]:
    """Per pair id: ``len_diff`` (A − B, in words), and when configured ``logp_a/b``,
    ``ref_logp_a/b``, ``dpo_margin`` and ``reward_diff``; ``model_pref`` is the one used to
    compare with humans (DPO margin, else reward difference; absent if neither is set)."""
    from workbench.training.logprobs import sequence_logprobs  # torch: only in model_scores()

    pairs = list(pairs)
    out: dict[str, dict[str, float]] = {p.id: {"len_diff": float(len(p.response_a.split()) - len(p.response_b.split()))} for p in pairs}
    if not pairs:
        return out
    prompts = [p.prompt for p in pairs] * 2
    responses = [p.response_a for p in pairs] + [p.response_b for p in pairs]
    n = len(pairs)
    logp: dict[str, np.ndarray] = {}
    for key, name in (("logp", settings.policy_model), ("ref_logp", settings.reference_model)):
        if name:
            lm = ctx.get_model(name)
            logp[key] = sequence_logprobs(lm.model, lm.tokenizer, prompts, responses, batch_size=batch_size)
    for k, p in enumerate(pairs):
        row = out[p.id]
        for key, values in logp.items():
            row[f"{key}_a"], row[f"{key}_b"] = float(values[k]), float(values[n + k])
        if len(logp) == 2:
            row["dpo_margin"] = settings.beta * ((row["logp_a"] - row["ref_logp_a"]) - (row["logp_b"] - row["ref_logp_b"]))
            row["model_pref"] = row["dpo_margin"]
    if settings.reward_model:
        from workbench.preference.reward_heads import load_reward_model  # torch: only in model_scores()

        rm = load_reward_model(ctx.settings, settings.reward_model)
        rewards = rm.score(ctx.get_model(rm.base_path), prompts, responses)[:, 0]
        for k, p in enumerate(pairs):
            out[p.id]["reward_diff"] = float(rewards[k] - rewards[n + k])
            out[p.id].setdefault("model_pref", out[p.id]["reward_diff"])
    return out


def human_majority(judgments: Sequence[Judgment]) -> dict[str, str]:
    """Per pair, "A" or "B" when it has strictly more votes than any other outcome (skips ignored)."""
    tallies: dict[str, Counter[str]] = defaultdict(Counter)
    for j in judgments:
        outcome = getattr(j.outcome, "value", j.outcome)
        if outcome != "skip":
            tallies[j.pair_id][outcome] += 1
    out = {}
    for pid, tally in tallies.items():
        ranked = tally.most_common()
        if ranked[0][0] in ("A", "B") and (len(ranked) == 1 or ranked[1][1] < ranked[0][1]):
            out[pid] = ranked[0][0]
    return out


def disagreement_queue(judgments: Sequence[Judgment], scores: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """Pairs where the model's preference sign contradicts the human majority, most confident first."""
    rows = []
    for pid, human in human_majority(judgments).items():
        pref = scores.get(pid, {}).get("model_pref")
        if pref is None or pref == 0:
            continue
        model = "A" if pref > 0 else "B"
        if model != human:
            rows.append({"pair_id": pid, "humans": human, "model": model, "model_pref": pref})
    return sorted(rows, key=lambda r: -abs(r["model_pref"]))


def describe_scores(row: dict[str, float], order: str) -> str:
    """Markdown for the post-vote panel, in the annotator's displayed terms (left/right)."""
    side = {"A": "left" if order == "AB" else "right", "B": "right" if order == "AB" else "left"}
    lines = [f"- length: {side['A']} has {row['len_diff']:+.0f} words vs {side['B']}"]
    if "logp_a" in row:
        lines.append(f"- policy log-prob: {side['A']} {row['logp_a']:.1f}, {side['B']} {row['logp_b']:.1f}")
    if "ref_logp_a" in row:
        lines.append(f"- reference log-prob: {side['A']} {row['ref_logp_a']:.1f}, {side['B']} {row['ref_logp_b']:.1f}")
    if "dpo_margin" in row:
        lines.append(f"- implicit DPO reward margin β·Δlog(π/π_ref): {row['dpo_margin']:+.3f} "
                     f"(the policy leans {side['A'] if row['dpo_margin'] > 0 else side['B']})")
    if "reward_diff" in row:
        lines.append(f"- reward model: {side['A']} − {side['B']} = {row['reward_diff']:+.3f}")
    return "\n".join(lines)
