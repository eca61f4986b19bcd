"""RecSAE and LM-SAE pipelines as background jobs (progress per stage, metrics, summary in the run folder).

Their options are ``RecSAEJobConfig`` / ``LMSAEJobConfig`` (``workbench.sae.job_configs``);
validation here reads the data once, so a bad file fails before a run exists.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from workbench.activations import ActivationCache
from workbench.errors import ConfigError
from workbench.jobs.config import parsed
from workbench.jobs.context import JobCancelled, JobContext
from workbench.jobs.registry import JobType
from workbench.models.resolve import resolve
from workbench.sae.job_configs import LMSAEJobConfig, RecSAEJobConfig
from workbench.sae.lm import label_by_pole, run_lm_sae
from workbench.sae.recsae import load_data, run_recsae
from workbench.settings import Settings
from workbench.training.pairs import load_pairs

RECSAE_OUTPUT = "recsae"
LM_OUTPUT = "lmsae"


def validate_recsae(cfg: RecSAEJobConfig | dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Read the data once, so a bad file (or an SAE too large for it) fails before the run starts."""
    cfg = parsed(RecSAEJobConfig, cfg)
    for key in ("interactions", "attributes"):
        if getattr(cfg, key):
            setattr(cfg, key, str(Path(getattr(cfg, key)).expanduser().resolve()))
    data = load_data(cfg)
    if not data.attributes:
        raise ConfigError("No item attributes: the concept dictionary needs them.",
                          hint="Pass an item attribute file (--attributes: item id and an attributes column like 'Comedy|Drama').")
    cfg.sae.check_for(sum(len(s) for s in data.sequences), cfg.d_model)
    return cfg.to_dict()


def run_recsae_job(job: JobContext) -> str:
    cfg: RecSAEJobConfig = job.options

    def report(stage: str, step: int, total: int, row: dict[str, Any]) -> None:
        job.progress(step, total, stage, stage=stage)
        job.log_metrics({"stage": stage, **row})

    summary = run_recsae(cfg, job.run_dir / RECSAE_OUTPUT, report=report, should_stop=job.should_stop)
    if job.should_stop():
        raise JobCancelled
    job.progress(1, 1, "done", stage="done")
    job.set_summary(**{k: v for k, v in summary.items() if not isinstance(v, list)}, concepts_covered=summary["concepts_covered"],
                    warnings=summary["warnings"])  # `runs show` and the Runs tab print them
    return RECSAE_OUTPUT


RECSAE_JOB = JobType("recsae", run_recsae_job, validate_recsae, config_cls=RecSAEJobConfig,
                     description="SASRec + SAE concept dictionary + interventions on interaction data")


def _labelled_pairs(cfg: LMSAEJobConfig, settings: Settings) -> list[Any]:
    pairs = load_pairs(str(cfg.dataset), settings, cfg.format)
    return label_by_pole(pairs, cfg.prefer_pole) if cfg.prefer_pole else pairs


def validate_lm_sae(cfg: LMSAEJobConfig | dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Check the model resolves and enough pairs say which response was preferred."""
    cfg = parsed(LMSAEJobConfig, cfg)
    ref = resolve(settings, cfg.model)
    if Path(cfg.model).expanduser().exists():
        cfg.model = str(ref.path.resolve())
    pairs = _labelled_pairs(cfg, settings)
    if sum(p.preferred in ("A", "B") for p in pairs) < 4:
        raise ConfigError(f"Fewer than 4 of the {len(pairs)} pairs say which response was preferred.",
                          hint="Label pairs first, or pass prefer_pole (e.g. 'verbose' on the demo dataset).")
    return cfg.to_dict()


def run_lm_sae_job(job: JobContext) -> str:
    cfg: LMSAEJobConfig = job.options
    lm = job.load_model(cfg.model)
    pairs = [p for p in _labelled_pairs(cfg, job.settings) if p.preferred in ("A", "B")][: cfg.max_pairs or None]
    layer = cfg.layer if cfg.layer is not None else lm.n_layers // 2
    job.progress(0, len(pairs), "extracting activations", stage="activations")

    def report(done: int, total: int, row: dict[str, Any]) -> None:
        job.progress(done, total, "training the SAE", stage="sae")
        job.log_metrics(row)

    result = run_lm_sae(lm, pairs, layer, cfg.sae, job.run_dir / LM_OUTPUT, cache=ActivationCache(job.settings.cache_dir),
                        on_progress=report, should_stop=job.should_stop)
    if job.should_stop():
        raise JobCancelled
    best = result.separating(1)[0]
    job.set_summary(layer=layer, n_pairs=result.n_pairs, n_tokens=result.n_tokens, **{f"sae_{k}": v for k, v in result.metrics.items()},
                    best_latent=best.latent, best_auroc=best.auroc)
    return LM_OUTPUT


LM_SAE_JOB = JobType("lm-sae", run_lm_sae_job, validate_lm_sae, config_cls=LMSAEJobConfig,
                     description="SAE on a language model's residual stream over preference pairs")
