"""Placement: memory estimate from safetensors headers, refusal with numbers, block-wise split over GPUs.

How the GPU tests run: on a machine without CUDA both are skipped (the reason says so). With one
visible GPU, ``test_a_model_that_fits_goes_to_the_gpu`` loads the tiny model onto ``cuda:0``
and runs a forward there; with two or more, ``test_too_big_for_one_gpu_is_split_by_blocks_over_two``
gives each GPU a budget of 70 % of the model's need, so it must be split, and runs a forward
across both. Run them alone with ``.venv/bin/python -m pytest tests/test_placement.py -q``.
"""
from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from workbench.errors import ModelError
from workbench.models.placement import OVERHEAD_FRACTION, estimate_memory, format_bytes, plan_placement


@pytest.fixture(scope="module")
def llama(tiny_checkpoint):
    return tiny_checkpoint("llama")


def test_estimate_matches_the_loaded_weights_and_halves_in_bf16(llama):
    model = AutoModelForCausalLM.from_pretrained(llama, dtype=torch.float32)
    loaded = {t.data_ptr(): t.numel() * t.element_size() for t in model.state_dict().values()}  # tied tensors once
    est = estimate_memory(llama, torch.float32)
    assert est.weight_bytes == sum(loaded.values())
    assert est.n_params == sum(t.numel() for t in {t.data_ptr(): t for t in model.state_dict().values()}.values())
    assert estimate_memory(llama, torch.bfloat16).weight_bytes * 2 == est.weight_bytes
    assert est.total_bytes == int(est.weight_bytes * (1 + OVERHEAD_FRACTION))


def test_a_model_that_fits_goes_to_the_one_device(llama):
    plan = plan_placement(llama, AutoConfig.from_pretrained(llama), torch.device("cpu"), torch.float32)
    assert plan.device == torch.device("cpu") and plan.from_pretrained_kwargs() == {}
    assert "all on cpu" in plan.describe() and format_bytes(plan.estimate.weight_bytes) in plan.describe()


@pytest.mark.parametrize("device, budget", [("cpu", {"cpu": 1000}), ("cuda", {0: 60_000, 1: 60_000})])
def test_refuses_with_the_numbers_when_it_cannot_fit(llama, device, budget):
    est = estimate_memory(llama, torch.float32)
    with pytest.raises(ModelError) as err:
        plan_placement(llama, AutoConfig.from_pretrained(llama), torch.device(device), torch.float32, budget=budget)
    msg = str(err.value)
    assert format_bytes(est.total_bytes) in msg and format_bytes(sum(budget.values())) in msg
    assert "smaller dtype" in err.value.hint


def test_a_damaged_weight_file_is_a_clear_error(tmp_path):
    (tmp_path / "model.safetensors").write_bytes((10**12).to_bytes(8, "little") + b"{}")
    with pytest.raises(ModelError, match="not a valid safetensors file"):
        estimate_memory(tmp_path, torch.float32)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (skipped on CPU-only machines)")
def test_a_model_that_fits_goes_to_the_gpu(llama):
    plan = plan_placement(llama, AutoConfig.from_pretrained(llama), torch.device("cuda", 0), torch.float32)
    assert plan.device == torch.device("cuda", 0) and plan.from_pretrained_kwargs() == {}
    model = AutoModelForCausalLM.from_pretrained(llama, dtype=torch.float32).to(plan.device)
    logits = model(input_ids=torch.tensor([[1, 2, 3]], device=plan.device)).logits
    assert logits.device.type == "cuda" and torch.isfinite(logits).all()


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="splitting across GPUs needs two visible GPUs")
def test_too_big_for_one_gpu_is_split_by_blocks_over_two(llama):
    need = estimate_memory(llama, torch.float32).total_bytes
    budget = {0: int(need * 0.7), 1: int(need * 0.7)}
    plan = plan_placement(llama, AutoConfig.from_pretrained(llama), torch.device("cuda", 0), torch.float32, budget=budget)
    assert set(plan.device_map.values()) == {0, 1} and sum(plan.blocks_per_device.values()) == 2
    model = AutoModelForCausalLM.from_pretrained(llama, dtype=torch.float32, **plan.from_pretrained_kwargs())
    ids = torch.tensor([[1, 2, 3]], device=plan.device)
    assert torch.isfinite(model(input_ids=ids).logits).all()
