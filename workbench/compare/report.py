"""What ``workbench compare`` reads and writes around the model diff.

It writes the model diff as ``diff.json`` (summary), ``per_layer.csv``, ``per_pair.csv``,
``tokens.csv`` and two plots, and words a short summary. MODEL_B may be a training run's
folder: its manifest must say it finished, and the run's adapter is loaded onto its base,
which the loader finds from the adapter's own record. When MODEL_B is a run (its folder,
``run:<id>`` or its output checkpoint) that saved its split, the pairs are reported as the
run's train, held-out and never-seen pairs, each with its own figures.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from workbench.errors import ConfigError
from workbench.files import atomic_path, atomic_write_text
from workbench.jobs.manifest import MANIFEST, read_manifest
from workbench.settings import Settings


def model_source(name_or_path: str) -> str:
    """A catalog name or checkpoint path as given; a run folder becomes its finished output checkpoint."""
    folder = Path(name_or_path).expanduser()
    if not (folder / MANIFEST).is_file():
        return name_or_path
    try:
        manifest = read_manifest(folder)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"Cannot read the run manifest {folder / MANIFEST}: {exc}.", hint="Is this a workbench run folder?") from None
    if manifest.status != "finished":
        raise ConfigError(f"Run {manifest.id} in {folder} is {manifest.status}, not finished: it has no final checkpoint yet.",
                          hint=f"Wait for it to finish (workbench runs show {manifest.id}), or compare one of its checkpoints by path.")
    if not manifest.output or not (folder / manifest.output).exists():
        raise ConfigError(f"Run {manifest.id} finished but names no output checkpoint ({manifest.output!r}).",
                          hint="Only training runs that save a model or adapter can be compared.")
    return str(folder / manifest.output)


def run_folder(name_or_path: str, settings: Settings) -> Path | None:
    """The training run behind a model argument: a run folder, a ``run:<id>`` catalog name or a run's
    output checkpoint; None for any other model."""
    if name_or_path.startswith("run:"):
        folder = settings.runs_dir / name_or_path.removeprefix("run:")
        return folder if (folder / MANIFEST).is_file() else None
    path = Path(name_or_path).expanduser()
    if (path / MANIFEST).is_file():
        return path
    if (path.parent / MANIFEST).is_file():
        try:
            output = read_manifest(path.parent).output
        except (OSError, ValueError):
            return None
        return path.parent if output and output == path.name else None
    return None


def with_run_split(diff: Any, model_b: str, settings: Settings) -> Any:
    """The diff with each pair labelled train / held_out / never_seen by MODEL_B's run, or a note saying why no split is known."""
    from workbench.training.pairs import run_split_ids  # the training package: only when a diff is made

    folder = run_folder(model_b, settings)
    if folder is None:
        return replace(diff, split_note=f"{model_b} is not a training run: no train/held-out split is known, all pairs are one group.")
    ids = run_split_ids(folder)
    if ids is None:
        return replace(diff, split_run=folder.name, split_note=f"run {folder.name} saved no train/held-out pair ids (not a DPO run, or "
                       "made before runs saved them): all pairs are one group.")
    return replace(diff, split=[ids.group(p) for p in diff.pair_ids], split_run=folder.name)


def write_outputs(diff: Any, out: Path) -> list[Path]:
    """The diff's JSON, CSVs and PNGs under ``out`` (each file written atomically)."""
    import matplotlib  # matplotlib and pandas: only when a diff is written, not at every CLI start

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt  # matplotlib: only in write_outputs()
    import pandas as pd  # pandas: only in write_outputs()

    out.mkdir(parents=True, exist_ok=True)
    summary = diff.summary()
    files = {"json": out / "diff.json", "layers": out / "per_layer.csv", "pairs": out / "per_pair.csv", "tokens": out / "tokens.csv",
             "layers_png": out / "per_layer.png", "reward_png": out / "reward_shift.png"}
    atomic_write_text(files["json"], json.dumps(summary, indent=1, ensure_ascii=False, default=float))
    tokens = diff.top_tokens(50)
    tables = {"layers": diff.per_layer(), "pairs": diff.per_pair(),
              "tokens": pd.DataFrame([{**r, "direction": d} for d in ("up", "down") for r in tokens[d]])}
    for key, frame in tables.items():
        with atomic_path(files[key]) as tmp:
            frame.to_csv(tmp, index=False)
    layers = diff.per_layer()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot(layers["layer"], layers["kl_a_b"], marker="o")
    axes[0].set(title="lens KL(A‖B) per layer", xlabel="layer", ylabel="nats")
    axes[1].plot(layers["layer"], layers["cka"], marker="o", label="linear CKA")
    if diff.cosine is not None:
        axes[1].plot(layers["layer"], layers["cosine"], marker="s", label="cosine")
    axes[1].set(title="hidden-state similarity", xlabel="layer", ylim=(min(0.0, float(layers["cka"].min())), 1.05))
    axes[1].legend()
    axes[2].plot(layers["layer"], layers["pref_margin_a"], marker="o", label=diff.model_a)
    axes[2].plot(layers["layer"], layers["pref_margin_b"], marker="s", label=diff.model_b)
    axes[2].axhline(0, color="grey", lw=0.5)
    axes[2].set(title="preference-lens margin", xlabel="layer", ylabel="log p(chosen) − log p(rejected)")
    axes[2].legend()
    fig.tight_layout()
    chosen, rejected, margin = diff.reward_shift()
    fig2, ax = plt.subplots(figsize=(6, 3.6))
    ax.hist([chosen, rejected, margin], bins=30, label=["chosen", "rejected", "margin"], histtype="step")
    ax.set(title=f"implicit reward shift β·Δlog π (β={diff.beta}, {diff.model_a} as reference)", xlabel="reward shift")
    ax.legend()
    fig2.tight_layout()
    for key, figure in (("layers_png", fig), ("reward_png", fig2)):
        with atomic_path(files[key]) as tmp:
            figure.savefig(tmp, dpi=110, format="png")
        plt.close(figure)
    return list(files.values())


def summary_lines(diff: Any) -> list[str]:
    """The printed summary: overall shifts, then per split group, then the tokens that moved (or 'no difference')."""
    from workbench.compare.diff import TOKEN_NOISE  # torch: only when a diff is printed

    s = diff.summary(k=5)
    r, length = s["implicit_reward"], s["length"]
    lines = [f"{s['model_b']} vs {s['model_a']} (reference) over {s['n_pairs']} pairs, {s['n_response_tokens']} response tokens",
             *[f"note: {n}" for n in s["notes"]],
             f"first layer that differs: {s['first_changed_layer'] if s['first_changed_layer'] is not None else 'none'}; "
             f"final-layer KL {float(diff.kl[-1]):.4f} nats, CKA {float(diff.cka[-1]):.3f}",
             f"implicit reward shift (β={s['beta']}): chosen {r['mean_chosen_shift']:+.3f}, rejected {r['mean_rejected_shift']:+.3f}, "
             f"margin {r['mean_margin_shift']:+.3f} (up in {r['share_margin_up']:.0%} of pairs)",
             f"length: shift vs response length r = {length['corr_shift_vs_length']:+.2f}, "
             f"longer response gains {length['longer_response_gain']:+.3f} reward"]
    split = s["split"]
    if split["known"]:
        lines.append(f"by run {split['run']}'s split (implicit reward margin shift; final-layer preference-lens margin A → B):")
        for name, g in split["groups"].items():
            if not g["n"]:
                lines.append(f"  {name:<10} n=0")
                continue
            lens = (f"; lens margin {g['pref_margin_a']:+.3f} → {g['pref_margin_b']:+.3f} ({g['pref_margin_shift']:+.3f})"
                    if g["pref_margin_shift"] is not None else "")
            lines.append(f"  {name:<10} n={g['n']}: margin {g['mean_margin_shift']:+.3f} (up in {g['share_margin_up']:.0%}), "
                         f"chosen {g['mean_chosen_shift']:+.3f}, rejected {g['mean_rejected_shift']:+.3f}{lens}")
    else:
        lines.append(f"split: {split['note']}")
    up, down = s["top_tokens"]["up"], s["top_tokens"]["down"]
    if not up and not down:
        lines.append(f"token log-probs: no difference (no token's mean shift reaches {TOKEN_NOISE:g} nats)")
    else:
        lines += ["tokens up most: " + (", ".join(f"{t['token']} {t['mean_shift']:+.2f}" for t in up[:5]) or "none"),
                  "tokens down most: " + (", ".join(f"{t['token']} {t['mean_shift']:+.2f}" for t in down[:5]) or "none")]
    return lines
