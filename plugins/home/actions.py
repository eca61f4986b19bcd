"""What the home tab and the overview do, as plain functions over the application context.

No UI library here: the Gradio tab and the Panel view only lay these results out, and the
same functions serve tests and notebooks.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections import Counter
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.app.ui import error_markdown, md_escape, model_choices
from workbench.context import AppContext, dataset_name_for
from workbench.data.readers import QUALITY_CHECKS, FileDataError
from workbench.data.types import Message, Pair
from workbench.errors import DataError, ModelError, SecurityError
from workbench.files import atomic_path
from workbench.jobs.options import SamplingOptions
from workbench.models.embedded import DEMO_MODEL_NAME
from workbench.models.generation import stream
from workbench.models.loading import LoadedModel
from workbench.store import name_problem

CATALOG_COLUMNS = ["name", "family", "params", "format", "source", "path"]
STATS_SAMPLE = 5000  # pairs read for the overview's charts; counts always cover the whole dataset
MAX_CATEGORIES = 30
MAX_LABEL_CHARS = 40  # longer values are text (system prompts, turns), not category labels
CHAT_NEEDS = ("causal_lm",)  # what a model must be to answer in the chat (a template is optional)


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
    lm = ctx.activate(name)
    seconds = time.perf_counter() - t0
    dtype = str(lm.dtype).removeprefix("torch.")
    note = " (already loaded)" if seconds < 0.05 else ""
    return (f"Loaded **{md_escape(lm.name)}** in {seconds:.1f} s{note} · device `{lm.device}` · dtype `{dtype}` · "
            f"{lm.n_layers} layers · format {lm.format}")


def active_model_line(ctx: AppContext) -> str:
    lm = ctx.active_model
    return f"Chatting with **{md_escape(lm.name)}**." if lm else "No model loaded yet: load one above to chat."


# -- datasets ----------------------------------------------------------------------------
def _upload_copy(ctx: AppContext, upload: Path) -> tuple[Path, bool]:
    """Copy an uploaded file into the home's data folder under a content-addressed name.

    Returns the copy and whether this call created it (so a failed import can remove it).
    """
    digest = hashlib.sha256()
    with open(upload, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    stem, dot, suffixes = upload.name.partition(".")
    dest = ctx.settings.all_data_roots()[0] / "uploads" / f"{stem}-{digest.hexdigest()[:12]}{dot}{suffixes}"
    if dest.exists():
        return dest, False
    with atomic_path(dest, keep_existing=True) as tmp:
        shutil.copyfile(upload, tmp)
    return dest, True


def _check_name(ctx: AppContext, name: str, replace: bool) -> None:
    """Refuse a dataset name before the file is read, in the form's words (the store's errors name its SQLite file)."""
    problem = name_problem(name)
    if problem:
        raise DataError(f"The dataset name {name[:80]!r} cannot be used: {problem}.", field="Dataset name",
                        hint="Type a plain name in “Dataset name”, e.g. 'hh-rlhf-sample'.")
    existing = {d["name"]: d["n_pairs"] for d in ctx.store.list_datasets()}
    if name.strip() in existing and not replace:
        raise DataError(f"A dataset named '{name.strip()}' already exists ({existing[name.strip()]} pairs).",
                        hint="Type another name in “Dataset name”, or tick “Replace a dataset of that name”.")


def _in_form_words(exc: FileDataError, shown: str) -> FileDataError:
    """The reader's error naming the file as the user picked or typed it, its hint in the form's words."""
    hint = None
    if exc.refused:
        boxes = ", ".join(f"“{QUALITY_CHECKS[kind]}”" for kind in exc.refused)
        hint = f"Fix or drop those records, or tick {boxes} under “Keep anyway” and import again."
    return exc.shown_as(shown, hint=hint)


def import_dataset(ctx: AppContext, *, upload: str | None, path: str, name: str, format: str, replace: bool,
                   received: Collection[str] = (), allow: Collection[str] = ()) -> tuple[str, str]:
    """Import an uploaded file or a path inside the data folders; return (dataset, message).

    ``upload`` must be a file Gradio itself received through its upload route (``received``,
    the Blocks' ``upload_file_set``) or lie inside the data folders: a crafted FileData
    naming any other server path is refused before the file is opened, so nothing of it
    (content, field names) can reach the error message. ``allow``: kinds of likely mistakes
    (``QUALITY_CHECKS``) the user ticked to keep anyway. Errors name the file as the user
    knows it: the uploaded file's own name (never the copy under uploads/), the path as typed.
    """
    typed = path.strip()
    if upload:
        source, shown = Path(upload), Path(upload).name
        if str(upload) not in received:
            try:
                ctx.check_data_path(source)
            except SecurityError:
                raise SecurityError("The file given as an upload was not uploaded through this page.",
                                    hint="Choose the file with the upload field, or type a path inside the data folders.") from None
    elif typed:
        source, shown = ctx.check_data_path(typed), typed
        if not source.exists():
            roots = ", ".join(str(r) for r in ctx.settings.all_data_roots())
            raise DataError(f"{typed}: there is no such file in the data folders ({roots}).",
                            hint="Check the spelling (a relative path starts from a data folder), or upload the file instead.")
    else:
        raise DataError("No file given.", hint="Upload a file, or type the path of a file inside the data folders.")
    name = name.strip() or dataset_name_for(Path(shown))
    _check_name(ctx, name, replace)
    copy, created = _upload_copy(ctx, source) if upload else (source, False)
    try:
        stored = ctx.import_dataset(copy, name=name, format=format, confine=True, replace=replace, allow=allow)
    except BaseException as exc:
        if created:
            copy.unlink(missing_ok=True)
        if isinstance(exc, FileDataError):
            raise _in_form_words(exc, shown) from None
        raise
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


WORKING = "⏳ *The model is working — the first words can take a few seconds.*"


def working_note(name: str, progress: str) -> str:
    """The status line while a model answers: how far it is (tokens so far / max, ETA), never an open-ended wait."""
    return f"⏳ *{md_escape(name)}: {md_escape(progress)}*"


def queued_note(before: str) -> str:
    """What a pane shows while another model answers first."""
    return f"⏳ *Waiting: {md_escape(before)} answers first, then this model.*"


def _can_chat(lm: LoadedModel, hint: str) -> LoadedModel:
    if lm.is_encoder:
        raise ModelError(f"{lm.name} is an encoder: it cannot generate text, so it cannot chat.", hint=hint)
    return lm


def chat_models(ctx: AppContext, compare: str | None = None) -> list[LoadedModel]:
    """The models that answer: the loaded one, then the "Compare with" one when one is picked.

    The second comes from the shared cache (``ctx.get_model``) and must be one this page offers,
    so a crafted request cannot load an arbitrary path. Checks run now, so the UI can report
    them before it shows the user's message as sent.
    """
    lm = ctx.active_model
    if lm is None:
        raise ModelError("No model is loaded.", hint="Choose a model in the Models table above and press Load.")
    models = [_can_chat(lm, "Load a causal language model such as the demo model to chat.")]
    if compare:
        if compare not in model_choices(ctx):
            raise ModelError(f"{compare!r} is not one of the models this page offers.", hint="Pick a model in “Compare with”.")
        models.append(_can_chat(ctx.get_model(compare), "Pick a causal language model in “Compare with”, or leave it empty."))
    return models


@dataclass
class ChatUpdate:
    """One state of the chat while a message is answered: a conversation per model, and the status line."""

    panes: list[list[Message]]
    status: str


def answer(models: list[LoadedModel], conversations: list[list[Message]], settings: SamplingOptions) -> Iterator[ChatUpdate]:
    """Stream each model's reply to its own conversation (whose last message is the user's).

    The models answer one after the other: sampling draws from torch's global generator, so
    only then does a seed give each model the answer it would give alone, and on a CPU two
    generations at once are no faster than in turn. Until its first words arrive, every pane
    shows a note (working, or waiting for the model before it). A failure ends the turn with
    the error as the status and the unanswered notes removed.
    """
    panes = [[*conversation, {"role": "assistant", "content": WORKING if i == 0 else queued_note(models[i - 1].name)}]
             for i, conversation in enumerate(conversations)]
    pending = set(range(len(panes)))  # panes still showing a note instead of an answer
    yield ChatUpdate(panes, WORKING)
    try:
        for i, (lm, conversation) in enumerate(zip(models, conversations, strict=True)):
            if i:
                panes[i][-1]["content"] = WORKING
                yield ChatUpdate(panes, WORKING)
            for part in stream(lm, conversation, settings):
                if part.text:
                    panes[i][-1]["content"] = part.text
                    pending.discard(i)
                yield ChatUpdate(panes, working_note(lm.name, part.note()))
            if i in pending:  # the model answered nothing
                panes[i][-1]["content"] = ""
                pending.discard(i)
    except Exception as exc:  # shown in the page like any failure (ui.error_markdown), not left as a stuck note
        for i in pending:
            panes[i].pop()
        yield ChatUpdate(panes, error_markdown(exc))
        return
    yield ChatUpdate(panes, "")
