"""Typed options of the SAE jobs (RecSAE, LM-SAE), light to import.

``workbench sae recsae|lm`` builds its flags from these at start-up, so this module imports
no torch. The SAE group (``sae:``) stays a mapping here and is checked against
``workbench.sae.training.SAESpec`` when the job is validated (``workbench.sae.jobs``);
``workbench.sae.recsae.RecSAEConfig`` is ``RecSAEJobConfig`` with that group typed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from workbench.context import DEMO_DATASET
from workbench.errors import ConfigError
from workbench.jobs.config import JobConfig, option
from workbench.models.embedded import DEMO_MODEL_NAME

# The SAE group's command-line flags: flag name -> (SAESpec field, type, help).
SAE_FLAGS: dict[str, tuple[str, type, str]] = {
    "expansion": ("expansion", int, "SAE latents per input dimension (d_sae = expansion × input width)."),
    "k": ("k", int, "Active SAE latents per input (TopK) or on average (BatchTopK)."),
    "samples": ("training_samples", int, "SAE training samples."),
    "architecture": ("architecture", str, "SAE architecture: topk or batchtopk."),
}


@dataclass
class RecSAEJobConfig(JobConfig):
    """Options of a RecSAE run: SASRec on interaction logs, an SAE on its states, the concept dictionary."""

    what: ClassVar[str] = "RecSAE"
    interactions: str | None = option(None, "Interaction file: user, item, timestamp columns (MovieLens ratings.csv works as is).")
    attributes: str | None = option(None, "Item attribute file: item id and e.g. 'Comedy|Drama' (MovieLens movies.csv).")
    user_column: str | None = option(None, "Column of the user id (default: user, user_id or userId).")
    item_column: str | None = option(None, "Column of the item id (default: item, item_id, movieId or itemId).")
    time_column: str | None = option(None, "Column of the timestamp (default: timestamp, time or ts).")
    attribute_column: str | None = option(None, "Attribute column of the item file (default: genres, categories, *category*, …).")
    sep: str | None = option(None, "Column separator of both files (default: detected from each header: comma, tab, semicolon, space).")
    max_len: int = option(50, "Longest history SASRec reads (most recent items).", min=2)
    d_model: int = option(64, "SASRec width (the SAE's input size).", min=1)
    n_layers: int = option(2, "SASRec transformer layers.", min=1)
    epochs: int = option(30, "SASRec training epochs.", min=1)
    sae: dict[str, Any] = option(default_factory=dict, help="SAE options (workbench.sae.training.SAESpec), e.g. sae.k=8.")
    top_k: int = option(20, "Most-activating histories per latent whose item attributes name its concept (enrichment test).", min=1)
    min_f1: float = option(0.5, "Concept F1 a latent needs to count as explained.", min=0.0, max=1.0)
    intervention_top_n: int = option(10, "Top-N whose concept share the interventions measure.", min=1)
    boost_strength: float = option(2.0, "Boost factor of the interventions (× the latent's largest activation).", min=0.0)
    n_interventions: int = option(10, "Latents intervened on in the summary.", min=0)
    seed: int = option(0, "Random seed.")

    def check(self) -> None:
        if not self.interactions:
            raise ConfigError("No interaction file given.", hint="Pass --interactions FILE (user, item and timestamp columns) and --attributes.")


@dataclass
class LMSAEJobConfig(JobConfig):
    """Options of an LM-SAE run: an SAE on a language model's response tokens over preference pairs."""

    what: ClassVar[str] = "LM-SAE"
    example: ClassVar[dict[str, Any]] = {"model": DEMO_MODEL_NAME, "dataset": DEMO_DATASET, "prefer_pole": "verbose", "sae": {"k": 8}}
    model: str | None = option(None, "Language model: catalog name or path (e.g. SmolLM2-135M-Instruct).")
    dataset: str | None = option(None, "Pair dataset: stored name or file.")
    format: str = option("auto", "Pair file format (auto detects it).", cli=False)
    layer: int | None = option(None, "Residual-stream layer (default: the middle one).", min=0)
    prefer_pole: str | None = option(None, "Label unlabeled demo-style pairs: the response with this pole is chosen (e.g. verbose).")
    sae: dict[str, Any] = option(default_factory=dict, help="SAE options (workbench.sae.training.SAESpec), e.g. sae.k=8.")
    max_pairs: int | None = option(None, "Use at most this many labelled pairs.", min=1)
    seed: int = option(0, "Random seed.")

    def check(self) -> None:
        if not self.model or not self.dataset:
            raise ConfigError("An LM-SAE run needs a model and a pair dataset (options 'model' and 'dataset').",
                              hint="Pick both, e.g. the demo model and the demo dataset.")
