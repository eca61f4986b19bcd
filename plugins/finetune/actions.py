"""What the Fine-tune tab does, without Gradio: start runs, describe them, draw their plots.

Every function takes plain values and returns plain values or matplotlib figures, so it is
tested without a browser and the tab stays a thin layout.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from workbench.app import ui
from workbench.app.auth import require_owner
from workbench.errors import ConfigError
from workbench.jobs import JobManager, Run
from workbench.loop import start_blind_session
from workbench.models.embedded import DEMO_MODEL_NAME
from workbench.preference.votes import session_votes

# What each form offers: a DPO run starts from a full decoder; PAL reads features from any LM or encoder.
MODEL_REQUIRES = {"dpo": ["trainable"], "pal": ["causal_lm|encoder"]}
DATASET_REQUIRES = {"dpo": ["labeled"], "pal": ["labeled"]}


def model_choices(ctx: Any, kind: str) -> list[str]:
    return ui.model_choices(ctx, MODEL_REQUIRES[kind])


def dataset_choices(ctx: Any, kind: str) -> list[str]:
    return ui.dataset_choices(ctx, DATASET_REQUIRES[kind])


def confine_dataset(ctx: Any, dataset: str | None) -> str | None:
    """A browser-given dataset is a stored dataset's name or a path inside the data roots."""
    if not dataset or dataset in {d["name"] for d in ctx.store.list_datasets()}:
        return dataset
    return str(ctx.check_data_path(dataset))


def session_choices(ctx: Any) -> list[str]:
    """Labeling sessions, a source of training pairs (their A/B votes) like a dataset."""
    return [s.name for s in ctx.labeling.list_sessions()]


def dataset_note(ctx: Any, kind: str) -> str:
    """Which stored datasets the form can train on, and why the others cannot."""
    trainable = dataset_choices(ctx, kind)
    others = [n for n in ctx.store.dataset_capabilities() if n not in trainable]
    lines = ["**Trainable datasets** (labelled pairs: a chosen and a rejected response): "
             + (", ".join(f"`{ui.md_escape(n)}`" for n in trainable) or "none yet")]
    if others:
        lines.append("Not trainable (no pair has a winner): " + ", ".join(f"`{ui.md_escape(n)}`" for n in others)
                     + ". Open a labeling session on one, vote, and train from the session instead.")
    return "  \n".join(lines)


def parse_pair_ids(text: str | None) -> list[str]:
    """Pair ids typed or pasted as 'p1, p2' or one per line."""
    return [t for t in (text or "").replace(",", " ").split() if t]


SOURCES = ["dataset", "session"]


def one_source(options: dict[str, Any]) -> dict[str, Any]:
    """Keep the box that **Train on** (``source``) names and drop the other, so a filled Dataset box never
    clashes with a session. Without ``source`` (not the form) the config's own check decides."""
    source = options.pop("source", None)
    if source is None:
        return options
    if not options.get(source):
        raise ConfigError(f"Train on is '{source}', but the {source.title()} box is empty.",
                          hint=f"Pick one in “{source.title()}”, or switch “Train on”.")
    return {**options, ("session" if source == "dataset" else "dataset"): None}


def start(ctx: Any, manager: JobManager, user: str | None, kind: str, options: dict[str, Any]) -> Run:
    """Start a run from the browser: owner only (checked first: an annotator learns nothing about the form),
    one training source, dataset confined, config validated before any run exists."""
    require_owner(ctx.settings, user, "start a fine-tune")
    options = {k: v for k, v in one_source(dict(options)).items() if v not in (None, "", [])}
    if options.get("dataset"):
        options["dataset"] = confine_dataset(ctx, options["dataset"])
    return manager.submit(kind, options)


DISPLACEMENT_COLUMNS = ["pair", "annotator", "prompt", "CHES", "length-normalised CHES"]


def displacement_rows(ctx: Any, user: str | None, session: str | None, model: str | None, top_k: int = 10) -> list[list[Any]]:
    """The session's voted pairs likeliest to make DPO lower the chosen response (CHES, highest first)."""
    # torch and the model stack: only when the check is asked for
    from workbench.preference.displacement import displacement_risk  # torch: only in displacement_rows()

    require_owner(ctx.settings, user, "check a session's pairs")
    if not session:
        raise ConfigError("Pick a labeling session first.")
    votes = session_votes(ctx.labeling, session)
    risk = displacement_risk(ctx.get_model(model or DEMO_MODEL_NAME), votes.votes, top_k=top_k)
    return [[r["pair_id"], r["annotator"], r["prompt"], round(r["ches"], 2), round(r["ln_ches"], 3)] for r in risk["top"]]


def blind_session(ctx: Any, manager: JobManager, user: str | None, run_id: str | None) -> str:
    """Start the blind base-vs-tuned session of a finished DPO run (owner only); the message to show."""
    require_owner(ctx.settings, user, "make a labeling session")
    if not run_id:
        raise ConfigError("Select a finished DPO run first.")
    run = start_blind_session(manager, run_id)
    name = run.config["session"]
    return (f"Started **{ui.md_escape(run.id)}**: base and tuned answer {len(run.config['prompts'])} prompts the run never trained on; "
            f"it opens the blind session **{ui.md_escape(name)}**. Label it; its statistics say whether tuned won.")


def before_after_rows(run: Run) -> list[list[Any]]:
    """DPO summary as rows: split, pairs, accuracy/margin before → after, implicit-reward accuracy, and
    the per-token log-probs of the same chosen and rejected responses before → after."""
    out = []
    for split in ("held_out", "train"):
        s = run.manifest.summary.get(split)
        if s:
            out.append([split, s["n"], *(round(s[k], 3) for k in (
                "logp_margin_accuracy_before", "logp_margin_accuracy_after", "mean_logp_margin_before", "mean_logp_margin_after",
                "implicit_reward_accuracy", "logp_chosen_per_token_before", "logp_chosen_per_token_after",
                "logp_rejected_per_token_before", "logp_rejected_per_token_after"))])
    return out


BEFORE_AFTER_COLUMNS = ["pairs", "n", "accuracy before", "accuracy after", "mean margin before", "mean margin after", "implicit-reward accuracy",
                        "chosen log p/token before", "chosen log p/token after", "rejected log p/token before", "rejected log p/token after"]
SAMPLE_COLUMNS = ["prompt", "before", "after", "chosen"]


def samples_rows(run: Run) -> list[list[str]]:
    path = run.dir / "samples.jsonl"
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [[r["prompt"], r["before"], r["after"], r["chosen"]] for r in rows]


def pal_results_rows(run: Run) -> list[list[Any]]:
    """Seen-user accuracy and unseen users by number of shots, one row per model."""
    s = run.manifest.summary
    if "seen" not in s:
        return []
    shots = list(s.get("unseen", {}).get("shots", {}))
    models = list(s["seen"])
    return [[name, round(s["seen"][name], 3), *[round(s["unseen"]["shots"][k].get(name, float("nan")), 3) for k in shots]] for name in models]


def pal_results_columns(run: Run) -> list[str]:
    return ["model", "seen users", *[f"unseen, {k} shots" for k in run.manifest.summary.get("unseen", {}).get("shots", {})]]


def latent_coordinates(view: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, str]:
    """Users' and prototypes' PCA points centred and divided by their joint spread, so the axes read
    −1…1 whatever the run's scale (one read 1e-6 before), and a note when the users cannot be told apart."""
    points, protos = np.asarray(view["points"], dtype=float), np.asarray(view["prototypes"], dtype=float)
    both = np.vstack([points, protos])
    spread = float(np.ptp(both, axis=0).max()) if len(both) else 0.0
    users_spread = float(np.ptp(points, axis=0).max()) if len(points) > 1 else 0.0
    note = "all users' weights are equal: PAL found one taste" if users_spread <= EQUAL_SPREAD * max(spread, 1.0) else ""
    if spread <= 0:
        return points * 0, protos * 0, note
    centre = both.mean(axis=0)
    return (points - centre) / spread, (protos - centre) / spread, note


EQUAL_SPREAD = 1e-3  # users' points closer than this (relative to the plot's spread, or absolutely) are one point


def latent_figure(run: Run, model: str = "PAL-A") -> Any:
    """Prototypes (stars) and users' ideal points, coloured by their true group when known."""
    path = run.dir / "pal" / "latent.json"
    if not path.exists():
        return None
    view = json.loads(path.read_text(encoding="utf-8")).get(model)
    if view is None:
        return None
    points, protos, note = latent_coordinates(view)
    fig = Figure(figsize=(5, 4))  # no pyplot: its global figure list is not safe across server threads
    ax = fig.subplots()
    groups = view["groups"]
    colors = [g if isinstance(g, int) else 0 for g in groups]
    ax.scatter(points[:, 0], points[:, 1], c=colors, cmap="tab10", s=18, label="users")
    ax.scatter(protos[:, 0], protos[:, 1], marker="*", s=220, c="black", label="prototypes")
    ax.set_title(f"{model}: " + ("ideal points" if view["variant"] == "A" else "users' simplex weights") + " (PCA)"
                 + (f"\n{note}" if note else ""), fontsize=9)
    ax.set_xlabel("PC 1 (share of the spread)")
    ax.set_ylabel("PC 2 (share of the spread)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
