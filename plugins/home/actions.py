"""What the home tab and the overview do, as plain functions over the application context.

No UI library here: the Gradio tab and the Panel view only lay these results out, and the
same functions serve tests and notebooks.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from collections import Counter
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.context import AppContext
from workbench.data.types import Message, Pair
from workbench.errors import DataError, ModelError, SecurityError, WorkbenchError
from workbench.models.embedded import DEMO_MODEL_NAME
from workbench.models.generation import SamplingSettings, stream

CATALOG_COLUMNS = ["name", "family", "params", "format", "source", "path"]
STATS_SAMPLE = 5000  # pairs read for the overview's charts; counts always cover the whole dataset
MAX_CATEGORIES = 30
MAX_LABEL_CHARS = 40  # longer values are text (system prompts, turns), not category labels

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#|])")


def md_escape(text: str) -> str:
    """Show text literally in Markdown (paths and field names are full of underscores)."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def error_markdown(exc: WorkbenchError) -> str:
    """A WorkbenchError as the page shows it: what, where and what to do, never a traceback."""
    text = f"**Error:** {md_escape(exc.message)}"
    if exc.hint:
        text += f"\n\n→ {md_escape(exc.hint)}"
    return text


# -- models ------------------------------------------------------------------------------
def catalog_table(ctx: AppContext) -> tuple[list[list[str]], list[str]]:
    """Catalog rows and loadable names (demo model first) from one scan of the model roots."""
    entries = ctx.catalog()
    rows = [[str(row[c]) for c in CATALOG_COLUMNS] for row in (e.to_row() for e in entries)]
    names = sorted(dict.fromkeys(e.name for e in entries), key=lambda n: n != DEMO_MODEL_NAME)
    return rows, names


def load_model(ctx: AppContext, name: str) -> str:
    """Load ``name`` as the active model and describe it in one Markdown line."""
    if not name:
        raise ModelError("No model chosen.", hint="Pick a model from the dropdown, then press Load.")
    t0 = time.perf_counter()
    lm = ctx.load_model(name)
    seconds = time.perf_counter() - t0
    dtype = str(lm.dtype).removeprefix("torch.")
    note = " (already loaded)" if seconds < 0.05 else ""
    return (f"Loaded **{md_escape(lm.name)}** in {seconds:.1f} s{note} · device `{lm.device}` · dtype `{dtype}` · "
            f"{lm.n_layers} layers · format {lm.format}")


def active_model_line(ctx: AppContext) -> str:
    lm = ctx.active_model
    return f"Chatting with **{md_escape(lm.name)}**." if lm else "No model loaded yet: load one above to chat."


# -- datasets ----------------------------------------------------------------------------
def dataset_choices(ctx: AppContext) -> list[str]:
    return [d["name"] for d in ctx.store.list_datasets()]


def _upload_copy(ctx: AppContext, upload: Path) -> tuple[Path, bool]:
    """Copy an uploaded file into the home's data folder under a content-addressed name.

    Returns the copy and whether this call created it (so a failed import can remove it).
    """
    digest = hashlib.sha256()
    with open(upload, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    stem, dot, suffixes = upload.name.partition(".")
    folder = ctx.settings.all_data_roots()[0] / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / f"{stem}-{digest.hexdigest()[:12]}{dot}{suffixes}"
    if dest.exists():
        return dest, False
    tmp = dest.with_name(dest.name + ".part")
    shutil.copyfile(upload, tmp)
    tmp.replace(dest)
    return dest, True


def import_dataset(ctx: AppContext, *, upload: str | None, path: str, name: str, format: str, replace: bool,
                   received: Collection[str] = (), allow: Collection[str] = ()) -> tuple[str, str]:
    """Import an uploaded file or a path inside the data folders; return (dataset, message).

    ``upload`` must be a file Gradio itself received through its upload route (``received``,
    the Blocks' ``upload_file_set``) or lie inside the data folders: a crafted FileData
    naming any other server path is refused before the file is opened, so nothing of it
    (content, field names) can reach the error message. ``allow``: kinds of likely mistakes
    (``QUALITY_CHECKS``) the user ticked to keep anyway.
    """
    name = name.strip() or None
    if upload:
        source = Path(upload)
        if str(upload) not in received:
            try:
                ctx.check_data_path(source)
            except SecurityError:
                raise SecurityError("The file given as an upload was not uploaded through this page.",
                                    hint="Choose the file with the upload field, or type a path inside the data folders.") from None
        copy, created = _upload_copy(ctx, source)
        try:
            stored = ctx.import_dataset(copy, name=name or source.name.split(".")[0], format=format, confine=True, replace=replace,
                                       allow=allow)
        except BaseException:
            if created:
                copy.unlink(missing_ok=True)
            raise
    elif path.strip():
        stored = ctx.import_dataset(path.strip(), name=name, format=format, confine=True, replace=replace, allow=allow)
    else:
        raise DataError("No file given.", hint="Upload a file, or type the path of a file inside the data folders.")
    return stored, f"Imported **{ctx.store.count_pairs(stored)}** pairs as dataset **{md_escape(stored)}**."


def prompt_markdown(pair: Pair) -> str:
    if isinstance(pair.prompt, str):
        return pair.prompt
    return "\n\n".join(f"**{m['role']}:** {m['content']}" for m in pair.prompt)


@dataclass
class PairView:
    """One pair laid out for reading; ``number`` is 1-based and clamped to the dataset."""

    number: int
    total: int
    header: str
    prompt: str = ""
    response_a: str = ""
    response_b: str = ""
    metadata: str = ""


def pair_view(ctx: AppContext, dataset: str | None, number: int | float | None) -> PairView:
    if not dataset:
        return PairView(0, 0, "Choose a dataset to browse its pairs.")
    total = ctx.store.count_pairs(dataset)
    if total == 0:
        return PairView(0, 0, f"Dataset **{md_escape(dataset)}** has no pairs.")
    number = min(max(int(number or 1), 1), total)
    pair = ctx.store.get_pairs(dataset, offset=number - 1, limit=1)[0]
    label = f" · labelled: **{pair.preferred}** preferred" if pair.preferred else " · unlabeled"
    header = f"Pair **{number}** of **{total}** in **{md_escape(dataset)}** · id `{pair.id}`{label}"
    meta = f"```json\n{json.dumps(pair.metadata, indent=1, ensure_ascii=False)}\n```" if pair.metadata else "_No metadata._"
    return PairView(number, total, header, prompt_markdown(pair), pair.response_a, pair.response_b, meta)


@dataclass
class DatasetStats:
    """Counts over the whole dataset, distributions over its first ``sampled`` pairs."""

    name: str
    n_pairs: int
    sampled: int
    n_labelled: int
    categories: dict[str, Counter] = field(default_factory=dict)
    words_a: list[int] = field(default_factory=list)
    words_b: list[int] = field(default_factory=list)


def _categorical(pairs: list[Pair]) -> dict[str, Counter]:
    """Metadata fields with a few distinct short labels (attributes, topics…), counted."""
    columns: dict[str, Counter] = {}
    for pair in pairs:
        for key, value in pair.metadata.items():
            if isinstance(value, (str, bool)):
                columns.setdefault(key, Counter())[str(value)] += 1
    return {
        k: c for k, c in columns.items()
        if 2 <= len(c) <= MAX_CATEGORIES and c.total() > len(pairs) // 2 and max(map(len, c)) <= MAX_LABEL_CHARS
    }


def dataset_stats(ctx: AppContext, name: str, sample: int = STATS_SAMPLE) -> DatasetStats:
    pairs = ctx.store.get_pairs(name, offset=0, limit=sample)
    return DatasetStats(
        name=name,
        n_pairs=ctx.store.count_pairs(name),
        sampled=len(pairs),
        n_labelled=sum(p.preferred is not None for p in pairs),
        categories=_categorical(pairs),
        words_a=[len(p.response_a.split()) for p in pairs],
        words_b=[len(p.response_b.split()) for p in pairs],
    )


# -- chat --------------------------------------------------------------------------------
def _text(content: Any) -> str:
    """Gradio 6 sends message content as a list of parts; the model wants plain text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return str(content)


def to_messages(history: list[dict[str, Any]]) -> list[Message]:
    return [{"role": m["role"], "content": _text(m["content"])} for m in history if m.get("role") in ("user", "assistant", "system")]


def chat_reply(ctx: AppContext, history: list[Message], settings: SamplingSettings) -> Iterator[str]:
    """The active model's streamed reply to the conversation (its last message is the user's).

    Checks run now, not at the first ``next()``, so the UI can report them before it shows
    the user's message as sent.
    """
    lm = ctx.active_model
    if lm is None:
        raise ModelError("No model is loaded.", hint="Choose a model in the Models table above and press Load.")
    if lm.is_encoder:
        raise ModelError(f"{lm.name} is an encoder: it cannot generate text.", hint="Load a causal language model such as the demo model to chat.")
    return stream(lm, history, settings)
