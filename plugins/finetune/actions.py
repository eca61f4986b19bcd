"""What the Fine-tune tab does, without Gradio: start runs, describe them, draw their plots.

Every function takes plain values and returns plain values or matplotlib figures, so it is
tested without a browser and the tab stays a thin layout.
"""
from __future__ import annotations

import json
from typing import Any

from workbench.app import ui
from workbench.app.auth import require_owner
from workbench.jobs import JobManager, Run

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


def start(ctx: Any, manager: JobManager, user: str | None, kind: str, options: dict[str, Any]) -> Run:
    """Start a run from the browser: owner only, dataset confined, config validated before any run exists."""
    require_owner(ctx.settings, user, "start a fine-tune")
    options = {k: v for k, v in options.items() if v not in (None, "")}
    options["dataset"] = confine_dataset(ctx, options.get("dataset"))
    return manager.submit(kind, options)


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


def latent_figure(run: Run, model: str = "PAL-A") -> Any:
    """Prototypes (stars) and users' ideal points, coloured by their true group when known."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = run.dir / "pal" / "latent.json"
    if not path.exists():
        return None
    view = json.loads(path.read_text(encoding="utf-8")).get(model)
    if view is None:
        return None
    fig, ax = plt.subplots(figsize=(5, 4))
    pts = list(zip(*view["points"], strict=True))
    groups = view["groups"]
    colors = [g if isinstance(g, int) else 0 for g in groups]
    ax.scatter(pts[0], pts[1], c=colors, cmap="tab10", s=18, label="users")
    protos = list(zip(*view["prototypes"], strict=True))
    ax.scatter(protos[0], protos[1], marker="*", s=220, c="black", label="prototypes")
    ax.set_title(f"{model}: " + ("ideal points" if view["variant"] == "A" else "users' simplex weights") + " (PCA)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    plt.close(fig)
    return fig
