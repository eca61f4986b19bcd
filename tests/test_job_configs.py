"""Typed job configs: validation, config.yaml round trip, CLI flags and form fields generated
from the dataclasses, duplicate job types, per-stage progress, the Fine-tune tab's owner check."""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import ClassVar

import gradio as gr
import pytest
import typer
from typer.main import get_command

from workbench.errors import ConfigError, PermissionDenied, SecurityError
from workbench.hookspecs import hookimpl
from workbench.jobs import JobContext, JobManager, JobType
from workbench.jobs import manifest as files
from workbench.jobs.commands import progress_line
from workbench.jobs.config import JobConfig, cli_fields, option
from workbench.plugins import PluginHost
from workbench.sae.job_configs import LMSAEJobConfig, RecSAEJobConfig
from workbench.settings import Settings
from workbench.steering.rsf import RSFJobConfig
from workbench.training.configs import DPOJobConfig, DPOLossType, PALJobConfig

REQUIRED = {DPOJobConfig: {"dataset": "d"}, PALJobConfig: {"dataset": "d"}, RSFJobConfig: {"reward_model": "rm", "prompts": ["Hi"]},
            RecSAEJobConfig: {"interactions": "i.csv"}, LMSAEJobConfig: {"model": "m", "dataset": "d"}}


def test_from_dict_names_the_option_and_what_is_wrong():
    with pytest.raises(ConfigError, match="(?s)Unknown DPO option.*did you mean 'learning_rate'"):
        DPOJobConfig.from_dict({"dataset": "d", "learning_rat": 1e-3})
    with pytest.raises(ConfigError, match="DPO option batch_size must be a whole number, got 'two'"):
        DPOJobConfig.from_dict({"dataset": "d", "batch_size": "two"})
    with pytest.raises(ConfigError, match="DPO option held_out_fraction must be below 1.0, got 1.0"):
        DPOJobConfig.from_dict({"dataset": "d", "held_out_fraction": 1.0})
    with pytest.raises(ConfigError, match="DPO option method must be one of lora, full; got 'qlora'"):
        DPOJobConfig.from_dict({"dataset": "d", "method": "qlora"})
    with pytest.raises(ConfigError, match="DPO option min_strength must be one of 1, 2; got 3"):
        DPOJobConfig.from_dict({"session": "s", "min_strength": 3})
    with pytest.raises(ConfigError, match="DPO option precompute_ref_log_probs must be true or false, got 1"):
        DPOJobConfig.from_dict({"dataset": "d", "precompute_ref_log_probs": 1})
    with pytest.raises(ConfigError, match=r"PAL option shots\[1\] must be a whole number, got 'x'"):
        PALJobConfig.from_dict({"dataset": "d", "shots": [1, "x"]})
    with pytest.raises(ConfigError, match="No dataset given"):
        DPOJobConfig.from_dict({})
    cfg = DPOJobConfig.from_dict({"dataset": "d", "batch_size": 4.0, "max_steps": None})  # Gradio numbers are floats
    assert cfg.batch_size == 4 and type(cfg.batch_size) is int and cfg.max_steps == 100


def test_a_literal_typo_is_refused_at_submit_with_the_allowed_values(tmp_path):
    from workbench.training.dpo import DPO_JOB

    manager = JobManager(Settings(home=tmp_path / "home"), job_types={"dpo": DPO_JOB})
    with pytest.raises(ConfigError, match="(?s)DPO option loss_type must be one of sigmoid, hinge, ipo, .*; got 'sigmod'.*"
                                          "Did you mean 'sigmoid'"):
        manager.submit("dpo", {"dataset": "d", "loss_type": "sigmod"})
    with pytest.raises(ConfigError, match="DPO option device must be one of auto, cpu, cuda; got 'gpu'"):
        manager.submit("dpo", {"dataset": "d", "device": "gpu"})
    assert not list(manager.runs_dir.iterdir())  # no run folder: the typo never reached a worker
    assert DPOJobConfig.from_dict({"session": "s", "min_strength": 2.0}).min_strength == 2  # a form's number is a choice too


def test_cli_flags_offer_a_literals_choices():
    from typer.testing import CliRunner

    from plugins.finetune.cli import train_app

    params = {p.name: p for p in get_command(train_app).commands["dpo"].params}
    assert params["loss_type"].type_descriptor.annotation == DPOLossType
    assert typing.get_args(params["device"].type_descriptor.annotation) == ("auto", "cpu", "cuda")
    out = CliRunner().invoke(train_app, ["dpo", "--dataset", "d", "--loss-type", "sigmod"])
    text = " ".join(out.output.replace("│", " ").split())  # the error box wraps lines
    assert out.exit_code == 2 and "'sigmod' is not one of 'sigmoid', 'hinge'" in text, text


@pytest.mark.parametrize("cls", list(REQUIRED), ids=lambda c: c.__name__)
def test_config_yaml_round_trips_through_the_dataclass(cls, tmp_path):
    cfg = cls.from_dict(REQUIRED[cls])
    files.write_config(tmp_path, cfg.to_dict())
    assert cls.from_dict(files.read_config(tmp_path)) == cfg
    assert all(f.metadata.get("help") for f in dataclasses.fields(cls)), "every option has help text"


def test_recsae_job_offers_the_interaction_log_options():
    assert {"sep", "user_column", "item_column", "time_column", "attribute_column"} <= {f.name for f in cli_fields(RecSAEJobConfig)}


def _flags(typer_app, name: str) -> set[str]:
    command = get_command(typer_app).commands[name]
    return {opt for p in command.params for opt in p.opts}


def test_cli_flags_are_the_configs_fields():
    from plugins.finetune.cli import train_app
    from plugins.recsae.cli import sae_app

    for app, name, cls in ((train_app, "dpo", DPOJobConfig), (train_app, "pal", PALJobConfig),
                           (sae_app, "recsae", RecSAEJobConfig), (sae_app, "lm", LMSAEJobConfig)):
        flags = _flags(app, name)
        wanted = {"--" + f.name.replace("_", "-") for f in cli_fields(cls)}
        assert wanted <= flags, (name, wanted - flags)
        assert {"--config", "--set", "--wait", "--home"} <= flags
    assert {"--sep", "--user-column", "--item-column", "--time-column", "--attribute-column", "--k", "--samples"} <= _flags(sae_app, "recsae")
    assert {"--sae-lr", "--sae-batch-size", "--sae-seed", "--architecture", "--expansion"} <= _flags(sae_app, "lm")  # from SAESpec's fields


def _parsed_flags(cls: type, args: list[str]) -> dict:
    """The options a generated command hands its body for ``args`` (flags merged as job_options merges them)."""
    from typer.testing import CliRunner

    from workbench.jobs.commands import job_options
    from workbench.jobs.config import command_from_config

    got: dict = {}

    def body(explicit: dict, nested_values: dict) -> None:
        got.update(job_options(None, None, explicit, nested_values))

    app = typer.Typer()
    app.command("x")(command_from_config(cls, body))
    app.command("y")(lambda: None)
    out = CliRunner().invoke(app, ["x", *args])
    assert out.exit_code == 0, out.output
    return got


def test_nested_lora_flags_keep_their_names_and_parse_into_the_group():
    got = _parsed_flags(DPOJobConfig, ["--dataset", "d", "--lora-r", "4", "--lora-dropout", "0.1", "--target-modules", "q_proj"])
    assert got == {"dataset": "d", "lora": {"r": 4, "dropout": 0.1, "target_modules": "q_proj"}}
    cfg = DPOJobConfig.from_dict(got)
    assert (cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout, cfg.lora.target_modules) == (4, 16, 0.1, "q_proj")
    assert DPOJobConfig.from_dict({"dataset": "d"}).lora.target_modules == "all-linear"  # DPO's own default for the group
    with pytest.raises(ConfigError, match="DPO option lora option r must be at least 1, got 0"):
        DPOJobConfig.from_dict({"dataset": "d", "lora": {"r": 0}})


def test_an_old_flat_config_yaml_still_loads_into_the_groups(tmp_path):
    """A run folder written before LoRA and sampling options were groups (lora_r: 8 at the top) resumes and lists."""
    (tmp_path / files.CONFIG).write_text("dataset: d\nlora_r: 4\nlora_alpha: 32\ntarget_modules: q_proj\nbeta: 0.2\n")
    cfg = DPOJobConfig.from_dict(files.read_config(tmp_path))
    assert (cfg.lora.r, cfg.lora.alpha, cfg.lora.target_modules, cfg.beta) == (4, 32, "q_proj", 0.2)
    assert "lora_r" not in cfg.to_dict() and cfg.to_dict()["lora"]["r"] == 4  # written back in the new form
    rsf = RSFJobConfig.from_dict({"reward_model": "rm", "prompts": ["Hi"], "max_new_tokens": 6, "temperature": 1.5, "lora_r": 2})
    assert (rsf.sampling.max_new_tokens, rsf.sampling.temperature, rsf.sampling.top_p, rsf.lora.r) == (6, 1.5, 0.95, 2)
    with pytest.raises(ConfigError, match="lora_r \\(4\\) and lora.r \\(8\\) disagree"):
        DPOJobConfig.from_dict({"dataset": "d", "lora_r": 4, "lora": {"r": 8}})
    with pytest.raises(ConfigError, match="did you mean 'lora_r'"):  # a typo of the former name still points at a name that works
        DPOJobConfig.from_dict({"dataset": "d", "lora_rank": 4})


def test_nested_group_flags_parse_into_the_group():
    got = _parsed_flags(LMSAEJobConfig, ["--model", "m", "--samples", "4000", "--sae-batch-size", "32", "--architecture", "batchtopk"])
    assert got == {"model": "m", "sae": {"training_samples": 4000, "batch_size": 32, "architecture": "batchtopk"}}
    cfg = LMSAEJobConfig.from_dict({**got, "dataset": "d"})
    assert (cfg.sae.training_samples, cfg.sae.batch_size, cfg.sae.architecture, cfg.sae.k) == (4000, 32, "batchtopk", 8)


def test_cli_flags_reach_the_config(tmp_path):
    """A flag's value lands in the submitted config (the run fails validation on the missing file, before any run)."""
    from typer.testing import CliRunner

    from plugins.recsae.cli import sae_app

    out = CliRunner().invoke(sae_app, ["recsae", "--interactions", str(tmp_path / "x.tsv"), "--sep", "\t", "--user-column", "uid",
                                       "--home", str(tmp_path / "home")])
    assert "x.tsv" in str(out.exception)
    assert not (tmp_path / "home" / "runs").exists() or not list((tmp_path / "home" / "runs").iterdir())


def _plugin_offering(job_type: JobType) -> types.SimpleNamespace:
    @hookimpl
    def job_types() -> dict:
        return {job_type.name: job_type}

    return types.SimpleNamespace(job_types=job_types)


def _noop(job):  # pragma: no cover - never run
    return None


def test_duplicate_job_type_names_both_plugins(tmp_path):
    host = PluginHost(load=False)
    for plugin_name in ("alpha", "beta"):
        host.register(_plugin_offering(JobType("dpo", _noop)), plugin_name)
    with pytest.raises(ConfigError, match="Two plugins offer the job type 'dpo': alpha and beta"):
        JobManager(Settings(home=tmp_path), plugins=host)
    manager = JobManager(Settings(home=tmp_path), job_types={"dpo": JobType("dpo", _noop)})
    with pytest.raises(ConfigError, match="Two plugins offer the job type 'dpo'"):
        manager.register("dpo", _noop)


def test_eta_comes_from_the_current_stage_only(tmp_path):
    now = [0.0]
    job = JobContext(tmp_path, {}, Settings(home=tmp_path / "home"), resume=False, run_id="r", clock=lambda: now[0])
    job.progress(0, 2, stage="sasrec")
    now[0] = 100.0  # stage "sasrec": 1 step in 100 s
    job.progress(1, 2, stage="sasrec")
    assert files.read_progress(tmp_path)["eta_s"] == pytest.approx(100.0)
    job.progress(0, 100, stage="sae")
    now[0] = 101.0  # stage "sae": 10 steps in 1 s
    job.progress(10, 100, stage="sae")
    p = files.read_progress(tmp_path)
    assert p["stage"] == "sae" and p["eta_s"] == pytest.approx(9.0)  # 90 steps at 10/s, not at the first stage's rate


def test_progress_line_never_says_step_zero_of_unknown(tmp_path):
    class FakeRun:  # the two attributes progress_line reads
        status = "running"

        def __init__(self, p):
            self._p = p

        def progress(self):
            return self._p

    assert progress_line(FakeRun({})) == "running: starting"
    assert progress_line(FakeRun({"stage": "sae", "step": 3, "total": 12, "fraction": 0.25, "eta_s": 9.0, "message": "sae"})) == \
        "running: sae 3/12 (25%), ETA 9 s"


# -- the Fine-tune tab --------------------------------------------------------------------------
@pytest.fixture
def tab(tmp_path):
    from plugins.finetune.tab import build_finetune_tab
    from workbench.context import AppContext

    settings = Settings(home=tmp_path / "home", auth=("owner", "pw"), users={"ann": "pw2"})
    ctx = AppContext(settings)
    with gr.Blocks() as demo:
        build_finetune_tab(ctx)
    fns = {f.fn.__name__: f for f in demo.fns.values() if getattr(f.fn, "__name__", None)}
    return ctx, demo, fns


def test_form_fields_are_generated_from_the_config(tab):
    from plugins.finetune.tab import DPO_FORM

    _, demo, _ = tab
    by_id = {getattr(b, "elem_id", None): b for b in demo.blocks.values()}
    for name in DPO_FORM:
        field = {f.name: f for f in dataclasses.fields(DPOJobConfig)}[name]
        component = by_id[f"ft-dpo-{name.replace('_', '-')}"]
        if name not in ("model", "dataset"):
            assert component.value == field.default, name
        assert component.info == field.metadata["help"]


def _start_inputs(fn_entry, demo, values: dict) -> dict:
    by_id = {getattr(b, "elem_id", None): b for b in demo.blocks.values()}
    return {by_id[f"ft-dpo-{k.replace('_', '-')}"]: v for k, v in values.items()} | \
        {c: c.value for c in fn_entry.inputs if c not in {by_id[f"ft-dpo-{k.replace('_', '-')}"] for k in values}}


def test_annotator_cannot_start_cancel_or_resume(tab, tmp_path):
    ctx, demo, fns = tab
    data = _start_inputs(fns["on_start_dpo"], demo, {"dataset": "demo", "model": "SmolLM2-135M-Instruct"})
    msg, _, _ = fns["on_start_dpo"].fn(data, gr.Request(username="ann"))
    assert "only the workbench owner can start a fine-tune" in msg
    msg, _, _ = fns["on_start_pal"].fn({c: c.value for c in fns["on_start_pal"].inputs}, gr.Request(username="ann"))
    assert "only the workbench owner can start a fine-tune" in msg
    for handler in ("on_cancel", "on_resume"):
        msg, _, _ = fns[handler].fn("some-run", gr.Request(username="ann"))
        assert "only the workbench owner can" in msg
    assert not list(ctx.settings.runs_dir.iterdir())


def test_owner_dataset_must_be_stored_or_inside_the_data_roots(tab, tmp_path):
    from plugins.finetune import actions
    from workbench.app import job_ui

    ctx, demo, fns = tab
    outside = tmp_path / "secret.jsonl"
    outside.write_text(json.dumps({"prompt": "p", "chosen": "a", "rejected": "b", "aws_secret_access_key": "x"}) + "\n")
    data = _start_inputs(fns["on_start_dpo"], demo, {"dataset": str(outside)})
    msg, _, _ = fns["on_start_dpo"].fn(data, gr.Request(username="owner"))
    assert "outside the configured data folders" in msg and "aws_secret" not in msg
    with pytest.raises(SecurityError):
        actions.start(ctx, JobManager.for_context(ctx), "owner", "dpo", {"dataset": str(outside)})
    with pytest.raises(PermissionDenied):
        job_ui.control(ctx, JobManager.for_context(ctx), "ann", "cancel", "x")
    assert not list(ctx.settings.runs_dir.iterdir())


@dataclasses.dataclass
class CountConfig(JobConfig):
    what: ClassVar[str] = "count"
    steps: int = option(1, "Steps to count.", min=1)


def count_job(job: JobContext) -> None:
    """Reads its typed options (parsed once by the worker) and records what it was given."""
    job.progress(job.options.steps, job.options.steps, stage="count")
    job.set_summary(options_class=type(job.options).__name__)


def test_cli_uses_the_plugin_host_that_main_built(tmp_path):
    """The job type exists only in the host handed down as the click context's obj (as main() does):
    a command that loaded the entry points again would not know it."""
    from typer.testing import CliRunner

    from workbench.jobs.commands import job_command

    host = PluginHost(load=False)
    host.register(_plugin_offering(JobType("count", count_job, config_cls=CountConfig)), "counter")
    app = typer.Typer()
    app.command("count")(job_command("count", CountConfig, "Count."))
    app.command("noop")(lambda: None)  # two commands, so typer keeps "count" as a subcommand
    out = CliRunner().invoke(app, ["count", "--steps", "2", "--wait", "--home", str(tmp_path / "home")], obj=host)
    assert out.exit_code == 0, out.output
    run = JobManager(Settings(home=tmp_path / "home")).runs()[0]
    assert run.config == {"steps": 2} and run.manifest.status == "finished"
    assert run.manifest.summary["options_class"] == "CountConfig" and run.progress()["step"] == 2  # job.options, typed
    with pytest.raises(ConfigError, match="steps must be at least 1"):
        CountConfig.from_dict({"steps": 0})


def test_a_config_object_is_submitted_and_an_old_run_resumes_with_typed_options(tmp_path):
    manager = JobManager(Settings(home=tmp_path / "home"), job_types={"count": JobType("count", count_job, config_cls=CountConfig)})
    run = manager.submit("count", CountConfig(steps=3))
    assert run.wait(timeout=60).status == "finished", run.log_tail()
    assert run.config == {"steps": 3} and run.manifest.summary["options_class"] == "CountConfig"
    with pytest.raises(ConfigError, match="Job type 'count' takes CountConfig, got a RSFJobConfig"):
        manager.submit("count", RSFJobConfig(reward_model="rm", prompts=["Hi"]))
    # A run folder written before manifests named the options class: resuming it names the class again.
    m = files.read_manifest(run.dir)
    m.status, m.options_cls, m.summary = "failed", None, {}
    files.write_manifest(run.dir, m)
    manager.resume(run.id)
    assert run.wait(timeout=60).status == "finished", run.log_tail()
    assert run.manifest.summary["options_class"] == "CountConfig"


def test_the_cli_resumes_an_old_run_with_typed_options(tmp_path):
    """`workbench runs resume` uses a manager that knows no job types: the worker names the options
    class from the plugins it loads, so an older run's job gets typed options, not a mapping."""
    from workbench.labeling.generate import GENERATE_PAIRS

    home = tmp_path / "home"
    plugin_manager = JobManager(Settings(home=home), job_types={GENERATE_PAIRS.name: GENERATE_PAIRS})
    run = plugin_manager.submit("labeling.generate-pairs", {  # the former name still submits, under the new one
        "dataset": "old", "prompts": ["Hi"], "sources": [{"name": "a", "model": "no-such-model"}, {"name": "b", "model": "no-such-model"}]})
    run.wait(timeout=120)
    assert run.manifest.type == "generate-pairs" and run.id.startswith("generate-pairs-")
    m = files.read_manifest(run.dir)
    m.type, m.status, m.options_cls = "labeling.generate-pairs", "failed", None  # as a run folder from before this change
    files.write_manifest(run.dir, m)
    JobManager(Settings(home=home)).resume(run.id)  # what `workbench runs resume` builds
    run.wait(timeout=120)
    m = files.read_manifest(run.dir)
    assert m.options_cls == GENERATE_PAIRS.options_entry
    assert m.status == "failed" and "no-such-model" in (m.error or "") and "AttributeError" not in (m.error_traceback or ""), m.error


def test_a_flag_wins_over_an_older_files_flat_name(tmp_path):
    from workbench.jobs.commands import job_options

    old = tmp_path / "old.yaml"
    old.write_text("model: m\ndataset: d\nlora_r: 4\n")
    opts = job_options(old, None, {}, {"lora": {"r": 16}}, DPOJobConfig.moved)
    assert opts["lora"]["r"] == 16 and "lora_r" not in opts
    assert DPOJobConfig.from_dict(opts).lora.r == 16


def test_a_groups_own_check_says_where_the_group_sits():
    with pytest.raises(ConfigError, match=r"RSF option sampling: temperature must be > 0 when sampling"):
        RSFJobConfig.from_dict({"reward_model": "rm", "prompts": ["Hi"], "sampling": {"temperature": 0.0}})
