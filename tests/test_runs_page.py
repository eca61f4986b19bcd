"""The Runs tab's logic without a browser: a form for every registered job type, browser values
confined and checked before a run exists, owner only, a real RecSAE run on the shipped
synthetic dataset started, cancelled and resumed through the same function the tab calls, and
a third-party job type's own figure and ready example shown by the tab, which names no job."""
from __future__ import annotations

import dataclasses
import re
import time
import types
from pathlib import Path
from typing import Any, ClassVar

import gradio as gr
import pytest
from matplotlib.figure import Figure

from plugins.finetune.figures import dpo_figure, pal_figure
from plugins.runs import actions
from plugins.runs.tab import build_runs_tab, slug
from workbench.context import AppContext
from workbench.errors import ConfigError, PermissionDenied, SecurityError
from workbench.hookspecs import hookimpl
from workbench.jobs import JobContext, JobManager, JobType
from workbench.jobs.config import JobConfig, option
from workbench.jobs.registry import JobExample
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
    assert {"dpo", "pal", "dpa-rsf", "recsae", "lm-sae", "generate-pairs"} <= set(manager.types)
    recsae = manager.job_type("recsae")
    assert {"interactions", "attributes", "epochs", "d_model"} <= set(actions.form_fields(recsae))
    assert actions.yaml_fields(recsae) == ["sae"]  # a mapping: only the YAML box sets it
    # an empty Gradio number box sends 0, so a number that defaults to "none" is a YAML option
    assert {"layer", "max_pairs", "sae"} == set(actions.yaml_fields(manager.job_type("lm-sae")))
    assert str(INTERACTIONS).replace("_", "\\_") in actions.form_hint(recsae, actions.example_values(recsae))
    # the shipped plugins declare their own figures and ready runs on their job types
    assert (manager.job_type("dpo").figure, manager.job_type("pal").figure) == (dpo_figure, pal_figure)
    assert actions.example_values(recsae) == {"interactions": str(INTERACTIONS), "attributes": str(ITEMS)}
    pairs_job = manager.job_type("generate-pairs")
    assert actions.form_fields(pairs_job) == ["dataset", "session", "candidate", "batch_size"]
    assert actions.yaml_fields(pairs_job) == ["prompts", "sources", "session_settings"]
    with gr.Blocks() as demo:
        build_runs_tab(ctx)
    ids = {getattr(b, "elem_id", None) for b in demo.blocks.values()}
    assert {f"runs-{slug(n)}-start" for n in manager.types} <= ids
    assert {f"runs-{slug(n)}-example" for n, t in manager.types.items() if t.example} == {i for i in ids if i and i.endswith("-example")} == {"runs-recsae-example"}


def test_browser_values_are_confined_and_checked(ctx, tmp_path) -> None:
    outside = tmp_path / "elsewhere.csv"
    outside.write_text("user,item,timestamp\n", encoding="utf-8")
    with pytest.raises(SecurityError, match="outside the configured data folders"):
        actions.options_from_form(ctx, {"interactions": str(outside)}, "")
    with pytest.raises(SecurityError):  # nested in the YAML box too
        actions.options_from_form(ctx, {}, f"sources: [{{model: {tmp_path / 'm'}}}]")
    shipped = actions.shipped_files(JobManager.for_context(ctx).job_type("recsae"))  # the files its declared example names
    assert shipped == {INTERACTIONS.resolve(), ITEMS.resolve()}
    opts = actions.options_from_form(ctx, {"interactions": str(INTERACTIONS), "attributes": str(ITEMS), "epochs": 3, "sep": ""},
                                     "sae: {k: 4}", shipped)
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


@dataclasses.dataclass
class CountConfig(JobConfig):
    """A third-party job's options: a word file, a number and a mapping only the YAML box sets."""

    what: ClassVar[str] = "count"
    words: str = option("", help="a text file, one word a line")
    rounds: int = option(1, help="how many times to count", min=1)
    weights: dict[str, float] = option(default_factory=dict, help="a weight per word")


def count_job(job: JobContext) -> None:
    """Log one metrics row per round: how many words the file holds."""
    n = len(Path(job.options.words).read_text(encoding="utf-8").split())
    for r in range(job.options.rounds):
        job.log_metrics({"step": r + 1, "words": n})


def count_figure(rows: list[dict[str, Any]]) -> Figure:
    """The plugin's own plot, told apart from the generic one by its title."""
    fig = Figure()
    ax = fig.subplots()
    ax.bar([r["step"] for r in rows], [r["words"] for r in rows])
    ax.set_title(f"{rows[-1]['words']} words, {len(rows)} rounds")
    return fig


def counter_ctx(tmp_path: Path, example: Any) -> AppContext:
    """A context whose only plugin is a third-party one offering the "count" job with its figure and ``example``."""
    job = JobType("count", count_job, description="Count words.", config_cls=CountConfig, figure=count_figure,
                  example=JobExample("Use the bundled word list", example))

    @hookimpl
    def job_types() -> dict[str, JobType]:
        return {"count": job}

    host = PluginHost(load=False)
    host.register(types.SimpleNamespace(job_types=job_types), "counter")
    (tmp_path / "data").mkdir(exist_ok=True)
    return AppContext(Settings(home=tmp_path / "home", data_roots=[tmp_path / "data"]), plugins=host)


def handler(demo: gr.Blocks, elem_id: str, event: str) -> Any:
    """The function the tab wired to ``event`` of the component with ``elem_id``, with its outputs' ids."""
    block = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == elem_id)
    fn = next(f for f in demo.fns.values() if (block._id, event) in f.targets)
    return fn.fn, [o.elem_id for o in fn.outputs]


def test_a_plugin_job_type_brings_its_example_and_figure(tmp_path) -> None:
    shipped = tmp_path / "plugin" / "words.txt"  # data a plugin ships: outside every data folder
    shipped.parent.mkdir()
    shipped.write_text("the cat saw the dog\n", encoding="utf-8")
    ctx = counter_ctx(tmp_path, lambda: {"words": str(shipped), "weights": {"the": 2.0}})
    with gr.Blocks() as demo:
        build_runs_tab(ctx)
    button = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "runs-count-example")
    assert button.value == "Use the bundled word list"
    fill, outputs = handler(demo, "runs-count-example", "click")
    assert dict(zip(outputs, fill(), strict=True)) == {"runs-count-words": str(shipped), "runs-count-yaml": "weights:\n  the: 2.0\n"}
    with pytest.raises(SecurityError, match="outside the configured data folders"):  # only the declared example's file is let through
        actions.options_from_form(ctx, {"words": str(shipped)}, "")

    manager = JobManager.for_context(ctx)
    run = actions.start(ctx, manager, None, "count", {"words": str(shipped), "rounds": 3}, "weights: {the: 2.0}")
    assert run.wait(timeout=120).status == "finished", run.log_tail()
    show, outputs = handler(demo, "runs-run", "change")
    shown = dict(zip(outputs, show(run.id, gr.Request(username=None)), strict=True))
    assert shown["runs-plot"].axes[0].get_title() == "5 words, 3 rounds", shown["runs-status"]
    generic = actions.metrics_figure(run, None)  # a run whose job type is gone: one panel per metric
    assert [ax.get_title() for ax in generic.axes] == ["words"]


def test_a_broken_example_costs_its_button_not_the_tab(tmp_path) -> None:
    ctx = counter_ctx(tmp_path, lambda: {"wrods": "x"})
    with pytest.raises(ConfigError, match="Unknown job type 'count' \\(plugin counter\\) example option\\(s\\): wrods"):
        actions.example_values(JobManager.for_context(ctx).job_type("count"))
    with gr.Blocks() as demo:
        build_runs_tab(ctx)
    ids = {getattr(b, "elem_id", None): b for b in demo.blocks.values()}
    assert "runs-count-start" in ids and "runs-count-example" not in ids
    assert "did you mean" in ids["runs-count-hint"].value and "words" in ids["runs-count-hint"].value
    assert actions.shipped_files(JobManager.for_context(ctx).job_type("count")) == frozenset()  # and it blocks no start


def test_the_runs_tab_names_no_job_type(tmp_path) -> None:
    """Job types declare their figure and example; the Runs tab knows none of them by name."""
    names = set(JobManager(Settings(home=tmp_path), plugins=PluginHost()).types)
    assert {"recsae", "dpo", "pal"} <= names
    for source in Path(actions.__file__).parent.glob("*.py"):
        text = source.read_text(encoding="utf-8")
        found = [n for n in names if re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", text, re.IGNORECASE)]
        assert not found, f"{source.name} names the job type(s) {found}"
