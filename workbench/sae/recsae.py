"""The RecSAE pipeline: SASRec → user states → SAE (sae-lens) → concept dictionary → interventions.

``run_recsae`` writes one folder (a job's run folder, or any folder): ``sasrec/`` (the
recommender), ``sae/`` (sae-lens format), ``states.npz`` (the probed states and which
prefix each came from), ``concepts.json``, ``interventions.json`` and ``summary.json``.
``RecSAEResult.load`` opens it again for the view and the notebook.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workbench.errors import ModelError
from workbench.files import atomic_path, atomic_write_text
from workbench.sae.concepts import ConceptDictionary, LatentConcept, build_dictionary, concept_summary, sequence_profiles
from workbench.sae.interactions import Interactions, read_interactions
from workbench.sae.interventions import InterventionResult, intervene
from workbench.sae.job_configs import RecSAEJobConfig
from workbench.sae.sasrec import (
    CHECKPOINT_FILE,
    SASRec,
    SASRecConfig,
    all_prefix_states,
    below_popularity_warning,
    evaluate_protocols,
    train_sasrec,
)
from workbench.sae.training import encode, load_sae, train_sae

Report = Callable[[str, int, int, dict[str, Any]], None]


def load_data(cfg: RecSAEJobConfig) -> Interactions:
    return read_interactions(cfg.interactions, cfg.attributes, user_column=cfg.user_column, item_column=cfg.item_column,
                             time_column=cfg.time_column, attribute_column=cfg.attribute_column, sep=cfg.sep)


def test_histories(data: Interactions) -> list[np.ndarray]:
    """Each user's history before the held-out last item: the state the ranking metrics score."""
    return [s[:-1] for s in data.sequences]


def run_recsae(cfg: RecSAEJobConfig, out: str | Path, *, report: Report | None = None,
               should_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Run every stage, writing artefacts to ``out`` as they are made; returns the summary."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    say = report or (lambda stage, step, total, row: None)
    torch.manual_seed(cfg.seed)
    atomic_write_text(out / "config.json", json.dumps(asdict(cfg), indent=2))
    data = load_data(cfg)
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    # Only a fully trained recommender is saved as "sasrec"; a cancelled one leaves its checkpoint, and a
    # resumed run continues training from it (it never reads a half-trained model as finished).
    model = SASRec.load(out / "sasrec") if (out / "sasrec" / "sasrec_config.json").exists() else None
    if model is None or model.cfg.n_items != data.n_items:
        checkpoint = out / "sasrec-checkpoint" / CHECKPOINT_FILE
        model, _, finished = train_sasrec(
            data, SASRecConfig(n_items=data.n_items, max_len=cfg.max_len, d_model=cfg.d_model, n_layers=cfg.n_layers),
            epochs=cfg.epochs, seed=cfg.seed, on_epoch=lambda e, row: say("sasrec", e, cfg.epochs, row),
            should_stop=should_stop, checkpoint=checkpoint)
        if not finished:
            return {}  # cancelled: no later stage runs on a half-trained recommender
        model.save(out / "sasrec")
        checkpoint.unlink(missing_ok=True)
    timings["sasrec_s"] = time.perf_counter() - t0
    test = {"test_" + k: v for k, v in evaluate_protocols(model, data, "test", seed=cfg.seed).items()}
    say("sasrec", cfg.epochs, cfg.epochs, test)
    if should_stop and should_stop():
        return {}

    t0 = time.perf_counter()
    states, users, ends = all_prefix_states(model, data, drop_last=1)
    with atomic_path(out / "states.npz") as tmp, open(tmp, "wb") as fh:  # a handle: np.savez renames a bare path
        np.savez(fh, states=states.numpy(), users=users, ends=ends)
    timings["states_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    trained = train_sae(states, cfg.sae, folder=out / "sae", metadata={"model_name": "SASRec", "hook_name": "last_position_state"},
                        on_progress=lambda done, total, row: say("sae", done, total, row), should_stop=should_stop)
    timings["sae_s"] = time.perf_counter() - t0
    if should_stop and should_stop():
        return {}  # cancelled in the SAE stage: the dictionary and interventions would read a half-trained SAE

    t0 = time.perf_counter()
    z = encode(trained.sae, states).numpy()
    profiles = sequence_profiles(data, users, ends, cfg.max_len)
    dictionary = build_dictionary(z, profiles, data.attributes, users, top_k=cfg.top_k, seed=cfg.seed)
    timings["dictionary_s"] = time.perf_counter() - t0
    atomic_write_text(out / "concepts.json", json.dumps(dictionary_to_json(dictionary)))
    say("concepts", 1, 1, concept_summary(dictionary, cfg.min_f1))

    t0 = time.perf_counter()
    histories = test_histories(data)
    results = []
    max_act = z.max(0)
    for concept in dictionary.confident(cfg.min_f1)[:cfg.n_interventions]:
        for mode in ("boost", "ablate"):
            results.append(intervene(model, trained.sae, data, histories, concept.latent, str(concept.concept), mode=mode,
                                     strength=cfg.boost_strength, reference=float(max_act[concept.latent]), n=cfg.intervention_top_n))
    timings["interventions_s"] = time.perf_counter() - t0
    atomic_write_text(out / "interventions.json", json.dumps([r.as_dict() for r in results], indent=2))

    boosts = [r for r in results if r.mode == "boost"]
    ablations = [r for r in results if r.mode == "ablate"]
    summary = {
        "dataset": data.source, "users": data.n_users, "items": data.n_items, "interactions": data.info["interactions"],
        "tied_test_items": data.info["tied_test_items"], "data_notes": data.notes, **test,
        "sae_fvu": trained.metrics.fvu, "sae_l0": trained.metrics.l0, "sae_dead_fraction": trained.metrics.dead_fraction,
        "sae_samples_per_s": trained.samples_per_s, "sequences": int(len(states)),
        **concept_summary(dictionary, cfg.min_f1),
        "boost_share_before": float(np.mean([r.share_before for r in boosts])) if boosts else None,
        "boost_share_after": float(np.mean([r.share_after for r in boosts])) if boosts else None,
        "ablate_share_after": float(np.mean([r.share_after for r in ablations])) if ablations else None,
        **timings,
    }
    warning = below_popularity_warning(test)
    summary["warnings"] = [warning] if warning else []
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, default=float))
    return summary


def dictionary_to_json(d: ConceptDictionary) -> dict[str, Any]:
    return {"attributes": d.attributes, "n_sequences": d.n_sequences, "top_k": d.top_k, "chance_f1": d.chance_f1,
            "latents": [asdict(c) for c in d.latents]}


def dictionary_from_json(raw: dict[str, Any]) -> ConceptDictionary:
    return ConceptDictionary([LatentConcept(**c) for c in raw["latents"]], raw["attributes"], raw["n_sequences"], raw["top_k"],
                             raw["chance_f1"])


@dataclass
class RecSAEResult:
    """A finished RecSAE folder, opened for browsing and further interventions."""

    folder: Path
    config: RecSAEJobConfig
    data: Interactions
    model: SASRec
    sae: Any
    dictionary: ConceptDictionary
    states: np.ndarray
    users: np.ndarray
    ends: np.ndarray
    summary: dict[str, Any]
    interventions: list[dict[str, Any]]
    _latents: np.ndarray | None = None

    @classmethod
    def load(cls, folder: str | Path) -> RecSAEResult:
        folder = Path(folder)
        missing = [n for n in ("config.json", "concepts.json", "states.npz", "summary.json") if not (folder / n).exists()]
        if missing:
            raise ModelError(f"{folder} is not a finished RecSAE run (missing {', '.join(missing)}).",
                             hint="Pick a run whose status is 'succeeded', or start one with `workbench sae recsae`.")
        cfg = RecSAEJobConfig.from_dict(json.loads((folder / "config.json").read_text()))
        arrays = np.load(folder / "states.npz")
        return cls(folder=folder, config=cfg, data=load_data(cfg), model=SASRec.load(folder / "sasrec"), sae=load_sae(folder / "sae"),
                   dictionary=dictionary_from_json(json.loads((folder / "concepts.json").read_text())),
                   states=arrays["states"], users=arrays["users"], ends=arrays["ends"],
                   summary=json.loads((folder / "summary.json").read_text()),
                   interventions=json.loads((folder / "interventions.json").read_text()) if (folder / "interventions.json").exists() else [])

    @property
    def latents(self) -> np.ndarray:
        if self._latents is None:
            self._latents = encode(self.sae, self.states).numpy()
        return self._latents

    def sequence_titles(self, row: int, last: int = 8) -> list[str]:
        """The last ``last`` item titles of the prefix behind state ``row`` (most recent last)."""
        seq = self.data.sequences[int(self.users[row])][: int(self.ends[row])]
        return [self.data.title(int(i)) for i in seq[-last:]]

    def histogram(self, latent: int, bins: int = 30) -> tuple[np.ndarray, np.ndarray, float]:
        """Histogram of the latent's non-zero activations, and the share of sequences where it fires."""
        col = self.latents[:, latent]
        nz = col[col > 0]
        counts, edges = np.histogram(nz, bins=bins) if len(nz) else (np.zeros(bins), np.linspace(0, 1, bins + 1))
        return counts, edges, float((col > 0).mean())

    def intervene(self, latent: int, mode: str = "boost", strength: float | None = None, concept: str | None = None) -> InterventionResult:
        c = concept or self.dictionary.get(latent).concept or self.data.attributes[0]
        return intervene(self.model, self.sae, self.data, test_histories(self.data), latent, c, mode=mode,
                         strength=self.config.boost_strength if strength is None else strength,
                         reference=float(self.latents[:, latent].max()), n=self.config.intervention_top_n)
