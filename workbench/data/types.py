"""The one canonical shape of preference data, read from many formats.

A ``Pair`` is a prompt with two responses; a ``Judgment`` is one annotator's verdict on a
pair. Readers produce pairs (labelled pairs carry ``preferred``), exporters consume them.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

Message = dict[str, str]  # {"role": "user"|"assistant"|"system", "content": "..."}
Prompt = str | list[Message]


class Outcome(str, Enum):
    A = "A"
    B = "B"
    TIE = "tie"
    BOTH_BAD = "both_bad"
    SKIP = "skip"


def prompt_text(prompt: Prompt) -> str:
    """A plain-text rendering of a prompt (the last user turn is what people read first)."""
    if isinstance(prompt, str):
        return prompt
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in prompt)


@dataclass
class Pair:
    """A prompt and two responses.

    ``preferred`` is "A", "B" or "tie" when the source already holds a label (TRL, HH-RLHF,
    AlpacaEval), else ``None`` for unlabeled pairs that still need judging. For labelled
    sources A is the chosen response.
    """

    prompt: Prompt
    response_a: str
    response_b: str
    id: str = ""
    preferred: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.id:
            self.id = self.content_id()

    def content_id(self) -> str:
        """Stable id from the content, so re-importing the same pair finds the same row."""
        blob = json.dumps([self.prompt, self.response_a, self.response_b], ensure_ascii=False)
        return hashlib.sha1(blob.encode("utf-8")).hexdigest()[:16]

    @property
    def prompt_text(self) -> str:
        return prompt_text(self.prompt)

    @property
    def chosen(self) -> str | None:
        return {"A": self.response_a, "B": self.response_b}.get(self.preferred or "")

    @property
    def rejected(self) -> str | None:
        return {"A": self.response_b, "B": self.response_a}.get(self.preferred or "")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Pair:
        return cls(**{k: d[k] for k in ("prompt", "response_a", "response_b", "id", "preferred", "metadata") if k in d})


@dataclass
class Judgment:
    """One annotator's verdict on one pair, as stored in the append-only log.

    ``outcome`` is in terms of the pair's canonical A/B; ``displayed_order`` records what
    the annotator saw ("AB" or "BA") so position bias can be measured. ``soft`` is a judge's
    probability that A is the better response (AlpacaEval's fractional ``preference``), kept
    beside the discrete ``outcome`` so statistics can use either; ``None`` for a plain vote.
    """

    pair_id: str
    annotator: str
    outcome: Outcome
    strength: int | None = None  # 1 = slight, 2 = clear
    aspects: dict[str, str] = field(default_factory=dict)
    rationale: str = ""
    displayed_order: str = "AB"
    started_at: float | None = None
    submitted_at: float | None = None
    soft: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["outcome"] = self.outcome.value
        return d


HARD_VALUE = {"A": 1.0, "B": 0.0, "tie": 0.5}


def vote_value(j: Judgment, *, soft: bool = True) -> float | None:
    """How much the vote says A is better, in [0, 1]: the soft probability when there is one
    (and ``soft``), else 1 / 0 / ½ for A / B / tie; ``None`` for votes that compare nothing
    (both bad, skip). The one place every statistic turns a vote into a number."""
    outcome = getattr(j.outcome, "value", j.outcome)
    if outcome not in HARD_VALUE:
        return None
    return float(j.soft) if soft and j.soft is not None else HARD_VALUE[outcome]


def pair_sources(metadata: dict[str, Any]) -> tuple[str, str] | None:
    """Which systems wrote response A and B, from the usual metadata keys (None when unknown)."""
    for a, b in (("source_a", "source_b"), ("model_a", "model_b"), ("generator_1", "generator_2"), ("a_pole", "b_pole")):
        if isinstance(metadata.get(a), str) and isinstance(metadata.get(b), str):
            return metadata[a], metadata[b]
    return None


def identical_responses(pair: Pair) -> bool:
    """Both sources wrote the same text (up to surrounding whitespace): the vote cannot say
    which is better, so statistics leave it out and count it."""
    return pair.response_a.strip() == pair.response_b.strip()


def identical_votes(pairs: Sequence[Pair], judgments: Sequence[Judgment]) -> tuple[int, int]:
    """(votes, pairs) on pairs whose two responses are identical."""
    same = {p.id for p in pairs if identical_responses(p)}
    return sum(1 for j in judgments if j.pair_id in same), len(same)
