"""The Runs tab's logic without a browser: a form for every registered job type, browser values
confined and checked before a run exists, owner only, and a real RecSAE run on the shipped
synthetic dataset started, cancelled and resumed through the same function the tab calls."""
from __future__ import annotations

import time

import gradio as gr
import pytest

from plugins.runs import actions
from plugins.runs.tab import build_runs_tab, slug
from workbench.context import AppContext
from workbench.errors import ConfigError, PermissionDenied, SecurityError
from workbench.jobs import JobManager
from workbench.plugins import PluginHost
from workbench.sae.synthetic import synthetic_paths
from workbench.settings import Settings

INTERACTIONS, ITEMS, _ = synthetic_paths()


@pytest.fixture
def ctx(tmp_path) -> AppContext:
    data = tmp_path / "data"
    data.mkdir()
    return AppContext(Settings(home=tmp_path / "home", data_roots=[data], users={"ann": "pw"}), plugins=PluginHost())


def test_every_registered_job_type_gets_a_form(ctx) -> None:
    manager = JobManager.for_context(ctx)
    assert {"dpo", "pal", "dpa-rsf", "recsae", "lm-sae", "labeling.generate-pairs"} <= set(manager.types)
    recsae = manager.job_type("recsae")
    assert {"interactions", "attributes", "epochs", "d_model"} <= set(actions.form_fields(recsae))
    assert actions.yaml_fields(recsae) == ["sae"]  # a mapping: only the YAML box sets it
    # an empty Gradio number box sends 0, so a number that defaults to "none" is a YAML option
    assert {"layer", "max_pairs", "sae"} == set(actions.yaml_fields(manager.job_type("lm-sae")))
    assert str(INTERACTIONS).replace("_", "\\_") in actions.form_hint(recsae)
    pairs_job = manager.job_type("labeling.generate-pairs")
    assert actions.form_fields(pairs_job) == ["dataset", "session", "candidate", "batch_size"]
    assert actions.yaml_fields(pairs_job) == ["prompts", "sources", "session_settings"]
    with gr.Blocks() as demo:
        build_runs_tab(ctx)
    ids = {getattr(b, "elem_id", None) for b in demo.blocks.values()}
    assert {f"runs-{slug(n)}-start" for n in manager.types} <= ids and "runs-recsae-example" in ids


def test_browser_values_are_confined_and_checked(ctx, tmp_path) -> None:
    outside = tmp_path / "elsewhere.csv"
    outside.write_text("user,item,timestamp\n", encoding="utf-8")
    with pytest.raises(SecurityError, match="outside the configured data folders"):
        actions.options_from_form(ctx, {"interactions": str(outside)}, "")
    with pytest.raises(SecurityError):  # nested in the YAML box too
        actions.options_from_form(ctx, {}, f"sources: [{{model: {tmp_path / 'm'}}}]")
    opts = actions.options_from_form(ctx, {"interactions": str(INTERACTIONS), "attributes": str(ITEMS), "epochs": 3, "sep": ""},
                                     "sae: {k: 4}")
    assert opts == {"interactions": str(INTERACTIONS), "attributes": str(ITEMS), "epochs": 3, "sae": {"k": 4}}
    inside = tmp_path / "data" / "pairs.jsonl"
    assert actions.options_from_form(ctx, {"dataset": str(inside), "model": "SmolLM2-135M-Instruct"}, "") == {
        "dataset": str(inside.resolve()), "model": "SmolLM2-135M-Instruct"}
    with pytest.raises(ConfigError, match="not valid YAML"):
        actions.parse_yaml("sae: {k: 4")
    with pytest.raises(ConfigError, match="option: value"):
        actions.parse_yaml("- a list")
    with pytest.raises(ConfigError, match="both in the form and in the options box"):
        actions.options_from_form(ctx, {"epochs": 3}, "epochs: 4")


def test_start_refusals_then_cancel_and_resume_a_run(ctx, tiny_checkpoint) -> None:
    manager = JobManager.for_context(ctx)
    values = {"interactions": str(INTERACTIONS), "attributes": str(ITEMS), "epochs": 2}
    with pytest.raises(PermissionDenied, match="only the workbench owner can start a job"):
        actions.start(ctx, manager, "ann", "recsae", values, "")
    with pytest.raises(ConfigError, match="epochs must be at least 1"):
        actions.start(ctx, manager, None, "recsae", {**values, "epochs": 0}, "")
    assert manager.runs() == []  # a refused config never becomes a run
    ctx.settings.model_roots.append(tiny_checkpoint("llama").parent)
    run = actions.start(ctx, manager, None, "lm-sae", {"model": str(tiny_checkpoint("llama")), "dataset": ctx.ensure_demo_dataset(),
                                                       "prefer_pole": "verbose"}, "sae: {training_samples: 2000000}")
    assert run.config["sae"]["training_samples"] == 2_000_000
    t0 = time.monotonic()
    while run.progress().get("eta_s") is None and run.is_active() and time.monotonic() - t0 < 400:
        time.sleep(0.5)
    assert run.progress()["stage"] == "sae" and run.status == "running", run.log_tail()
    manager.cancel(run.id)
    # No wall-clock bound on a shared machine: the run must stop because of the cancel, mid-stage.
    assert run.wait(timeout=300).status == "cancelled", run.log_tail()
    stopped = run.progress()
    assert stopped["stage"] == "sae" and stopped["step"] < stopped["total"], stopped
    manager.resume(run.id)
    assert run.status in ("queued", "running")
    resumed = time.time()
    while not (run.progress().get("stage") == "sae" and run.progress()["updated"] > resumed) and time.time() - resumed < 400:
        time.sleep(0.5)  # the resumed attempt reads its activations from the cache, then trains again
    again = run.progress()
    assert again["stage"] == "sae" and again["updated"] > resumed and run.status == "running", (again, run.log_tail())
    manager.cancel(run.id)
    assert run.wait(timeout=30).status == "cancelled" and run.manifest.attempts == 2
