"""Logit lens core: parity with the model's own logits on every family, metrics, token sets."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import ALL_FAMILIES

from workbench.errors import ConfigError, ModelError
from workbench.lenses import concept_token_set, lens_grid, lens_metrics, mean_ci, parity_gap, word_token_set
from workbench.lenses.token_sets import display_token, token_bytes
from workbench.models.loading import load_model

TEXT = "Bonjour le monde. The quick brown fox"


@pytest.fixture(scope="module")
def tiny_llama(tiny_checkpoint):
    return load_model(tiny_checkpoint("llama"))


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_last_layer_lens_equals_model_logits(tiny_checkpoint, family):
    lm = load_model(tiny_checkpoint(family))
    assert lm.dtype == torch.float32
    assert parity_gap(lm, TEXT) <= 1e-4
    # and through the batched metrics path: the last lens point is the model's own prediction
    ids = lm.tokenizer(TEXT)["input_ids"]
    with torch.inference_mode():
        own = torch.log_softmax(lm.model(torch.tensor([ids])).logits[0, -1].float(), -1)
    m = lens_metrics(lm, [TEXT], targets={"top": [int(own.argmax())]})
    assert m.entropy.shape == (1, lm.n_layers + 1, 1)
    assert m.top1[0, -1, 0] == int(own.argmax())
    assert m.rank["top"][0, -1, 0] == 0
    assert m.kl_to_final[0, -1, 0] == pytest.approx(0, abs=1e-5)
    assert m.logprob["top"][0, -1, 0] == pytest.approx(float(own.max()), abs=1e-4)
    expected_entropy = float(-(own.exp() * own).sum() / math.log(2))
    assert m.entropy[0, -1, 0] == pytest.approx(expected_entropy, abs=1e-4)


@pytest.mark.demo_model
def test_demo_model_parity_and_grid(demo_lm):
    assert parity_gap(demo_lm, 'Français: "nuage" - 中文: "') <= 1e-4
    grid = lens_grid(demo_lm, "The capital of France is", top_k=3)
    n_points, n_pos, k = grid.top_probs.shape
    assert (n_points, k) == (demo_lm.n_layers + 1, 3)
    assert n_pos == len(grid.input_tokens)
    assert grid.top_tokens[-1][-1][0].strip() == "Paris"
    assert np.all(np.diff(grid.top_probs, axis=-1) <= 0)  # top-k sorted
    frame = grid.to_frame()
    assert len(frame) == n_points * n_pos * k and set(frame.columns) >= {"layer", "position", "token", "prob"}


def test_batching_and_padding_do_not_change_metrics(tiny_llama):
    prompts = ["The quick brown fox jumps", "Hallo", "A concise answer is often better than a verbose one", "def f(x):"]
    full_vocab = [list(range(tiny_llama.model.config.vocab_size))] * len(prompts)
    one = lens_metrics(tiny_llama, prompts, positions=(-1, -2), batch_size=1, token_sets={"all": full_vocab})
    many = lens_metrics(tiny_llama, prompts, positions=(-1, -2), batch_size=3, token_sets={"all": full_vocab})
    np.testing.assert_allclose(one.entropy, many.entropy, atol=1e-4)
    np.testing.assert_allclose(one.kl_to_final, many.kl_to_final, atol=1e-4)
    np.testing.assert_allclose(many.mass["all"], 1.0, atol=1e-4)  # the whole vocabulary holds all the mass
    assert one.entropy.shape == (4, tiny_llama.n_layers + 1, 2)
    assert not np.allclose(one.entropy[:, :, 0], one.entropy[:, :, 1])  # positions are really different


def test_positions_and_inputs_are_checked(tiny_llama):
    with pytest.raises(ConfigError, match="outside a prompt"):
        lens_metrics(tiny_llama, ["Hallo"], positions=(-50,))
    with pytest.raises(ConfigError, match="2 entries for 1 prompts"):
        lens_metrics(tiny_llama, ["Hallo"], token_sets={"x": [[1], [2]]})
    with pytest.raises(ConfigError, match="No prompts"):
        lens_metrics(tiny_llama, [])


def test_encoder_is_refused():
    from workbench.models.embedded import embedder_path

    encoder = load_model(embedder_path())
    with pytest.raises(ModelError, match="encoder"):
        parity_gap(encoder, "hello")


def test_mean_ci_matches_student_t():
    values = np.array([[1.0, 10.0], [2.0, 10.0], [3.0, 10.0], [np.nan, 10.0]])
    mean, lo, hi = mean_ci(values)
    assert mean == pytest.approx([2.0, 10.0])
    half = 4.302652729911275 * 1.0 / math.sqrt(3)  # t(0.975, df=2) * sd / sqrt(n)
    assert hi[0] - mean[0] == pytest.approx(half)
    assert lo[1] == hi[1] == 10.0


def test_byte_level_token_sets(tiny_llama):
    tok = tiny_llama.tokenizer
    ids = word_token_set(tok, "quick")
    shown = {display_token(tok, i) for i in ids}
    assert {"q", " qu"} <= shown  # with and without the Ġ space marker
    # the same set found independently, through the tokenizer's own decoder
    decoded = {i for i in range(len(tok)) if (s := tok.decode([i])).strip() and ("quick".startswith(s) or " quick".startswith(s))}
    assert set(ids) == decoded
    # a vocabulary without a whole-character token for 云 falls back to its first byte, flagged
    first_byte = {i for i, b in enumerate(token_bytes(tok)) if b == "云".encode()[:1]}
    assert first_byte and first_byte <= set(word_token_set(tok, "云"))
    assert concept_token_set(tok, ["云"]).fragments == ("云",) and not concept_token_set(tok, ["quick"]).fragments
    assert set(word_token_set(tok, "мир")) & {i for i, b in enumerate(token_bytes(tok)) if b == "м".encode()[:1]}


def _sentencepiece_tokenizer():
    """A SentencePiece-style (▁ marker, byte fallback) fast tokenizer, like Llama 2's."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for piece in ["▁", "n", "u", "a", "g", "e", "▁n", "nu", "▁nu", "ag", "▁nuag", "▁nuage"]:
        vocab[piece] = len(vocab)
    merges = [("▁", "n"), ("n", "u"), ("▁n", "u"), ("a", "g"), ("▁nu", "ag"), ("▁nuag", "e")]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, byte_fallback=True, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>")


def test_sentencepiece_byte_fallback_token_sets():
    tok = _sentencepiece_tokenizer()
    assert tok.convert_ids_to_tokens(tok("云")["input_ids"])[-3:] == ["<0xE4>", "<0xBA>", "<0x91>"]
    shown = {display_token(tok, i) for i in word_token_set(tok, "nuage")}
    assert shown == {"n", "nu", " n", " nu", " nuag", " nuage"}
    zh = word_token_set(tok, "云")
    assert [tok.convert_ids_to_tokens(i) for i in zh] == ["<0xE4>"]  # byte fallback only: no whole-character token
    assert display_token(tok, zh[0]) == "\\xe4"
