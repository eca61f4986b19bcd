"""CHES (likelihood-displacement risk) on a tiny random checkpoint, checked against the model's own hidden states."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.activations import chat_texts
from workbench.models.loading import load_model
from workbench.preference.displacement import ches_scores, displacement_risk
from workbench.preference.votes import Vote


@pytest.fixture(scope="module")
def lm(tiny_checkpoint):
    return load_model(tiny_checkpoint("llama"), device="cpu", name="tiny")


def vote(i: int, chosen: str, rejected: str) -> Vote:
    return Vote(f"p{i}", "ann", f"question {i}", chosen, rejected, "A", 2, 1.0)


def test_ches_matches_the_models_last_hidden_states(lm) -> None:
    prompts, chosen, rejected = ["say hi", "count"], ["The quick brown fox.", "1 2 3"], ["Hello world, a longer one.", "4 5"]
    got = ches_scores(lm, prompts, chosen, rejected, batch_size=1)
    h = {}
    for name, responses in (("c", chosen), ("r", rejected)):
        rendered = chat_texts(prompts, responses, lm.tokenizer)
        sums, means = [], []
        for text, start in zip(rendered.texts, rendered.prefix_lengths, strict=True):
            enc = lm.tokenizer(text, add_special_tokens=rendered.add_special_tokens, return_offsets_mapping=True, return_tensors="pt")
            keep = enc["offset_mapping"][0, :, 1] > start
            with torch.no_grad():
                last = lm.model(input_ids=enc["input_ids"], output_hidden_states=True).hidden_states[-1][0]  # after the final norm
            sums.append(last[keep].sum(0).double().numpy())
            means.append(last[keep].mean(0).double().numpy())
        h[name] = (np.stack(sums), np.stack(means))
    (cs, cm), (rs, rm) = h["c"], h["r"]
    assert np.allclose(got["ches"], np.sum(cs * rs, 1) - np.sum(cs * cs, 1), rtol=1e-4, atol=1e-3)
    assert np.allclose(got["ln_ches"], np.sum(cm * rm, 1) - np.sum(cm * cm, 1), rtol=1e-4, atol=1e-5)


def test_identical_responses_score_zero_and_the_top_k_is_sorted(lm) -> None:
    votes = [vote(0, "The quick brown fox jumps.", "The quick brown fox jumps."),
             vote(1, "A concise answer.", "Bonjour le monde. Hallo Welt."),
             vote(2, "def f(x): return x * 2", "numbers 0 1 2 3"),
             vote(3, "Preferences are learned.", "Preferences are learned from pairs.")]
    risk = displacement_risk(lm, votes, top_k=2)
    assert risk["scores"][0] == pytest.approx(0, abs=1e-3 * abs(min(risk["scores"])))
    assert [r["ches"] for r in risk["top"]] == sorted(risk["scores"], reverse=True)[:2]
    assert risk["top"][0]["pair_id"] == f"p{int(np.argmax(risk['scores']))}"
    by_length = displacement_risk(lm, votes, top_k=4, normalized=True)
    assert by_length["ranked_by"] == "ln_ches" and [r["ln_ches"] for r in by_length["top"]] == sorted(by_length["ln_scores"], reverse=True)
    assert displacement_risk(lm, [], top_k=3)["top"] == []
