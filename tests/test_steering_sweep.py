"""Dose-response sweep: degeneration metrics, usable range, KL exactly 0 without steering."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.errors import ConfigError
from workbench.jobs.options import SamplingOptions
from workbench.models.loading import load_model
from workbench.steering.sweep import compression_ratio, dose_response, repetition_rate, suggest_range
from workbench.steering.vectors import SteeringVector


def test_degeneration_metrics():
    assert repetition_rate([1, 2, 3, 4, 5, 6]) == 0.0
    assert repetition_rate([1, 2, 3] * 6) > 0.7
    assert repetition_rate([1, 2]) == 0.0
    varied = "The quick brown fox jumps over the lazy dog while a cat watches."
    assert compression_ratio("ha " * 60) > 3 * compression_ratio(varied)
    assert compression_ratio("") == 0.0


def test_suggest_range_is_the_run_around_zero():
    c = np.array([-4.0, -2.0, 0.0, 2.0, 4.0])
    assert suggest_range(c, np.array([False, True, True, True, False])) == (-2.0, 2.0)
    assert suggest_range(c, np.array([True, False, True, True, True])) == (0.0, 4.0)
    assert suggest_range(c, np.array([True, True, False, True, True])) == (0.0, 0.0)


def test_dose_response_on_a_tiny_model(tiny_checkpoint):
    lm = load_model(tiny_checkpoint("llama"))
    vec = SteeringVector("v", 1, direction=torch.randn(32, generator=torch.Generator().manual_seed(0)), scale=8.0)
    calls = []

    def score(prompts, responses):
        calls.append(len(responses))
        return np.array([len(r) for r in responses], dtype=float)

    result = dose_response(lm, vec, ["Hello", "The fox"], [-2.0, 2.0], score=score,
                           settings=SamplingOptions(max_new_tokens=8, seed=1), max_kl=50.0)
    by_c = {p.coefficient: p for p in result.points}
    assert sorted(by_c) == [-2.0, 0.0, 2.0]  # 0 is always added as the reference
    assert by_c[0.0].kl == 0.0 and by_c[2.0].kl > 0.0 and by_c[-2.0].kl > 0.0
    assert calls == [6] and all(p.reward is not None for p in result.points)
    assert result.usable[0] <= 0.0 <= result.usable[1]
    assert {"coefficient", "kl", "repetition", "compression", "length", "usable"} <= set(result.rows()[0])
    with pytest.raises(ConfigError, match="two different"):
        dose_response(lm, vec, ["Hello"], [1.0, 1.0])
