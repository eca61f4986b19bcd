"""A labeling session's votes as training data, read straight from the store (no export file).

Every A/B vote that currently counts becomes one (prompt, chosen, rejected) example with its
annotator (PAL's users), strength and the two sources. Ties, both-bad and skips say nothing
about which response is better, so they are counted and left out, as are votes below
``min_strength``. The snapshot (count and SHA-256 of the votes that count, at the moment
they were read) goes into a run's record: the same hash means the same training data.
The held-out split is by prompt, so no prompt is both trained on and tested on.
"""
from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

from workbench.data.types import Judgment, Pair, Prompt, pair_sources, prompt_text
from workbench.errors import ConfigError, DataError


class VoteSource(Protocol):
    """What this package reads from a labeling store; ``workbench.labeling.sessions.LabelingStore`` is one.

    The arrow runs one way: labeling owns votes as data (sessions, pairs, the vote log) and
    calls the statistics here; this package never imports labeling, so it declares the reads it needs."""

    def session(self, name: str) -> Any: ...  # a SessionInfo: .name, .settings (gold, policy_model)

    def list_sessions(self) -> list[Any]: ...

    def pairs(self, name: str) -> list[Pair]: ...

    def judgments(self, session: str) -> list[Judgment]: ...

    def repeats(self, session: str) -> list[Judgment]: ...


CLEAR = 2  # a vote without a strength counts as clear (the labeling view's default)


@dataclass
class Vote:
    """One usable A/B vote: the chosen and rejected response of one pair, by one annotator."""

    pair_id: str
    annotator: str
    prompt: Prompt
    chosen: str
    rejected: str
    outcome: str  # "A" or "B": which canonical side won
    strength: int
    weight: float
    chosen_source: str | None = None
    rejected_source: str | None = None
    aspects: dict[str, str] = field(default_factory=dict)
    displayed_order: str = "AB"

    def as_pair(self) -> Pair:
        """A labelled pair (A = chosen) with a per-vote id, the shape DPO training reads."""
        meta = {"annotator": self.annotator, "session_pair_id": self.pair_id, "weight": self.weight}
        return Pair(self.prompt, self.chosen, self.rejected, id=f"{self.pair_id}:{self.annotator}", preferred="A", metadata=meta)


@dataclass
class VoteSnapshot:
    """What the votes were when read: enough to tell later whether a rerun sees the same data."""

    session: str
    n_judgments: int
    sha256: str
    taken_at: float

    def to_dict(self) -> dict[str, Any]:
        return {"session": self.session, "n_judgments": self.n_judgments, "sha256": self.sha256, "taken_at": self.taken_at}


@dataclass
class SessionVotes:
    session: str
    votes: list[Vote]
    left_out: dict[str, int]  # reason -> count (tie, both_bad, skip, below_min_strength, unknown_pair)
    snapshot: VoteSnapshot

    @property
    def annotators(self) -> list[str]:
        return sorted({v.annotator for v in self.votes})

    @property
    def sources(self) -> list[str]:
        return sorted({s for v in self.votes for s in (v.chosen_source, v.rejected_source) if s is not None})

    def pairs(self) -> list[Pair]:
        return [v.as_pair() for v in self.votes]

    def split(self, held_out_fraction: float = 0.2, seed: int = 0) -> tuple[list[Vote], list[Vote]]:
        """(train, held-out) by prompt: every vote on one prompt lands on the same side.

        Prompts are ranked by a seeded hash of their text, and the first ⌈fraction · n⌉ are held
        out (at least one when there are two prompts or more), so the split does not depend on
        vote order and a rerun on the same snapshot holds out the same prompts.
        """
        if not 0 <= held_out_fraction < 1:
            raise ConfigError(f"held_out_fraction must be in [0, 1), got {held_out_fraction}.", hint="E.g. 0.2 holds out a fifth of the prompts.")
        keys = sorted({_prompt_key(v.prompt) for v in self.votes}, key=lambda k: hashlib.sha256(f"{seed}:{k}".encode()).hexdigest())
        n_held = min(len(keys) - 1, max(1, round(held_out_fraction * len(keys)))) if held_out_fraction > 0 and len(keys) > 1 else 0
        held = set(keys[:n_held])
        return [v for v in self.votes if _prompt_key(v.prompt) not in held], [v for v in self.votes if _prompt_key(v.prompt) in held]

    def require(self, *, min_votes: int = 1, min_sources: int = 0, min_annotators: int = 0) -> SessionVotes:
        """These votes, or a DataError saying how many there are and what is needed.

        ``min_sources=2`` is for questions about sources (win rates, Bradley–Terry), ``min_annotators``
        for per-annotator models (PAL).
        """
        left = ", ".join(f"{n} {k}" for k, n in sorted(self.left_out.items())) or "none"
        if len(self.votes) < min_votes:
            raise DataError(
                f"Session '{self.session}' has {len(self.votes)} usable A/B vote(s); this needs at least {min_votes} "
                f"(left out: {left}).",
                hint="Label more pairs with a clear A or B choice; ties, both-bad and skips cannot be trained on.")
        if len(self.sources) < min_sources:
            raise DataError(
                f"Session '{self.session}' compares {len(self.sources)} source(s) ({', '.join(self.sources) or 'none recorded'}); "
                f"this needs at least {min_sources}.",
                hint="Pairs need source metadata (source_a/source_b or model_a/model_b) naming two different systems.")
        if len(self.annotators) < min_annotators:
            raise DataError(
                f"Session '{self.session}' has usable votes from {len(self.annotators)} annotator(s) "
                f"({', '.join(self.annotators) or 'none'}); this needs at least {min_annotators}.",
                hint="Invite more annotators to the session.")
        return self

    def summary(self) -> dict[str, Any]:
        return {"session": self.session, "usable": len(self.votes), "left_out": dict(self.left_out),
                "annotators": self.annotators, "sources": self.sources, "snapshot": self.snapshot.to_dict()}


def _prompt_key(prompt: Prompt) -> str:
    return prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True, ensure_ascii=False)


def snapshot_of(session: str, judgments: list[Judgment]) -> VoteSnapshot:
    """Count and SHA-256 of the votes that count, in log order (timestamps included)."""
    blob = json.dumps([j.to_dict() for j in judgments], sort_keys=True, ensure_ascii=False)
    return VoteSnapshot(session, len(judgments), hashlib.sha256(blob.encode("utf-8")).hexdigest(), time.time())


def votes_from_judgments(session: str, pairs: list[Pair], judgments: list[Judgment], *, min_strength: int | None = None,
                         weight_by_strength: bool = False) -> SessionVotes:
    """The pure part of ``session_votes``: judgments on ``pairs`` → usable votes and counts."""
    if min_strength is not None and min_strength not in (1, 2):
        raise ConfigError(f"min_strength must be 1 (slight) or 2 (clear), got {min_strength!r}.",
                          hint="Leave it unset to keep every A/B vote.")
    by_id = {p.id: p for p in pairs}
    left_out: Counter[str] = Counter()
    votes = []
    for j in judgments:
        outcome = getattr(j.outcome, "value", j.outcome)
        pair = by_id.get(j.pair_id)
        if outcome not in ("A", "B"):
            left_out[outcome] += 1
            continue
        if pair is None:
            left_out["unknown_pair"] += 1
            continue
        strength = j.strength or CLEAR
        if min_strength is not None and strength < min_strength:
            left_out["below_min_strength"] += 1
            continue
        src = pair_sources(pair.metadata or {})
        chosen, rejected = (pair.response_a, pair.response_b) if outcome == "A" else (pair.response_b, pair.response_a)
        chosen_src, rejected_src = ((src if outcome == "A" else src[::-1]) if src else (None, None))
        votes.append(Vote(pair.id, j.annotator, pair.prompt, chosen, rejected, outcome, strength,
                          strength / CLEAR if weight_by_strength else 1.0, chosen_src, rejected_src, dict(j.aspects), j.displayed_order))
    return SessionVotes(session, votes, dict(left_out), snapshot_of(session, judgments))


def session_votes(labeling: VoteSource, session: str, *, min_votes: int = 1, min_sources: int = 0, min_annotators: int = 0,
                  min_strength: int | None = None, weight_by_strength: bool = False) -> SessionVotes:
    """A session's usable votes, refusing (DataError) when there are too few for the use at hand (see ``SessionVotes.require``)."""
    judgments = labeling.judgments(session)  # one read: the snapshot hashes exactly these
    result = votes_from_judgments(session, labeling.pairs(session), judgments, min_strength=min_strength,
                                  weight_by_strength=weight_by_strength)
    return result.require(min_votes=min_votes, min_sources=min_sources, min_annotators=min_annotators)


def prompt_texts(votes: list[Vote]) -> list[str]:
    """The distinct prompts of some votes as plain text, in first-seen order (for compare or generation)."""
    seen: dict[str, None] = {}
    for v in votes:
        seen.setdefault(prompt_text(v.prompt), None)
    return list(seen)
