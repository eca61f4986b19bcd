"""Model loading, architecture adapters, safety switches, catalog and generation."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from conftest import ALL_FAMILIES

from workbench.errors import ModelError, SecurityError
from workbench.jobs.options import SamplingOptions
from workbench.models import resolve
from workbench.models.adapters import adapter_for, residual_stream, supported_model_types
from workbench.models.catalog import safetensors_params, scan_catalog, scan_roots
from workbench.models.generation import generate, stream
from workbench.models.loading import detect_format, load_model, resolve_dtype
from workbench.settings import Settings

EXPECTED_FAMILY = {"mistral": "llama", "gemma2": "gemma"}


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_every_family_loads_and_lens_matches_logits(tiny_checkpoint, family):
    lm = load_model(tiny_checkpoint(family))
    assert lm.adapter.family == EXPECTED_FAMILY.get(family, family)
    assert lm.n_layers == 2 and lm.adapter.d_model(lm.model) == 32
    assert lm.dtype == torch.float32 and lm.device.type == "cpu"
    enc = lm.tokenizer(["hello world, preferences", "a b"], return_tensors="pt", padding=True)
    with torch.inference_mode():
        states = residual_stream(lm.adapter, lm.model, **enc)
        logits = lm.model(**enc).logits
        lens = lm.adapter.logits(lm.model, states[-1])
    assert len(states) == lm.n_layers + 1
    assert (lens - logits).abs().max().item() <= 1e-4


@pytest.mark.parametrize("family", ["llama", "gpt2", "phi"])
def test_generation_is_seeded_and_streams(tiny_checkpoint, family):
    lm = load_model(tiny_checkpoint(family))
    settings = SamplingOptions(max_new_tokens=8, temperature=1.0, seed=123)
    first = generate(lm, ["hello", "what is a preference?"], settings)
    again = generate(lm, ["hello", "what is a preference?"], settings)
    assert first == again and len(first) == 2
    parts = list(stream(lm, "hello", SamplingOptions(max_new_tokens=8, do_sample=False)))
    pieces = [p.text for p in parts]
    assert [p.tokens for p in parts] == sorted(p.tokens for p in parts) and 0 < parts[-1].tokens <= 8 == parts[-1].max_new_tokens
    assert pieces and all(b.startswith(a) for a, b in zip(pieces, pieces[1:], strict=False))
    greedy = generate(lm, ["hello"], SamplingOptions(max_new_tokens=8, do_sample=False))[0]
    assert pieces[-1].strip() == greedy


def test_unsupported_architecture_lists_supported(tiny_checkpoint):
    opt = tiny_checkpoint("opt")
    with pytest.raises(ModelError) as err:
        load_model(opt)
    assert str(err.value).startswith(f"{opt / 'config.json'}, field 'model_type': unsupported architecture 'opt'.")
    assert all(t in str(err.value) for t in ("llama", "gpt2", "gpt_neox", "phi", "qwen2", "gemma"))
    assert set(supported_model_types()) >= {"llama", "mistral", "qwen2", "gemma", "gpt2", "gpt_neox", "phi"}


def test_pickle_weights_refused_unless_opted_in(tiny_checkpoint, tmp_path):
    from transformers import AutoModelForCausalLM

    src = tiny_checkpoint("gpt2")
    dst = tmp_path / "pickled"
    dst.mkdir()
    # The classic pickle layout (transformers 5 only writes safetensors itself).
    torch.save(AutoModelForCausalLM.from_pretrained(src).state_dict(), dst / "pytorch_model.bin")
    for f in src.glob("*.json"):
        shutil.copy(f, dst / f.name)
    with pytest.raises(SecurityError, match="allow-pickle"):
        load_model(dst)
    lm = load_model(dst, allow_pickle=True)
    assert lm.adapter.family == "gpt2"


def test_remote_code_refused_unless_opted_in(tiny_checkpoint, tmp_path):
    dst = shutil.copytree(tiny_checkpoint("llama"), tmp_path / "remote")
    cfg = json.loads((dst / "config.json").read_text())
    cfg.update(model_type="my_custom_arch", auto_map={"AutoModelForCausalLM": "modeling_custom.CustomModel"})
    (dst / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(SecurityError, match="trust-remote-code"):
        load_model(dst)


def test_peft_adapter_changes_outputs_and_finds_base_by_name(tiny_checkpoint, tiny_lora, tmp_path):
    base = load_model(tiny_checkpoint("llama"))
    tuned = load_model(tiny_lora)
    assert tuned.format == "peft" and tuned.adapter.family == "llama"
    ids = base.tokenizer(["hello world"], return_tensors="pt")
    with torch.inference_mode():
        diff = (base.model(**ids).logits - tuned.model(**ids).logits).abs().max().item()
    assert diff > 1e-3
    # The recorded base path is gone; the base is found by name under a model root.
    moved = shutil.copytree(tiny_lora, tmp_path / "adapter")
    cfg = json.loads((moved / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = "someorg/tiny-llama"
    (moved / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="not available locally"):
        load_model(moved)
    with pytest.raises(ModelError, match="not available locally"):
        resolve.load(Settings(home=tmp_path / "home", model_roots=[tmp_path / "nowhere"]), moved)
    shutil.copytree(tiny_checkpoint("llama"), tmp_path / "root" / "tiny-llama")
    again = resolve.load(Settings(home=tmp_path / "home", model_roots=[tmp_path / "root"]), moved)
    with torch.inference_mode():
        assert torch.allclose(again.model(**ids).logits, tuned.model(**ids).logits, atol=1e-5)


def test_detect_format_errors(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    (tmp_path / "empty").mkdir()
    for name, message in (("missing", "does not exist"), ("notes.txt", "not a .gguf"), ("empty", "config.json")):
        with pytest.raises(ModelError, match=message):
            detect_format(tmp_path / name)
    with pytest.raises(ModelError, match="Unknown dtype"):
        resolve_dtype("float8", torch.device("cpu"))


def test_catalog_finds_every_kind_of_checkpoint(tiny_checkpoint, tiny_lora, tmp_path):
    home = tmp_path / "home"
    user_root = tmp_path / "mine"
    hf_cache = tmp_path / "hub"
    shutil.copytree(tiny_checkpoint("qwen2"), user_root / "project" / "qwen-tiny")
    shutil.copytree(tiny_lora, user_root / "adapters" / "lora1")
    shutil.copytree(tiny_checkpoint("gpt_neox"), hf_cache / "models--org--neox-tiny" / "snapshots" / "abc123")
    run = home / "runs" / "run-1"
    shutil.copytree(tiny_checkpoint("phi"), run / "final")
    (run / "manifest.json").write_text(json.dumps({"status": "finished", "output": "final"}))
    unfinished = home / "runs" / "run-2"
    shutil.copytree(tiny_checkpoint("phi"), unfinished / "final")
    (unfinished / "manifest.json").write_text(json.dumps({"status": "running", "output": "final"}))

    import os

    os.environ["HF_HUB_CACHE"] = str(hf_cache)
    try:
        entries = {e.name: e for e in scan_catalog(Settings(home=home, model_roots=[user_root]))}
    finally:
        del os.environ["HF_HUB_CACHE"]
    assert entries["qwen-tiny"].family == "qwen2" and entries["qwen-tiny"].format == "hf"
    assert entries["lora1"].format == "peft" and entries["lora1"].base
    assert entries["org/neox-tiny"].source == "hf-cache" and entries["org/neox-tiny"].family == "gpt_neox"
    assert entries["run:run-1"].source == "run" and "run:run-2" not in entries
    assert entries["SmolLM2-135M-Instruct"].source == "embedded"
    assert entries["all-MiniLM-L6-v2"].family == "bert"
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint("qwen2"))
    assert entries["qwen-tiny"].n_params == safetensors_params(tiny_checkpoint("qwen2")) == sum(p.numel() for p in model.parameters())
    assert scan_roots([tmp_path / "does-not-exist"]) == []


def test_sentence_embedder_loads_as_encoder():
    from workbench.models.embedded import embedder_path

    lm = load_model(embedder_path())
    assert lm.is_encoder and lm.adapter.family == "bert" and lm.n_layers == 6
    enc = lm.tokenizer(["a sentence"], return_tensors="pt")
    with torch.inference_mode():
        states = residual_stream(lm.adapter, lm.model, **enc)
    assert len(states) == 7 and states[-1].shape[-1] == 384


@pytest.mark.demo_model
def test_demo_model_converts_once_and_answers(demo_model_dir, demo_lm):
    from workbench.models.embedded import ensure_demo_model

    manifest = demo_model_dir / "workbench-conversion.json"
    assert manifest.exists() and any(demo_model_dir.glob("*.safetensors"))
    stamp = manifest.stat().st_mtime
    assert ensure_demo_model(Settings(home=demo_model_dir.parent.parent)) == demo_model_dir
    assert manifest.stat().st_mtime == stamp  # second call reuses the conversion
    assert adapter_for(demo_lm.model).family == "llama" and demo_lm.n_layers == 30
    reply = generate(demo_lm, ["What is the capital of France? Answer in one word."], SamplingOptions(max_new_tokens=12, do_sample=False))[0]
    assert "Paris" in reply


@pytest.mark.demo_model
def test_demo_lens_parity(demo_lm):
    enc = demo_lm.tokenizer(["The capital of France is"], return_tensors="pt")
    with torch.inference_mode():
        states = residual_stream(demo_lm.adapter, demo_lm.model, **enc)
        diff = (demo_lm.adapter.logits(demo_lm.model, states[-1]) - demo_lm.model(**enc).logits).abs().max().item()
    assert diff <= 1e-4
