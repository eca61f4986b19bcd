"""The PAL latent plot reads at any scale (issue 21 §5: a PCA axis on a 1e-6 scale), and says so when the
users cannot be told apart (views in the format the PAL job writes to ``pal/latent.json``); the DPO and PAL
jobs' own metric figures (``JobType.figure``) draw what was logged."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from plugins.finetune import actions
from plugins.finetune.figures import dpo_figure, pal_figure
from workbench.jobs.runner import Run


def write_view(run_dir: Path, points: list[list[float]], prototypes: list[list[float]]) -> Run:
    (run_dir / "pal").mkdir(parents=True)
    view = {"variant": "A", "points": points, "prototypes": prototypes, "users": [f"u{i}" for i in range(len(points))],
            "weights": [], "groups": [0] * len(points)}
    (run_dir / "pal" / "latent.json").write_text(json.dumps({"PAL-A": view}), encoding="utf-8")
    return Run(run_dir)


def test_a_latent_view_on_a_1e_6_scale_is_drawn_at_the_scale_of_its_spread(tmp_path: Path) -> None:
    points = [[1e-6, 2e-6], [-1e-6, 0.5e-6], [3e-6, -2e-6]]
    run = write_view(tmp_path / "run", points, [[0.0, 0.0], [2e-6, 1e-6]])
    fig = actions.latent_figure(run)
    ax = fig.axes[0]
    for lo, hi in (ax.get_xlim(), ax.get_ylim()):
        assert 0.5 < hi - lo < 3, (lo, hi)  # a share of the spread, not 1e-6
    coords, protos, note = actions.latent_coordinates(json.loads((run.dir / "pal" / "latent.json").read_text())["PAL-A"])
    assert np.ptp(np.vstack([coords, protos]), axis=0).max() == 1.0
    assert "all users' weights are equal" in note  # 1e-6 apart: one taste, whatever the axes say
    assert "all users' weights are equal" in ax.get_title()


def test_users_far_apart_get_no_note(tmp_path: Path) -> None:
    run = write_view(tmp_path / "run", [[0.0, 0.0], [3.0, 1.0], [-2.0, 4.0]], [[1.0, 1.0], [-1.0, 2.0]])
    view = json.loads((run.dir / "pal" / "latent.json").read_text())["PAL-A"]
    coords, _, note = actions.latent_coordinates(view)
    assert note == "" and np.allclose(np.ptp(coords, axis=0).max(), 5 / 5)
    assert "equal" not in actions.latent_figure(run).axes[0].get_title()


def test_the_dpo_figure_draws_each_logged_curve_by_step() -> None:
    rows = [{"stage": "reference"}]  # a row without a loss (e.g. the log-prob pass) is not a training step
    rows += [{"step": s, "loss": 0.7 - 0.1 * s, "rewards/chosen": 0.1 * s, "rewards/rejected": -0.1 * s, "rewards/margins": 0.2 * s,
              "rewards/accuracies": 0.5 + 0.1 * s, "logps/chosen": -40.0 + s, "logps/rejected": -42.0 - s} for s in (1, 2, 3)]
    fig = dpo_figure(rows)
    assert [ax.get_title() for ax in fig.axes] == ["loss", "rewards", "accuracy", "log-probs"]
    assert [len(ax.lines) for ax in fig.axes] == [1, 3, 1, 2]
    loss = fig.axes[0].lines[0]
    assert list(loss.get_xdata()) == [1, 2, 3] and list(loss.get_ydata()) == [r["loss"] for r in rows[1:]]
    assert [t.get_text() for t in fig.axes[1].get_legend().get_texts()] == ["chosen", "rejected", "margins"]


def test_the_pal_figure_draws_one_curve_per_model_by_epoch() -> None:
    rows = [{"model": m, "epoch": e, "loss": 1.0 / (e + i), "train_accuracy": 0.5 + 0.1 * e}
            for i, m in enumerate(("PAL-A", "BT"), start=1) for e in (1, 2)]
    fig = pal_figure(rows)
    assert [ax.get_title() for ax in fig.axes] == ["loss", "train accuracy"]
    for ax in fig.axes:
        assert [line.get_label() for line in ax.lines] == ["PAL-A", "BT"] and list(ax.lines[0].get_xdata()) == [1, 2]
    assert list(fig.axes[0].lines[1].get_ydata()) == [1.0 / 3, 1.0 / 4]
    assert len(pal_figure([]).axes[0].lines) == 0  # nothing logged yet: empty panels, no error
