"""Typed options of the SAE jobs (RecSAE, LM-SAE) and of the SAE itself (``SAESpec``), light to import.

``workbench sae recsae|lm`` builds its flags from these at start-up, so this module imports
no torch; ``workbench.sae.training`` trains what an ``SAESpec`` says. The SAE group (``sae:``)
is an ``SAESpec`` in both jobs, and its flags are generated from SAESpec's fields.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, get_args

from workbench.context import DEMO_DATASET
from workbench.errors import ConfigError
from workbench.jobs.config import JobConfig, option
from workbench.models.embedded import DEMO_MODEL_NAME

SAEArchitecture = Literal["topk", "batchtopk"]


@dataclass
class SAESpec:
    """What to train: ``d_sae = expansion × d_in`` latents with ``k`` active per input.

    Its flags are ``--sae-<option>``; the four that existed before the group was generated keep
    their short names (``--architecture``, ``--expansion``, ``--k``, ``--samples``).
    """

    architecture: SAEArchitecture = option("topk", "SAE architecture: TopK (k latents per input) or BatchTopK "
                                           "(k per input on average).", flag="architecture")
    expansion: int = option(8, "SAE latents per input dimension (d_sae = expansion × input width).", flag="expansion")
    k: int = option(8, "Active SAE latents per input (TopK) or on average (BatchTopK).", flag="k")
    lr: float = option(1e-3, "SAE learning rate.", min=0.0)
    batch_size: int = option(512, "Activation rows per SAE training step.")
    training_samples: int = option(500_000, "SAE training samples.", flag="samples")
    held_out_fraction: float = option(0.1, "Share of activation rows held out to evaluate the SAE (FVU, L0, dead latents).")
    dead_window_samples: int = option(50_000, "Samples without firing after which a latent counts as dead.", min=1)
    n_checkpoints: int = option(2, "Intermediate sae-lens checkpoints under <folder>/checkpoints.", min=0)
    buffer_rows: int = option(262_144, "Rows of the streaming mixing buffer (1 GiB at d_in 1024 in float32).")
    max_eval_rows: int = option(100_000, "Held-out rows kept in memory for evaluation.")
    seed: int = option(0, "SAE random seed.")

    def check(self) -> None:
        """Rules between options (``from_dict`` calls it; ``check_for`` too, for an SAESpec built in code)."""
        if self.architecture not in get_args(SAEArchitecture):
            raise ConfigError(f"Unknown SAE architecture {self.architecture!r}.", hint=f"Use one of {', '.join(get_args(SAEArchitecture))}.")
        if self.expansion < 1 or self.k < 1 or self.batch_size < 1 or self.training_samples < self.batch_size:
            raise ConfigError("expansion, k and batch_size must be ≥ 1 and training_samples ≥ batch_size "
                              f"(got expansion={self.expansion}, k={self.k}, batch_size={self.batch_size}, "
                              f"training_samples={self.training_samples}).")
        if not 0.0 < self.held_out_fraction < 0.5:
            raise ConfigError(f"held_out_fraction must be in (0, 0.5), got {self.held_out_fraction}.")
        if self.buffer_rows < 2 * self.batch_size or self.max_eval_rows < 1:
            raise ConfigError(f"buffer_rows must hold two batches and max_eval_rows must be ≥ 1 (got buffer_rows={self.buffer_rows}, "
                              f"batch_size={self.batch_size}, max_eval_rows={self.max_eval_rows}).")

    def check_for(self, n_rows: int, d_in: int) -> None:
        """The rules above plus those of the data it trains on: ``n_rows`` activations of width ``d_in``."""
        self.check()
        if self.k >= self.expansion * d_in:
            raise ConfigError(f"k = {self.k} is not below d_sae = {self.expansion * d_in}.", hint="Use a smaller k or a larger expansion.")
        if n_rows < 2 * self.batch_size:
            raise ConfigError(f"Only {n_rows} activation rows for batches of {self.batch_size}.",
                              hint="Collect more activations (more texts or sequences) or use a smaller batch_size.")


_SAE_HELP = "SAE options (an SAESpec): --set sae.<option>=<value>, or the flags --expansion, --k, --samples, --architecture, --sae-…"


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
    sae: SAESpec = option(default_factory=SAESpec, help=_SAE_HELP)
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
    sae: SAESpec = option(default_factory=SAESpec, help=_SAE_HELP)
    max_pairs: int | None = option(None, "Use at most this many labelled pairs.", min=1)
    seed: int = option(0, "Random seed.")

    def check(self) -> None:
        if not self.model or not self.dataset:
            raise ConfigError("An LM-SAE run needs a model and a pair dataset (options 'model' and 'dataset').",
                              hint="Pick both, e.g. the demo model and the demo dataset.")
