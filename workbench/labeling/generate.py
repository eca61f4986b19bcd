"""Make pairs to label: the same prompts answered by two sources, as a background job.

A source is a checkpoint (catalog name or path) with its own decoding settings and system
prompt, so "two checkpoints" and "one checkpoint under two settings" are the same job. The
job answers every prompt with both sources in batches (progress after each batch), keeps
the answers so far in ``responses.json`` in the run folder (a resumed run starts after the
last finished batch), then stores the pairs as a dataset — source names in
``metadata.source_a``/``source_b`` for Bradley–Terry — and optionally opens a session on it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from workbench.data.types import Pair
from workbench.errors import ConfigError
from workbench.files import atomic_write_text
from workbench.jobs import JobCancelled, JobContext, JobType
from workbench.settings import Settings

STATE_FILE = "responses.json"


def validate(config: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Normalise the config and refuse one that cannot produce a dataset, before any run exists."""
    from workbench.labeling.sessions import SessionSettings
    from workbench.models.generation import SamplingSettings
    from workbench.store import Store

    cfg = dict(config)
    unknown = sorted(set(cfg) - {"dataset", "prompts", "sources", "session", "session_settings", "batch_size"})
    if unknown:
        raise ConfigError(f"Unknown pair-generation setting(s): {', '.join(unknown)}.",
                          hint="Use dataset, prompts, sources, session, session_settings, batch_size.")
    dataset = cfg.get("dataset")
    if not isinstance(dataset, str) or not dataset.strip():
        raise ConfigError("The generated pairs need a dataset name ('dataset').", hint="E.g. 'greedy-vs-sampled'.")
    prompts = cfg.get("prompts")
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) and p.strip() for p in prompts):
        raise ConfigError("'prompts' must be a non-empty list of non-empty texts.", hint="One prompt per list item.")
    sources = cfg.get("sources")
    if not isinstance(sources, list) or len(sources) != 2:
        raise ConfigError("Exactly two sources are needed ('sources': [A, B]).",
                          hint="Each is {name, model, system?, sampling?}; the same model twice with different sampling is fine.")
    names = []
    for k, src in enumerate(sources):
        if not isinstance(src, dict) or not isinstance(src.get("model"), str) or not src["model"].strip():
            raise ConfigError(f"Source {k + 1} needs a 'model' (catalog name or folder).", hint="Run `workbench models` to list them.")
        SamplingSettings(**(src.get("sampling") or {}))  # raises ConfigError for bad values
        names.append(str(src.get("name") or f"source-{k + 1}"))
    if names[0] == names[1]:
        raise ConfigError(f"Both sources are named '{names[0]}'.", hint="Give them distinct names, e.g. 'greedy' and 't=1.0'.")
    with Store(settings.db_path) as store:
        if dataset in {d["name"] for d in store.list_datasets()}:
            raise ConfigError(f"A dataset named '{dataset}' already exists.", hint="Choose another dataset name.")
    if cfg.get("session"):
        SessionSettings.from_dict(cfg.get("session_settings"))
    cfg["sources"] = [{"name": n, "model": s["model"], "system": s.get("system") or None, "sampling": s.get("sampling") or {}}
                      for n, s in zip(names, sources, strict=True)]
    cfg["batch_size"] = int(cfg.get("batch_size") or 8)
    return cfg


def run(job: JobContext) -> None:
    """Answer every prompt with both sources, then store the pairs (and open the session)."""
    from workbench.context import AppContext
    from workbench.labeling.sessions import LabelingStore
    from workbench.models.generation import SamplingSettings, generate

    cfg = job.config
    prompts: list[str] = cfg["prompts"]
    state_path = Path(job.run_dir) / STATE_FILE
    answers: list[list[str]] = json.loads(state_path.read_text()) if job.resume and state_path.exists() else [[], []]
    ctx = AppContext(job.settings)
    total, batch = 2 * len(prompts), cfg["batch_size"]
    for k, src in enumerate(cfg["sources"]):
        if len(answers[k]) == len(prompts):
            continue
        lm = ctx.load_model(src["model"])
        sampling = SamplingSettings(**src["sampling"])
        while len(answers[k]) < len(prompts):
            chunk = prompts[len(answers[k]):len(answers[k]) + batch]
            answers[k] += generate(lm, chunk, sampling, system=src["system"])
            atomic_write_text(state_path, json.dumps(answers))
            job.progress(len(answers[0]) + len(answers[1]), total, f"{src['name']}: {len(answers[k])}/{len(prompts)}")
            if job.should_stop():
                raise JobCancelled
    a, b = cfg["sources"]
    pairs = [Pair(p, ra, rb, metadata={"source_a": a["name"], "source_b": b["name"], "model_a": a["model"], "model_b": b["model"],
                                       "sampling_a": a["sampling"], "sampling_b": b["sampling"], "system_a": a["system"],
                                       "system_b": b["system"]})
             for p, ra, rb in zip(prompts, answers[0], answers[1], strict=True)]
    n = ctx.store.import_pairs(cfg["dataset"], _distinct(pairs), source=f"generated by run {job.run_id}", format="generated")
    if cfg.get("session"):
        LabelingStore(ctx.store).create_session(cfg["session"], cfg["dataset"], cfg.get("session_settings") or {})
    job.set_summary(pairs=n, dataset=cfg["dataset"], session=cfg.get("session"))


def _distinct(pairs: list[Pair]) -> list[Pair]:
    """Repeated prompts with identical answers would share a content id: number the repeats."""
    seen: dict[str, int] = {}
    for p in pairs:
        n = seen.get(p.id, 0)
        seen[p.id] = n + 1
        if n:
            p.id = f"{p.id}-{n + 1}"
    return pairs


GENERATE_PAIRS = JobType("labeling.generate-pairs", run, validate,
                         description="Answer prompts with two sources (checkpoints or decoding settings) and store the pairs.")
