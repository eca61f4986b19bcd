"""Make pairs to label: the same prompts answered by two sources, as a background job.

A source is a checkpoint (catalog name or path) with its own decoding settings, system prompt
and steering (saved vectors at coefficients), so "two checkpoints", "one checkpoint under two
settings" and "unsteered vs steered" are the same job. The
job answers every prompt with both sources in batches (progress after each batch), keeps
the answers so far in ``responses.json`` in the run folder (a resumed run starts after the
last finished batch), then stores the pairs as a dataset — source names in
``metadata.source_a``/``source_b`` for Bradley–Terry, and the source under test in
``metadata.candidate`` when the config names one (the verdict is then about that side) — and
optionally opens a session on it. Pairs where both sources wrote the same text are counted at
once (the run's summary, its warnings — `workbench runs show` prints them — and the last
progress line say so and suggest sampling): greedy decoding of
a barely-changed model often gives identical answers, which no vote can tell apart.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from workbench.data.types import Pair, identical_responses
from workbench.errors import ConfigError
from workbench.files import atomic_write_text
from workbench.jobs import JobCancelled, JobContext, JobType
from workbench.jobs.config import JobConfig, option, parsed
from workbench.jobs.options import SamplingOptions
from workbench.models.embedded import DEMO_MODEL_NAME
from workbench.settings import Settings

if TYPE_CHECKING:  # both import torch, which building the job's form does not need
    from workbench.models.loading import LoadedModel
    from workbench.steering.vectors import SteeringVector

STATE_FILE = "responses.json"


@dataclass
class SteeringSetting:
    """One saved steering vector (by name, from the vector library) added at a coefficient."""

    vector: str | None = option(None, "Name of a saved steering vector.")
    coefficient: float = option(0.0, "How many of the vector's natural scales to add (0 = not steered).", min=-64.0, max=64.0)


@dataclass
class PairSource:
    """One side of the pairs: a checkpoint with its decoding settings, system prompt and steering."""

    model: str | None = option(None, "Catalog name or folder of the checkpoint.")
    name: str | None = option(None, "Name recorded as the pair's source (default: source-1 / source-2).")
    system: str | None = option(None, "System prompt.")
    sampling: SamplingOptions = option(default_factory=SamplingOptions, help="Decoding settings (temperature, max_new_tokens, …).")
    steering: list[SteeringSetting] = option(default_factory=list, help="Steering while this source answers: "
                                             "[{vector, coefficient}, …] (default: none).")


@dataclass
class GeneratePairsConfig(JobConfig):
    """Options of a pair-generation run (the Runs form and the YAML box are generated from these)."""

    what: ClassVar[str] = "Pair generation"
    example: ClassVar[dict[str, Any]] = {
        "dataset": "greedy-vs-sampled",
        "prompts": ["Explain what a preference dataset is in two sentences.", "Give one tip for writing clear emails."],
        "sources": [{"name": "greedy", "model": DEMO_MODEL_NAME, "sampling": {"do_sample": False, "max_new_tokens": 64}},
                    {"name": "sampled", "model": DEMO_MODEL_NAME, "sampling": {"temperature": 1.0, "max_new_tokens": 64}}],
        "session": "greedy-vs-sampled",
    }
    dataset: str | None = option(None, "Name of the dataset the pairs are stored as (a new one).", new_name=True)
    prompts: list[str] = option(default_factory=list, help="Prompts, one per list item.")
    sources: list[PairSource] = option(default_factory=list, help="Exactly two sources: [{name, model, system?, sampling?}, …].")
    session: str | None = option(None, "Open a blind labeling session of this name on the new dataset.")
    candidate: str | None = option(None, "Name of the source under test (e.g. tuned, steered): the verdict is about its side.")
    session_settings: dict[str, Any] = option(default_factory=dict, help="Settings of that session (overlap, …).")
    batch_size: int = option(8, "Prompts answered per batch (progress and resume points).", min=1)

    def check(self) -> None:
        if not self.dataset or not self.dataset.strip():
            raise ConfigError("The generated pairs need a dataset name ('dataset').", hint="E.g. 'greedy-vs-sampled'.")
        if not self.prompts or not all(p.strip() for p in self.prompts):
            raise ConfigError("'prompts' must be a non-empty list of non-empty texts.", hint="One prompt per list item.")
        if len(self.sources) != 2:
            raise ConfigError("Exactly two sources are needed ('sources': [A, B]).",
                              hint="Each is {name, model, system?, sampling?}; the same model twice with different sampling is fine.")
        for k, src in enumerate(self.sources):
            if not src.model or not src.model.strip():
                raise ConfigError(f"Source {k + 1} needs a 'model' (catalog name or folder).", hint="Run `workbench models` to list them.")
            src.name = src.name or f"source-{k + 1}"
            src.system = src.system or None
            for s in src.steering:
                if not s.vector or not s.vector.strip():
                    raise ConfigError(f"Source {k + 1} ({src.name}) has a steering entry without a 'vector'.",
                                      hint="Name a saved steering vector (`workbench steer vectors` lists them).")
        if self.sources[0].name == self.sources[1].name:
            raise ConfigError(f"Both sources are named '{self.sources[0].name}'.",
                              hint="Give them distinct names, e.g. 'greedy' and 't=1.0'.")
        names = [src.name for src in self.sources]
        if self.candidate is not None and self.candidate not in names:
            raise ConfigError(f"'candidate' is {self.candidate!r}, which is not one of the sources ({', '.join(map(str, names))}).",
                              hint="Name the source under test exactly as in 'sources', or leave 'candidate' out.")


def validate(config: GeneratePairsConfig | dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Refuse a config that cannot produce a dataset (bad decoding settings, taken name), before any run exists."""
    # the store and the labeling layer: checking a config needs them, building its form does not
    from workbench.labeling.sessions import LabelingStore, SessionSettings
    from workbench.steering.library import load_vector
    from workbench.store import Store

    cfg = parsed(GeneratePairsConfig, config)  # the sampling settings are checked by their own group (SamplingOptions)
    for src in cfg.sources:
        for s in src.steering:
            load_vector(settings, s.vector)  # a ConfigError naming the saved vectors when it is not one of them
    with Store(settings.store_target) as store:
        if cfg.dataset in {d["name"] for d in store.list_datasets()}:
            raise ConfigError(f"A dataset named '{cfg.dataset}' already exists.", hint="Choose another dataset name.")
        if cfg.session and cfg.session in {s.name for s in LabelingStore(store).list_sessions()}:
            raise ConfigError(f"A labeling session named '{cfg.session}' already exists.", hint="Choose another session name.")
    if cfg.session:
        SessionSettings.from_dict(cfg.session_settings)
    return cfg.to_dict()


def run(job: JobContext) -> None:
    """Answer every prompt with both sources, then store the pairs (and open the session)."""
    # torch, generation and the labeling layer: the job's worker needs them, building its form does not
    from workbench.labeling.sessions import LabelingStore
    from workbench.models.generation import generate
    from workbench.steering.library import load_vector
    from workbench.steering.vectors import steer
    from workbench.store import Store

    cfg: GeneratePairsConfig = job.options
    prompts = cfg.prompts
    state_path = Path(job.run_dir) / STATE_FILE
    answers: list[list[str]] = json.loads(state_path.read_text()) if job.resume and state_path.exists() else [[], []]
    total, batch = 2 * len(prompts), cfg.batch_size
    models: dict[str, LoadedModel] = {}  # one load per checkpoint: "unsteered vs steered" is one model twice
    steerings: list[list[tuple[SteeringVector, float]]] = []
    for src in cfg.sources:
        steering = [(load_vector(job.settings, s.vector), s.coefficient) for s in src.steering]
        if steering and src.model not in models:
            models[src.model] = job.load_model(src.model)
        for vector, _ in steering:  # refuse a vector that does not fit before any source answers
            vector.check_fits(models[src.model])
        steerings.append(steering)
    for k, src in enumerate(cfg.sources):
        if len(answers[k]) == len(prompts):
            continue
        if src.model not in models:
            models[src.model] = job.load_model(src.model)
        lm = models[src.model]
        sampling = src.sampling
        while len(answers[k]) < len(prompts):
            if job.should_stop():  # cancelled while a model loaded
                raise JobCancelled
            chunk = prompts[len(answers[k]):len(answers[k]) + batch]
            job.progress(len(answers[0]) + len(answers[1]), total, f"{src.name}: answering prompts {len(answers[k]) + 1}–"
                         f"{len(answers[k]) + len(chunk)} of {len(prompts)}")
            with steer(lm, steerings[k]):  # a cancel stops generate() at its next token (JobCancelled)
                answers[k] += generate(lm, chunk, sampling, system=src.system)
            atomic_write_text(state_path, json.dumps(answers))
            job.progress(len(answers[0]) + len(answers[1]), total, f"{src.name}: {len(answers[k])}/{len(prompts)}")
            if job.should_stop():
                raise JobCancelled
    chosen = {"candidate": cfg.candidate} if cfg.candidate else {}
    a, b = (asdict(src) for src in cfg.sources)  # the pairs' metadata records each source as the config stores it
    pairs = [Pair(p, ra, rb, metadata={"source_a": a["name"], "source_b": b["name"], "model_a": a["model"], "model_b": b["model"],
                                       "sampling_a": a["sampling"], "sampling_b": b["sampling"], "system_a": a["system"],
                                       "system_b": b["system"], "steering_a": a["steering"], "steering_b": b["steering"], **chosen})
             for p, ra, rb in zip(prompts, answers[0], answers[1], strict=True)]
    same = identical_note(pairs)
    if same["identical"]:
        job.progress(total, total, same["identical_note"])
    with Store(job.settings.store_target) as store:
        n = store.import_pairs(cfg.dataset, _distinct(pairs), source=f"generated by run {job.run_id}", format="generated")
        if cfg.session:
            LabelingStore(store).create_session(cfg.session, cfg.dataset, cfg.session_settings)
    job.set_summary(pairs=n, dataset=cfg.dataset, session=cfg.session, candidate=cfg.candidate, **same,
                    **({"warnings": [same["identical_note"]]} if same["identical"] else {}))


def identical_note(pairs: list[Pair]) -> dict[str, Any]:
    """How many pairs have the same answer from both sources, and what to do about it."""

    k = sum(identical_responses(p) for p in pairs)
    note = "" if not k else (
        f"{k} of {len(pairs)} pairs have identical answers from both sources: "
        + ("there is no difference to judge. " if k == len(pairs) else "votes on them are left out of the verdict. ")
        + "Regenerate with sampling, a seed per side (`workbench steer blind … --temperature 0.7`; "
          "`temperature=` of blind_session_config; or do_sample, temperature and seed in each source's sampling).")
    return {"identical": k, "identical_note": note}


def _distinct(pairs: list[Pair]) -> list[Pair]:
    """Repeated prompts with identical answers would share a content id: number the repeats."""
    seen: dict[str, int] = {}
    for p in pairs:
        n = seen.get(p.id, 0)
        seen[p.id] = n + 1
        if n:
            p.id = f"{p.id}-{n + 1}"
    return pairs


GENERATE_PAIRS = JobType("generate-pairs", run, validate, config_cls=GeneratePairsConfig,
                         description="Answer prompts with two sources (checkpoints or decoding settings) and store the pairs.")
