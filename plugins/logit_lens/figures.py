"""Static figures (PNG/SVG) of lens results, drawn with matplotlib for export, docs and notebooks.

The interactive Panel view draws with HoloViews; these functions give the same pictures as
files a paper or a report can hold.
"""
from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from workbench.lenses import LatentResult, PreferenceLensResult  # noqa: E402

COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2"]
LINESTYLES = ["-", "--", ":", "-."]


def latent_figure(results: Sequence[LatentResult], title: str | None = None) -> Figure:
    """P(language) per layer with 95% bands for one or more checkpoints, the share of examples beating
    their control, and an entropy strip.

    Colours are languages, line styles are checkpoints, so base vs tuned reads at a glance;
    thin dotted lines are the controls (mean P on the other concepts' token sets), thin dashed
    lines the medians. A quoted result carried by ≤ 10% of the examples gets a red ring and a note.
    """
    if not results:
        raise ValueError("latent_figure needs at least one result")
    fig, (ax, beats, strip) = plt.subplots(3, 1, figsize=(7.5, 6.0), sharex=True, gridspec_kw={
        "height_ratios": [4, 1.3, 0.35 + 0.25 * len(results)], "hspace": 0.1})
    languages = list(dict.fromkeys(lang for r in results for lang in r.languages))
    entropies, top, notes = [], 0.0, []
    for m, result in enumerate(results):
        curves = result.curves()
        style = LINESTYLES[m % len(LINESTYLES)]
        for lang in result.languages:
            color = COLORS[languages.index(lang) % len(COLORS)]
            label = f"P({lang}) {result.role(lang)}" + (f" · {result.model_name}" if len(results) > 1 else "")
            ax.plot(curves["layer"], curves[f"p_{lang}"], style, color=color, label=label, lw=1.8)
            ax.fill_between(curves["layer"], curves[f"p_{lang}_lo"].clip(0, 1), curves[f"p_{lang}_hi"].clip(0, 1), color=color, alpha=0.15, lw=0)
            ax.plot(curves["layer"], curves[f"p_{lang}_median"], "--", color=color, lw=0.8, alpha=0.8)
            if result.has_control:  # the mass on the other concepts' sets: what P(lang) must beat to mean the word
                ax.plot(curves["layer"], curves[f"p_{lang}_control"], ":", color=color, lw=1, label=f"{label} · control")
                beats.plot(curves["layer"], curves[f"p_{lang}_beats_control"], style, color=color, lw=1.2)
            top = max(top, float(curves[f"p_{lang}_hi"].max()))
        for few in result.few_carriers():
            ax.plot([few.layer], [few.mean], "o", mfc="none", mec="#dc2626", ms=11, mew=1.8)
            notes.append(f"P({few.lang}) at layer {few.layer}: {few.k} of {few.n} examples")
        entropies.append(curves["entropy_bits"].to_numpy())
    ax.set_ylabel("probability (logit lens)")
    ax.set_ylim(0, min(1.0, max(0.02, 1.15 * top)))  # small models put little mass anywhere: zoom to the data
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8, frameon=False, title="dashed thin: median", title_fontsize=7)
    if notes:
        ax.text(0.99, 0.98, "carried by ≤ 10% of the examples (red ring):\n" + "\n".join(notes), transform=ax.transAxes,
                ha="right", va="top", fontsize=7, color="#dc2626")
    first = results[0]
    counts = ", ".join(f"n={len(r.examples)} (−{r.n_overlap} overlap, {r.n_source_overlap} via the source)" for r in results)
    ax.set_title(title or f"{first.task.title} · {counts}", fontsize=10)
    beats.set_ylim(0, 1.05)
    beats.set_ylabel("share >\ncontrol", fontsize=8)
    beats.grid(alpha=0.3)
    image = strip.imshow(entropies, aspect="auto", cmap="magma_r", extent=(-0.5, len(entropies[0]) - 0.5, len(results) - 0.5, -0.5))
    strip.set_yticks(range(len(results)), [r.model_name for r in results], fontsize=7)
    strip.set_xlabel("layer (0 = embeddings)")
    fig.colorbar(image, ax=[ax, beats, strip], location="right", shrink=0.25, anchor=(0, 0), label="entropy (bits)")
    return fig


def preference_figure(results: Sequence[PreferenceLensResult]) -> Figure:
    """Mean chosen − rejected log-prob margin per layer with its band, and the share agreeing with the last layer."""
    fig, (ax, agree) = plt.subplots(2, 1, figsize=(7.5, 4.8), sharex=True, gridspec_kw={"height_ratios": [3, 1.4], "hspace": 0.1})
    for m, result in enumerate(results):
        curve = result.curve()
        color = COLORS[m % len(COLORS)]
        ax.plot(curve["layer"], curve["margin"], color=color, label=f"{result.model_name} (n={len(result.pair_ids)})")
        ax.fill_between(curve["layer"], curve["margin_lo"], curve["margin_hi"], color=color, alpha=0.15, lw=0)
        agree.plot(curve["layer"], curve["agree_with_final"], color=color)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_ylabel("log p(chosen) − log p(rejected)")
    ax.set_title("Preference lens: margin at the first differing token", fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    agree.set_ylim(0, 1.05)
    agree.set_ylabel("sign = final", fontsize=8)
    agree.set_xlabel("layer (0 = embeddings)")
    agree.grid(alpha=0.3)
    return fig


def figure_bytes(fig: Figure, fmt: str = "png", dpi: int = 150) -> bytes:
    """The figure as PNG or SVG bytes (the figure is closed afterwards)."""
    if fmt not in ("png", "svg"):
        raise ValueError(f"fmt must be 'png' or 'svg', got {fmt!r}")
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()
