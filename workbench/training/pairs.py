"""Training pairs from a stored dataset or any pair file, split into train and held-out.

Only labelled pairs (preferred A or B) train DPO; ties and unlabelled pairs are counted and
left out, so a user sees why a dataset of 500 pairs trains on 120.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.data.types import Pair
from workbench.errors import DataError
from workbench.settings import Settings


@dataclass
class PairSplit:
    train: list[Pair]
    held_out: list[Pair]
    skipped: int  # ties and unlabelled pairs


def load_pairs(dataset: str, settings: Settings, format: str = "auto") -> list[Pair]:
    """``dataset`` is a file/folder path (any reader format) or the name of a stored dataset."""
    path = Path(dataset).expanduser()
    if path.exists():
        from workbench.data.readers import read_pairs

        return read_pairs(path, format=format)
    if path.suffix or "/" in dataset or "\\" in dataset:
        raise DataError("does not exist.", path=path, hint="Check the path (relative paths start from the current folder), or give a stored dataset name.")
    if not settings.db_path.exists():
        raise DataError(f"Dataset {dataset!r} is neither a file nor a stored dataset (no store yet at {settings.db_path}).",
                        hint="Give a path to a pair file, or import one with `workbench data import`.")
    from workbench.store import Store

    store = Store(settings.db_path)
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
