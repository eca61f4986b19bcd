"""The persona benchmark generator, the PAL job through the real CLI, and the tab's helpers."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.data.readers import read_pairs
from workbench.errors import DataError
from workbench.jobs import JobManager
from workbench.settings import Settings
from workbench.training.persona import PersonaSpec, build_persona_benchmark, write_benchmark

TRAITS = ["likes-cats", "likes-rain", "likes-jazz"]
WORKBENCH = [sys.executable, "-c", "from workbench.cli import main; main()"]


def fake_persona(folder: Path) -> Path:
    """Three tiny trait files in the anthropics/evals persona format."""
    folder.mkdir()
    for trait in TRAITS:
        topic = trait.split("-")[1]
        with open(folder / f"{trait}.jsonl", "w", encoding="utf-8") as fh:
            for i in range(12):
                yes = i % 2 == 0
                statement = f"I {'really enjoy' if yes else 'cannot stand'} {topic}, reason number {i}"
                fh.write(json.dumps({"statement": statement, "label_confidence": 0.95 if i < 10 else 0.5,
                                     "answer_matching_behavior": " Yes" if yes else " No"}) + "\n")
    return folder


SMALL = PersonaSpec(traits=TRAITS, n_groups=2, n_seen_users=6, n_unseen_users=2, train_pairs_per_user=30, test_pairs_per_user=10,
                    unseen_pool_per_user=20, statements_per_trait=10, min_confidence=0.9, beta=50.0, seed=3)


def test_persona_benchmark_design(tmp_path):
    pairs, truth = build_persona_benchmark(fake_persona(tmp_path / "persona"), SMALL)
    assert len(pairs) == 6 * 40 + 2 * 30
    assert {p.metadata["user_kind"] for p in pairs} == {"seen", "unseen"}
    train_texts = {t for p in pairs if p.metadata["split"] == "train" for t in (p.response_a, p.response_b)}
    test_texts = {t for p in pairs if p.metadata["split"] == "test" for t in (p.response_a, p.response_b)}
    assert train_texts and test_texts and not train_texts & test_texts  # disjoint statements
    assert all("number 10" not in t and "number 11" not in t for t in train_texts | test_texts)  # low confidence dropped
    assert all(p.metadata["trait_a"] != p.metadata["trait_b"] for p in pairs)
    theta = truth["group_preferences"]
    assert len(theta) == 2 and theta[0] != theta[1]
    # With a sharp beta the labels follow the hidden utilities.
    agree = sum((p.metadata["p_a"] > 0.5) == (p.preferred == "A") for p in pairs) / len(pairs)
    assert agree > 0.95
    path = write_benchmark(pairs, truth, tmp_path / "bench")
    back = read_pairs(path)
    assert [p.id for p in back] == [p.id for p in pairs] and back[0].metadata == pairs[0].metadata


def test_persona_benchmark_reports_missing_trait(tmp_path):
    folder = fake_persona(tmp_path / "persona")
    with pytest.raises(DataError, match="likes-snow.jsonl: persona trait file not found"):
        build_persona_benchmark(folder, PersonaSpec(traits=["likes-snow"], statements_per_trait=4))


def _cli(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WORKBENCH_HOME": str(home)}
    return subprocess.run([*WORKBENCH, *args], capture_output=True, text=True, env=env, timeout=600)


def test_pal_job_through_the_cli(tmp_path, tiny_checkpoint):
    from plugins.finetune import actions
    from plugins.finetune.figures import pal_figure
    from workbench.app import job_ui

    pairs, truth = build_persona_benchmark(fake_persona(tmp_path / "persona"), SMALL)
    data = write_benchmark(pairs, truth, tmp_path / "bench")
    home = tmp_path / "home"
    out = _cli("train", "pal", "--dataset", str(data), "--model", str(tiny_checkpoint("llama")), "--k", "2", "--epochs", "3",
               "--set", "shots=[1, 5]", "--set", "adapt_steps=20", "--wait", home=home)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "finished" in out.stdout

    run = JobManager(Settings(home=home)).runs()[0]
    summary = run.manifest.summary
    assert set(summary["seen"]) == {"BT", "PAL-A", "PAL-B", "oracle"}
    assert set(summary["unseen"]["shots"]) == {"1", "5"} and summary["unseen"]["n_users"] == 2
    assert summary["n_seen_users"] == 6 and summary["n_train_pairs"] == 180 and summary["n_test_pairs"] == 60
    assert {p.name for p in (run.dir / "pal").iterdir()} >= {"PAL-A.safetensors", "PAL-B.safetensors", "BT.safetensors", "latent.json", "results.json"}
    latent = json.loads((run.dir / "pal" / "latent.json").read_text())
    assert len(latent["PAL-A"]["points"]) == 6 and len(latent["PAL-A"]["prototypes"]) == 2
    assert [r["epoch"] for r in run.metrics() if r["model"] == "PAL-A"] == [1, 2, 3]
    # The finished PAL run is not a language model: the catalog does not list it.
    from workbench.models.catalog import finished_runs

    assert finished_runs(home / "runs") == []

    rows = actions.pal_results_rows(run)
    assert [r[0] for r in rows] == ["BT", "PAL-A", "PAL-B", "oracle"] and len(rows[0]) == 4
    assert actions.pal_results_columns(run) == ["model", "seen users", "unseen, 1 shots", "unseen, 5 shots"]
    assert actions.latent_figure(run) is not None and pal_figure(run.metrics()) is not None
    assert "finished" in job_ui.status_markdown(run)

    # The runs commands in-process (the subprocess above already exercised the entry point).
    from typer.testing import CliRunner

    from workbench.errors import ConfigError
    from workbench.jobs.cli import runs_app

    cli = CliRunner()
    listed = cli.invoke(runs_app, ["list", "--home", str(home)])
    assert run.id in listed.stdout and "finished" in listed.stdout
    shown = cli.invoke(runs_app, ["show", run.id[:10], "--home", str(home)])
    assert shown.exit_code == 0 and '"status": "finished"' in shown.stdout
    refused = cli.invoke(runs_app, ["cancel", run.id, "--home", str(home)])
    assert isinstance(refused.exception, ConfigError) and "only a queued or running run can be cancelled" in str(refused.exception)


def test_cli_bad_config_fails_before_start(tmp_path):
    home = tmp_path / "home"
    out = _cli("train", "pal", "--dataset", str(tmp_path / "nope.jsonl"), home=home)
    assert out.returncode == 2 and "nope.jsonl: does not exist" in out.stderr
    from typer.testing import CliRunner

    from plugins.finetune.cli import train_app

    out = CliRunner().invoke(train_app, ["dpo", "--dataset", str(tmp_path / "nope.jsonl"), "--set", "lora_rank=4", "--home", str(home)])
    assert "did you mean 'lora_r'" in str(out.exception)
    assert not (home / "runs").exists() or list((home / "runs").iterdir()) == []


def test_finetune_tab_builds(tmp_path):
    import gradio as gr

    from plugins.finetune.tab import build_finetune_tab
    from workbench.context import AppContext

    with gr.Blocks() as demo:
        build_finetune_tab(AppContext(Settings(home=tmp_path / "home")))
    labels = {getattr(b, "label", None) for b in demo.blocks.values()}
    assert {"Run", "Training curves", "Log tail", "Latent view: prototypes and users"} <= labels
