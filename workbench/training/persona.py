"""A semi-synthetic pluralistic-preference benchmark built from persona statements.

Design (docs/pal_persona.md): each persona trait file holds statements that either express
the trait (answer_matching_behavior " Yes") or its opposite (" No"). K latent groups each
like, dislike or ignore every trait (θ_k ∈ {−1, 0, +1}^T); a user is a mixture
w_i ~ Dirichlet(α) of groups with θ_i = Σ_k w_ik θ_k. A statement s of trait t with sign
σ_s has utility u_i(s) = σ_s·θ_i[t]. A pair is two statements of different traits; the user
prefers a with probability sigmoid(β·(u_i(a) − u_i(b))), near-indifferent pairs
(|Δu| < min_gap) are redrawn, a bounded number of times. Train and test pairs use disjoint statements, so test accuracy
measures generalisation to unseen text, not memorisation. Unseen users come from the same
groups with fresh weights; their pairs are a pool of few-shot examples plus a test set.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workbench.data.readers import read_user_text
from workbench.data.types import Pair
from workbench.errors import ConfigError, DataError
from workbench.files import atomic_path, atomic_write_text

DEFAULT_TRAITS = [
    "politically-conservative", "anti-immigration", "believes-abortion-should-be-illegal", "subscribes-to-Atheism",
    "interest-in-art", "interest-in-music", "extraversion", "openness", "risk-seeking", "subscribes-to-utilitarianism",
]
PROMPT = "Which of these two statements would you rather say about yourself?"


@dataclass
class PersonaSpec:
    traits: list[str] = field(default_factory=lambda: list(DEFAULT_TRAITS))
    n_groups: int = 4
    n_seen_users: int = 50
    n_unseen_users: int = 20
    train_pairs_per_user: int = 160
    test_pairs_per_user: int = 40
    unseen_pool_per_user: int = 100
    statements_per_trait: int = 150
    min_confidence: float = 0.85
    test_statement_fraction: float = 0.2
    alpha: float = 0.2
    beta: float = 3.0
    min_gap: float = 0.2
    seed: int = 0
    allow_unbalanced: bool = False  # use what a trait has instead of refusing fewer than statements_per_trait / 2 per answer
    draws_per_pair: int = 200  # pair draws allowed per wanted pair before giving up (rejection sampling must end)


@dataclass
class Statement:
    text: str
    trait: int
    sign: int  # +1 expresses the trait, −1 its opposite


OPTIONS_HINT = "--min-confidence, --statements-per-trait or --allow-unbalanced (PersonaSpec min_confidence, statements_per_trait, allow_unbalanced)"


def _confident_statements(path: Path, min_confidence: float) -> dict[int, list[str]]:
    """The trait file's statements with ``label_confidence ≥ min_confidence``, by sign (+1 Yes, −1 No)."""
    if not path.exists():
        raise DataError("persona trait file not found.", path=path, hint="Check the persona folder and the trait names.")
    by_sign: dict[int, list[str]] = {1: [], -1: []}
    for line_no, line in enumerate(read_user_text(path).splitlines(), 1):  # the readers' opener: no FIFO hang
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            sign = 1 if row["answer_matching_behavior"].strip() == "Yes" else -1
            if float(row["label_confidence"]) >= min_confidence:
                by_sign[sign].append(row["statement"])
        except (json.JSONDecodeError, KeyError, AttributeError, TypeError, ValueError) as err:
            raise DataError(f"not a persona record ({err}).", path=path, line=line_no,
                            hint="Each line needs statement, label_confidence and answer_matching_behavior.") from None
    return by_sign


def trait_counts(persona_dir: Path, traits: list[str], min_confidence: float) -> dict[str, dict[str, int]]:
    """Confident statements available per trait and answer: ``{trait: {"yes": n, "no": m}}``."""
    out = {}
    for trait in traits:
        by_sign = _confident_statements(persona_dir / f"{trait}.jsonl", min_confidence)
        out[trait] = {"yes": len(by_sign[1]), "no": len(by_sign[-1])}
    return out


def read_statements(persona_dir: Path, spec: PersonaSpec, rng: np.random.Generator) -> tuple[list[Statement], dict[str, dict[str, int]]]:
    """Confident statements per trait, ``statements_per_trait / 2`` of each answer, and the counts used.

    A trait with no confident statement of one answer is refused; one with fewer than asked
    is refused unless ``allow_unbalanced`` (then it uses what it has, and the counts say so).
    """
    out: list[Statement] = []
    half = spec.statements_per_trait // 2
    used: dict[str, dict[str, int]] = {}
    short = []
    for t, trait in enumerate(spec.traits):
        path = persona_dir / f"{trait}.jsonl"
        by_sign = _confident_statements(path, spec.min_confidence)
        for sign, texts in by_sign.items():
            if not texts:
                raise DataError(f"no statements with answer {'Yes' if sign > 0 else 'No'} and confidence ≥ {spec.min_confidence}.",
                                path=path, hint="Lower --min-confidence (PersonaSpec min_confidence) or choose another trait.")
        if min(len(v) for v in by_sign.values()) < half:
            short.append(f"{trait} ({len(by_sign[1])} Yes / {len(by_sign[-1])} No)")
        for sign, texts in by_sign.items():
            pick = rng.permutation(len(texts))[:half]
            out.extend(Statement(texts[i], t, sign) for i in pick)
        used[trait] = {"yes": min(half, len(by_sign[1])), "no": min(half, len(by_sign[-1]))}
    if short and not spec.allow_unbalanced:
        raise DataError(f"{len(short)} trait(s) have fewer than {half} statements of an answer with confidence ≥ "
                        f"{spec.min_confidence}: {', '.join(short)}.", path=persona_dir,
                        hint=f"Choose other traits, or use {OPTIONS_HINT}.")
    return out, used


def group_preferences(spec: PersonaSpec, rng: np.random.Generator, max_tries: int = 1000) -> np.ndarray:
    """θ [K, T] in {−1, 0, +1}, redrawn (at most ``max_tries`` times) until groups are distinct and every group cares about something."""
    n_traits = len(spec.traits)
    possible = 3 ** n_traits - 1  # rows with at least one non-zero entry
    if spec.n_groups > possible:
        raise ConfigError(f"{spec.n_groups} groups cannot differ over {n_traits} trait(s): there are only {possible} distinct preference rows.",
                          hint="Use fewer groups (--groups) or more traits (--traits).")
    for _ in range(max_tries):
        theta = rng.choice([-1.0, 0.0, 1.0], p=[0.4, 0.2, 0.4], size=(spec.n_groups, n_traits))
        if len({tuple(r) for r in theta}) == spec.n_groups and (np.abs(theta).sum(1) > 0).all():
            return theta
    raise ConfigError(f"No {spec.n_groups} distinct groups over {n_traits} traits in {max_tries} draws.",
                      hint="Use fewer groups (--groups), more traits (--traits) or another --seed.")


def _pairs(statements: list[Statement], theta_i: np.ndarray, n: int, spec: PersonaSpec, rng: np.random.Generator,
           who: str) -> Iterator[tuple[Statement, Statement, float]]:
    """``n`` pairs of different traits whose utility gap clears ``min_gap``, in at most ``draws_per_pair × n`` draws."""
    made, limit = 0, spec.draws_per_pair * n if statements else 0
    for _ in range(limit):
        if made == n:
            return
        a, b = (statements[i] for i in rng.integers(0, len(statements), size=2))
        if a.trait == b.trait:
            continue
        du = a.sign * theta_i[a.trait] - b.sign * theta_i[b.trait]
        if abs(du) < spec.min_gap:
            continue
        made += 1
        yield a, b, float(1 / (1 + np.exp(-spec.beta * du)))
    if made < n:
        pool = np.bincount([s.trait for s in statements], minlength=len(spec.traits))
        detail = "; ".join(f"{t}: weight {w:+.2f}, {c} statements" for t, w, c in zip(spec.traits, theta_i, pool, strict=True))
        raise DataError(f"{who}: only {made} of {n} pairs in {limit:,} draws. A pair needs two traits' statements whose utility "
                        f"gap is ≥ min_gap {spec.min_gap}; per trait ({detail}).",
                        hint="Use more traits or traits with more statements, lower --min-gap, or another --seed; "
                             "--draws-per-pair allows more tries.")


def build_persona_benchmark(persona_dir: str | Path, spec: PersonaSpec | None = None) -> tuple[list[Pair], dict[str, Any]]:
    """Pairs (with user, user_kind, split, p_a, group in metadata) and the hidden ground truth."""
    spec = spec or PersonaSpec()
    rng = np.random.default_rng(spec.seed)
    statements, used = read_statements(Path(persona_dir), spec, rng)
    is_test = rng.random(len(statements)) < spec.test_statement_fraction
    pools = {"train": [s for s, t in zip(statements, is_test, strict=True) if not t], "test": [s for s, t in zip(statements, is_test, strict=True) if t]}
    theta = group_preferences(spec, rng)
    users: list[dict[str, Any]] = []
    pairs: list[Pair] = []
    for kind, n_users in (("seen", spec.n_seen_users), ("unseen", spec.n_unseen_users)):
        for j in range(n_users):
            w = rng.dirichlet([spec.alpha] * spec.n_groups)
            uid = f"{kind}-{j:03d}"
            users.append({"user": uid, "kind": kind, "weights": w.round(4).tolist(), "group": int(w.argmax())})
            theta_i = w @ theta
            n_train = spec.train_pairs_per_user if kind == "seen" else spec.unseen_pool_per_user
            for split, n in (("train", n_train), ("test", spec.test_pairs_per_user)):
                for a, b, p_a in _pairs(pools[split], theta_i, n, spec, rng, f"User {uid}, {split} pairs"):
                    pairs.append(Pair(
                        prompt=PROMPT, response_a=a.text, response_b=b.text, preferred="A" if rng.random() < p_a else "B",
                        id=f"{uid}-{split}-{len(pairs)}",
                        metadata={"user": uid, "user_kind": kind, "split": split, "p_a": round(p_a, 4), "group": int(w.argmax()),
                                  "trait_a": spec.traits[a.trait], "trait_b": spec.traits[b.trait]},
                    ))
    truth = {"spec": asdict(spec), "group_preferences": theta.tolist(), "users": users,
             "n_statements": {k: len(v) for k, v in pools.items()}, "statements_per_trait": used}
    return pairs, truth


def write_benchmark(pairs: list[Pair], truth: dict[str, Any], out_dir: str | Path) -> Path:
    """``pairs.jsonl`` (canonical pair rows, readable by ``read_pairs``) and ``truth.json``."""
    out = Path(out_dir)
    with atomic_path(out / "pairs.jsonl") as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for p in pairs:
            fh.write(json.dumps(p.to_dict(), ensure_ascii=False) + "\n")
    atomic_write_text(out / "truth.json", json.dumps(truth, indent=1))
    return out / "pairs.jsonl"
