"""Training pairs from a stored dataset, any pair file or a labeling session, split into train and held-out.

Only labelled pairs (preferred A or B) train DPO; ties and unlabelled pairs are counted and
left out, so a user sees why a dataset of 500 pairs trains on 120. A session's A/B votes are
read through ``preference.votes`` (ties, both-bad and skips counted and left out there) and
held out by prompt; a run freezes them in its folder at start, so training, evaluation,
every rank and a resume see the same votes whatever is voted meanwhile.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.data.readers import read_pairs
from workbench.data.types import Pair
from workbench.errors import ConfigError, DataError
from workbench.files import atomic_write_text
from workbench.settings import Settings
from workbench.store import Store

SESSION_FILE = "session_votes.json"  # a session run's frozen votes, in its run folder
SPLIT_FILE = "split_ids.json"  # a dataset run's train and held-out pair ids, in its run folder


@dataclass
class PairSplit:
    train: list[Pair]
    held_out: list[Pair]
    skipped: int  # ties and unlabelled pairs, or a session's votes left out
    left_out: dict[str, int] = field(default_factory=dict)  # a session's reasons → counts
    record: dict[str, Any] = field(default_factory=dict)  # a session run's record: session, counts, vote snapshot

    def skipped_text(self) -> str:
        """What was left out, in words: 'skipping 3 ties/unlabelled' or the session's reasons."""
        if self.left_out:
            return "leaving out " + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(self.left_out.items()))
        return f"skipping {self.skipped} ties/unlabelled" if self.skipped else ""


def load_pairs(dataset: str, settings: Settings, format: str = "auto") -> list[Pair]:
    """``dataset`` is a file/folder path (any reader format) or the name of a stored dataset."""
    path = Path(dataset).expanduser()
    if path.exists():
        return read_pairs(path, format=format)
    if path.suffix or "/" in dataset or "\\" in dataset:
        raise DataError("does not exist.", path=path, hint="Check the path (relative paths start from the current folder), or give a stored dataset name.")
    if not settings.has_store():
        raise DataError(f"Dataset {dataset!r} is neither a file nor a stored dataset (no store yet at {settings.db_path}).",
                        hint="Give a path to a pair file, or import one with `workbench data import`.")

    store = Store(settings.store_target)
    try:
        names = [d["name"] for d in store.list_datasets()]
        if dataset not in names:
            raise DataError(f"Dataset {dataset!r} is neither a file nor a stored dataset.",
                            hint=f"Stored datasets: {', '.join(names) or 'none'}. Or give a path to a pair file.")
        return store.get_pairs(dataset)
    finally:
        store.close()


def _bucket(pair_id: str, seed: int) -> float:
    digest = hashlib.sha1(f"{seed}:{pair_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_pairs(pairs: list[Pair], held_out_fraction: float, seed: int = 0, source: str = "") -> PairSplit:
    """Deterministic split by pair id, so a resumed run and the evaluation see the same pairs."""
    labelled = [p for p in pairs if p.preferred in ("A", "B")]
    if not labelled:
        raise DataError(f"None of the {len(pairs)} pairs is labelled (preferred 'A' or 'B').", path=source or None,
                        hint="Label pairs in the Labeling tab and export them, or use a TRL chosen/rejected file.")
    held = [p for p in labelled if _bucket(p.id, seed) < held_out_fraction]
    if held_out_fraction > 0 and not held and len(labelled) > 1:
        held = [min(labelled, key=lambda p: _bucket(p.id, seed))]
    held_ids = {p.id for p in held}
    return PairSplit([p for p in labelled if p.id not in held_ids], held, len(pairs) - len(labelled))


def dpo_rows(pairs: list[Pair], tokenizer: Any) -> list[dict[str, Any]]:
    """TRL DPO rows: conversational when the tokenizer has a chat template, plain text otherwise."""
    if getattr(tokenizer, "chat_template", None):
        def msgs(prompt: Any) -> list[dict[str, str]]:
            return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)

        return [{"prompt": msgs(p.prompt), "chosen": [{"role": "assistant", "content": p.chosen}],
                 "rejected": [{"role": "assistant", "content": p.rejected}]} for p in pairs]
    return [{"prompt": p.prompt_text, "chosen": p.chosen, "rejected": p.rejected} for p in pairs]


def longest_sides(pairs: Sequence[Pair], tokenizer: Any) -> list[int]:
    """Per pair, the tokens of prompt + its longer response (+ EOS), counted as DPO and the report count them."""
    from workbench.training.logprobs import encode_pair  # imports torch: the CLI builds its flags from this module

    whole = 10**9  # no truncation: the length itself
    return [max(len(encode_pair(tokenizer, p.prompt, r, whole)[0]) for r in (p.chosen, p.rejected)) for p in pairs]


def check_max_length(pairs: Sequence[Pair], tokenizer: Any, max_length: int) -> None:
    """Refuse a ``max_length`` below every pair's length: TRL would truncate each row, so no response would be trained whole."""
    lengths = longest_sides(pairs, tokenizer)
    if lengths and min(lengths) > max_length:
        raise ConfigError(
            f"max_length {max_length} would truncate every one of the {len(lengths)} training pairs: the shortest prompt + "
            f"response is {min(lengths)} tokens (the longest {max(lengths)}).",
            hint=f"Set max_length to at least {min(lengths)}; {max(lengths)} keeps every pair whole.")


def session_split(settings: Settings, session: str, held_out_fraction: float, seed: int = 0, *, min_strength: int | None = None,
                  drop_pairs: Sequence[str] = (), min_votes: int = 1, min_annotators: int = 0) -> PairSplit:
    """A session's usable A/B votes as (train, held-out) pairs, split by prompt, with the run's record.

    ``drop_pairs`` are session pair ids left out on purpose (e.g. the likeliest to cause
    likelihood displacement by CHES); an id the session does not have is an error, not ignored.
    """
    from workbench.labeling.sessions import LabelingStore  # scipy (Bradley–Terry): only session runs need the labeling layer
    from workbench.preference.votes import SessionVotes, session_votes  # scipy: only in session_split()

    if not settings.has_store():
        raise DataError(f"No labeling session named '{session}': there is no store yet at {settings.db_path}.",
                        hint="Create a session in the Labeling tab (or `workbench label`) first.")
    with Store(settings.store_target) as store:
        labeling = LabelingStore(store)
        votes = session_votes(labeling, session, min_strength=min_strength)
        known = {p.id for p in labeling.pairs(session)}
    unknown = sorted(set(drop_pairs) - known)
    if unknown:
        raise ConfigError(f"drop_pairs names pair(s) that session '{session}' does not have: {', '.join(unknown[:5])}"
                          + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "") + ".",
                          hint="Use the pair ids listed by the displacement check (CHES) of this session.")
    drop = set(drop_pairs)
    kept = [v for v in votes.votes if v.pair_id not in drop]
    left_out = dict(votes.left_out)
    if len(kept) < len(votes.votes):
        left_out["dropped"] = len(votes.votes) - len(kept)
    kept_votes = SessionVotes(session, kept, left_out, votes.snapshot).require(min_votes=min_votes, min_annotators=min_annotators)
    train, held = kept_votes.split(held_out_fraction, seed)
    record = {**kept_votes.summary(), "trained_on": len(train), "held_out": len(held), "dropped_pairs": sorted(drop)}
    return PairSplit([v.as_pair() for v in train], [v.as_pair() for v in held], sum(left_out.values()), left_out, record)


def freeze_session_split(run_dir: Path, split: PairSplit) -> None:
    """Write a session run's pairs and record into its folder (once, at start)."""
    data = {"record": split.record, "left_out": split.left_out,
            "train": [p.to_dict() for p in split.train], "held_out": [p.to_dict() for p in split.held_out]}
    atomic_write_text(run_dir / SESSION_FILE, json.dumps(data, ensure_ascii=False))


def save_split_ids(run_dir: Path, split: PairSplit) -> None:
    """Write a dataset run's train and held-out pair ids (once, at start), so a later model diff can tell them apart."""
    data = {"train": [p.id for p in split.train], "held_out": [p.id for p in split.held_out]}
    atomic_write_text(run_dir / SPLIT_FILE, json.dumps(data, ensure_ascii=False))


@dataclass(frozen=True)
class RunSplitIds:
    """Which pair ids a run trained on and held out, as ids of the dataset's or session's own pairs."""

    train: frozenset[str]
    held_out: frozenset[str]

    def group(self, pair_id: str) -> str:
        """'train', 'held_out' or 'never_seen' (a pair the run was never given)."""
        return "train" if pair_id in self.train else "held_out" if pair_id in self.held_out else "never_seen"


def run_split_ids(run_dir: Path) -> RunSplitIds | None:
    """The run's saved split, or None when it saved none (not a DPO run, or one made before runs saved their ids).

    A session run's pairs are per vote (``pair:annotator``): they map back to the session's pair
    ids, which is what a diff over that session or its dataset sees.
    """
    frozen = frozen_session_split(run_dir)
    if frozen is not None:
        def ids(pairs: list[Pair]) -> frozenset[str]:
            return frozenset(str(p.metadata.get("session_pair_id", p.id)) for p in pairs)

        return RunSplitIds(ids(frozen.train), ids(frozen.held_out))
    path = run_dir / SPLIT_FILE
    if not path.exists():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return RunSplitIds(frozenset(data["train"]), frozenset(data["held_out"]))


def frozen_session_split(run_dir: Path) -> PairSplit | None:
    """The pairs a session run froze at start, or None before that."""
    path = run_dir / SESSION_FILE
    if not path.exists():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return PairSplit([Pair.from_dict(d) for d in data["train"]], [Pair.from_dict(d) for d in data["held_out"]],
                     sum(data["left_out"].values()), data["left_out"], data["record"])
