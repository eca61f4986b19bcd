"""The DPO and PAL jobs' own metric plots, declared on their job types (``JobType.figure``) so the
Runs tab draws them without knowing the jobs, and drawn by the Fine-tune tab too.

No pyplot: its global figure list is not safe across the server's threads.
"""
from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure

DPO_PANELS = (
    ("loss", ["loss"]),
    ("rewards", ["rewards/chosen", "rewards/rejected", "rewards/margins"]),
    ("accuracy", ["rewards/accuracies"]),
    ("log-probs", ["logps/chosen", "logps/rejected"]),
)


def dpo_figure(rows: list[dict[str, Any]]) -> Figure:
    """Live DPO curves: loss, rewards (chosen/rejected/margins), accuracy, log-probs."""
    fig = Figure(figsize=(14, 3))
    axes = fig.subplots(1, len(DPO_PANELS))
    rows = [r for r in rows if "loss" in r]
    for ax, (title, keys) in zip(axes, DPO_PANELS, strict=True):
        for key in keys:
            pts = [(r["step"], r[key]) for r in rows if key in r]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker=".", label=key.split("/")[-1])
        ax.set_title(title)
        ax.set_xlabel("step")
        if len(keys) > 1 and ax.lines:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def pal_figure(rows: list[dict[str, Any]]) -> Figure:
    """Training loss and accuracy per model (PAL-A, PAL-B, BT) by epoch."""
    fig = Figure(figsize=(10, 3))
    axes = fig.subplots(1, 2)
    for name in dict.fromkeys(r["model"] for r in rows if "model" in r):
        pts = [r for r in rows if r.get("model") == name]
        axes[0].plot([r["epoch"] for r in pts], [r["loss"] for r in pts], label=name)
        axes[1].plot([r["epoch"] for r in pts], [r["train_accuracy"] for r in pts], label=name)
    for ax, title in zip(axes, ("loss", "train accuracy"), strict=True):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        if ax.lines:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
