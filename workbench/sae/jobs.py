"""RecSAE and LM-SAE pipelines as background jobs (progress, metrics, summary in the run folder)."""
from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from workbench.errors import ConfigError
from workbench.jobs.context import JobCancelled, JobContext
from workbench.jobs.registry import JobType, check_options
from workbench.sae.recsae import RecSAEConfig, load_data, run_recsae
from workbench.sae.training import SAESpec
from workbench.settings import Settings

RECSAE_OUTPUT = "recsae"
LM_OUTPUT = "lmsae"


def sae_spec(raw: dict[str, Any] | None) -> SAESpec:
    raw = dict(raw or {})
    check_options(raw, [f.name for f in fields(SAESpec)], "SAE")
    return SAESpec(**raw)


def validate_recsae(config: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Read the data once (so a bad file fails before the run starts) and fill defaults."""
    check_options(config, [f.name for f in fields(RecSAEConfig)], "RecSAE")
    if not config.get("interactions"):
        raise ConfigError("No interaction file given.", hint="Pass a CSV with user, item and timestamp columns (and --attributes).")
    values = {k: v for k, v in config.items() if v is not None}
    for key in ("interactions", "attributes"):
        if values.get(key):
            values[key] = str(Path(str(values[key])).expanduser().resolve())
    cfg = RecSAEConfig(**{**values, "sae": sae_spec(values.get("sae"))})
    data = load_data(cfg)
    if not data.attributes:
        raise ConfigError("No item attributes: the concept dictionary needs them.",
                          hint="Pass an item attribute CSV (item id and an attributes column like 'Comedy|Drama').")
    cfg.sae.check(sum(len(s) for s in data.sequences), cfg.d_model)
    return asdict(cfg)


def run_recsae_job(job: JobContext) -> str:
    cfg = RecSAEConfig.from_dict(job.config)
    stages = {"sasrec": (0.0, 0.4), "sae": (0.4, 0.85), "concepts": (0.85, 0.95)}

    def report(stage: str, step: int, total: int, row: dict[str, Any]) -> None:
        lo, hi = stages.get(stage, (0.95, 1.0))
        job.progress(int(1000 * (lo + (hi - lo) * step / max(total, 1))), 1000, stage)
        job.log_metrics({"stage": stage, **row})

    summary = run_recsae(cfg, job.run_dir / RECSAE_OUTPUT, report=report, should_stop=job.should_stop)
    if job.should_stop():
        raise JobCancelled
    job.progress(1000, 1000, "done")
    job.set_summary(**{k: v for k, v in summary.items() if not isinstance(v, list)}, concepts_covered=summary["concepts_covered"])
    return RECSAE_OUTPUT


RECSAE_JOB = JobType("recsae", run_recsae_job, validate_recsae,
                     description="SASRec + SAE concept dictionary + interventions on interaction data")


LM_DEFAULTS: dict[str, Any] = {"model": None, "dataset": None, "format": "auto", "layer": None, "prefer_pole": None,
                               "sae": {}, "max_pairs": None, "seed": 0}


def validate_lm_sae(config: dict[str, Any], settings: Settings) -> dict[str, Any]:
    from workbench.training.pairs import load_pairs
    from workbench.training.pal_job import resolve_feature_model

    check_options(config, list(LM_DEFAULTS), "LM-SAE")
    cfg = {**LM_DEFAULTS, **{k: v for k, v in config.items() if v is not None}}
    if not cfg["model"] or not cfg["dataset"]:
        raise ConfigError("An LM-SAE run needs a model and a pair dataset.", hint="Pass --model (catalog name or path) and --dataset.")
    cfg["model_path"] = str(resolve_feature_model(str(cfg["model"]), settings))
    pairs = load_pairs(str(cfg["dataset"]), settings, cfg["format"])
    if cfg["prefer_pole"]:
        from workbench.sae.lm import label_by_pole

        pairs = label_by_pole(pairs, str(cfg["prefer_pole"]))
    if sum(p.preferred in ("A", "B") for p in pairs) < 4:
        raise ConfigError(f"Fewer than 4 of the {len(pairs)} pairs say which response was preferred.",
                          hint="Label pairs first, or pass prefer_pole (e.g. 'verbose' on the demo dataset).")
    cfg["sae"] = asdict(sae_spec(cfg["sae"]))
    return cfg


def run_lm_sae_job(job: JobContext) -> str:
    from workbench.activations import ActivationCache
    from workbench.models.loading import load_model
    from workbench.sae.lm import label_by_pole, run_lm_sae
    from workbench.training.pairs import load_pairs

    cfg = job.config
    lm = load_model(cfg["model_path"])
    pairs = load_pairs(str(cfg["dataset"]), job.settings, cfg["format"])
    if cfg["prefer_pole"]:
        pairs = label_by_pole(pairs, str(cfg["prefer_pole"]))
    pairs = [p for p in pairs if p.preferred in ("A", "B")][: cfg["max_pairs"] or None]
    layer = cfg["layer"] if cfg["layer"] is not None else lm.n_layers // 2
    job.progress(0, 1000, "extracting activations")

    def report(done: int, total: int, row: dict[str, Any]) -> None:
        job.progress(int(1000 * done / max(total, 1)), 1000, "training the SAE")
        job.log_metrics(row)

    result = run_lm_sae(lm, pairs, layer, SAESpec(**cfg["sae"]), job.run_dir / LM_OUTPUT, cache=ActivationCache(job.settings.cache_dir), on_progress=report, should_stop=job.should_stop)
    if job.should_stop():
        raise JobCancelled
    best = result.separating(1)[0]
    job.set_summary(layer=layer, n_pairs=result.n_pairs, n_tokens=result.n_tokens, **{f"sae_{k}": v for k, v in result.metrics.items()},
                    best_latent=best.latent, best_auroc=best.auroc)
    return LM_OUTPUT


LM_SAE_JOB = JobType("lm-sae", run_lm_sae_job, validate_lm_sae,
                     description="SAE on a language model's residual stream over preference pairs")
