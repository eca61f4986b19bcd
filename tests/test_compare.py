"""The model diff on tiny random checkpoints: zero against itself, non-zero from a perturbed layer on."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from checkpoints import make_tokenizer

from workbench.activations.extract import forward_states
from workbench.compare.diff import TOKEN_NOISE, _encode, _lens_positions, check_comparable, linear_cka, model_diff
from workbench.compare.pairs import diff_pairs
from workbench.compare.report import run_folder, summary_lines, with_run_split
from workbench.context import AppContext
from workbench.data.types import Pair
from workbench.errors import ConfigError, DataError, ModelError
from workbench.models.loading import load_model
from workbench.settings import Settings

N_LAYERS = 4
PERTURBED = 2  # block index (0-based): lens points 0..2 are unchanged, 3..4 change


def write_llama(out: Path, seed: int = 0, perturb_block: int | None = None) -> Path:
    """A 4-layer tiny llama; with ``perturb_block`` that block's MLP weights get noise."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    tok = make_tokenizer()
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=N_LAYERS, num_attention_heads=4,
                         num_key_value_heads=2, max_position_embeddings=128, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    if perturb_block is not None:
        with torch.no_grad():
            for p in model.model.layers[perturb_block].mlp.parameters():
                p.add_(torch.randn_like(p) * 0.5)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    base = load_model(write_llama(root / "base"), device="cpu", name="base")
    tuned = load_model(write_llama(root / "tuned", perturb_block=PERTURBED), device="cpu", name="tuned")
    return base, tuned


def make_pairs(n: int = 10) -> list[Pair]:
    words = ["the quick brown fox", "a concise answer", "preferences are learned", "numbers 1 2 3", "hello world"]
    return [Pair(f"question {i}: {words[i % 5]}?", f"{words[(i + 1) % 5]} and more {i}", f"{words[(i + 2) % 5]}",
                 id=f"p{i}", preferred="A" if i % 3 else "B") for i in range(n)]


def test_a_model_against_itself_is_zero_everywhere(models) -> None:
    base, _ = models
    diff = model_diff(base, base, make_pairs(), batch_size=3)
    assert diff.kl.shape == (N_LAYERS + 1,) and np.all(diff.kl == 0)
    assert np.allclose(diff.cosine, 1, atol=1e-6) and np.allclose(diff.cka, 1, atol=1e-6)
    assert np.all(diff.token_shift == 0) and np.all(diff.logp_a == diff.logp_b)
    chosen, rejected, margin = diff.reward_shift()
    assert np.all(margin == 0) and np.all(chosen == 0)
    assert np.array_equal(diff.pref_a, diff.pref_b, equal_nan=True) and not np.all(np.isnan(diff.pref_a))
    summary = diff.summary()
    assert summary["first_changed_layer"] is None and summary["implicit_reward"]["mean_margin_shift"] == 0
    json.dumps(summary)  # JSON-ready


def test_a_perturbed_layer_changes_that_layer_and_later_only(models) -> None:
    base, tuned = models
    pairs = make_pairs()
    diff = model_diff(base, tuned, pairs, batch_size=4)
    before, after = slice(0, PERTURBED + 1), slice(PERTURBED + 1, None)
    assert np.all(diff.kl[before] == 0) and np.all(diff.kl[after] > 1e-6)
    assert np.allclose(diff.cosine[before], 1, atol=1e-6) and np.all(diff.cosine[after] < 1 - 1e-5)
    assert np.allclose(diff.cka[before], 1, atol=1e-6) and np.all(diff.cka[after] < 1 - 1e-5)
    shift_pref = np.nan_to_num(diff.pref_b - diff.pref_a)
    assert np.all(shift_pref[:, before] == 0) and np.any(shift_pref[:, after] != 0)
    assert np.any(diff.token_shift != 0) and diff.summary()["first_changed_layer"] == PERTURBED + 1
    # The implicit reward shift is beta times the log-prob shift, the token shifts sum to the response shifts.
    chosen, rejected, margin = diff.reward_shift()
    assert np.allclose(chosen, 0.1 * (diff.logp_b - diff.logp_a)[:len(pairs)])
    per_text = np.bincount(diff.token_text, diff.token_shift, minlength=2 * len(pairs))
    assert np.allclose(per_text, diff.logp_b - diff.logp_a, atol=1e-4)
    # Batching does not change anything: one text per batch gives the same numbers.
    single = model_diff(base, tuned, pairs, batch_size=1)
    assert np.allclose(single.kl, diff.kl, atol=1e-6) and np.allclose(single.logp_b, diff.logp_b, atol=1e-4)
    top = diff.top_pairs(3)
    assert len(top) == 3 and abs(top[0]["margin_shift"]) == pytest.approx(np.abs(margin).max())
    tokens = diff.top_tokens(5)
    assert tokens["up"] and tokens["up"][0]["mean_shift"] >= tokens["down"][0]["mean_shift"]
    frame = diff.per_layer()
    assert list(frame["layer"]) == list(range(N_LAYERS + 1))


def text_by_text(lm_a, lm_b, pairs: list[Pair], k: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-layer KL and both models' preference-lens margins, one text and one lens point at a time:
    the readout as it was before the diff batched it across points and texts."""
    enc = _encode(lm_a, pairs, 512)
    kl, count = np.zeros(N_LAYERS + 1), 0
    margins = np.full((2, len(pairs), N_LAYERS + 1), np.nan)
    with torch.inference_mode():
        for t, (ids, start) in enumerate(zip(enc.ids, enc.starts, strict=True)):
            x = torch.tensor([ids])
            states = [forward_states(lm, input_ids=x) for lm in (lm_a, lm_b)]
            pos = torch.as_tensor(_lens_positions(start, len(ids), k))
            for j in range(N_LAYERS + 1):
                la, lb = (torch.log_softmax(lm.adapter.logits(lm.model, s[j][0]), -1) for lm, s in zip((lm_a, lm_b), states, strict=True))
                kl[j] += float((la[pos].exp() * (la[pos] - lb[pos])).sum(-1).clamp_min(0).sum())
                if t < len(pairs) and enc.pref_pos[t] >= 0:
                    good, bad = enc.pref_tokens[t]
                    for m, lp in enumerate((la, lb)):
                        margins[m, t, j] = float(lp[enc.pref_pos[t], good] - lp[enc.pref_pos[t], bad])
            count += len(pos)
    return kl / count, margins[0], margins[1]


def test_the_batched_readout_gives_the_text_by_text_numbers(models) -> None:
    """All lens points and texts read out together (one matmul per chunk of rows) change no figure:
    KL within 1e-6 nats of one text and one point at a time, margins within float32 noise."""
    base, tuned = models
    pairs = make_pairs(7)
    kl, pref_a, pref_b = text_by_text(base, tuned, pairs)
    for batch_size in (1, 5, 14):
        diff = model_diff(base, tuned, pairs, batch_size=batch_size)
        assert np.max(np.abs(diff.kl - kl)) <= 1e-6 and np.any(kl > 1e-3)
        assert np.array_equal(np.isnan(diff.pref_a), np.isnan(pref_a)) and not np.all(np.isnan(pref_a))
        assert np.nanmax(np.abs(diff.pref_a - pref_a)) <= 1e-5 and np.nanmax(np.abs(diff.pref_b - pref_b)) <= 1e-5


def test_logprobs_match_the_training_code(models) -> None:
    """The diff's summed log-probabilities are the ones DPO's before/after panel computes."""
    from workbench.training.logprobs import sequence_logprobs

    base, tuned = models
    pairs = make_pairs(4)
    diff = model_diff(base, tuned, pairs)
    expected = sequence_logprobs(tuned.model, tuned.tokenizer, [p.prompt for p in pairs] * 2,
                                 [p.chosen for p in pairs] + [p.rejected for p in pairs])
    assert np.allclose(diff.logp_b, expected, atol=1e-3)


def test_different_tokenizers_are_refused_saying_what_still_works(models, tiny_checkpoint) -> None:
    base, _ = models
    other = load_model(tiny_checkpoint("gpt2"), device="cpu", name="gpt2-tiny")
    with pytest.raises(ModelError, match="(?s)families differ.*latent explorer"):
        check_comparable(base, other)
    with pytest.raises(DataError, match="at least 2 pairs"):
        model_diff(base, base, make_pairs(1))


def test_linear_cka_is_invariant_to_rotation_and_scale() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 8))
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    assert linear_cka(x, 3 * x @ q) == pytest.approx(1.0)
    assert linear_cka(x, rng.normal(size=(50, 8))) < 0.5


def wb(*args: str, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workbench.cli", *args, "--home", str(home)],
                          capture_output=True, text=True, timeout=300)


def write_pair_file(path: Path, n: int = 6) -> Path:
    path.write_text("\n".join(json.dumps({"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected}) for p in make_pairs(n)))
    return path


def test_cli_writes_json_csv_png_and_takes_a_peft_adapter_as_model_b(tmp_path, tiny_checkpoint, tiny_lora) -> None:
    out = tmp_path / "diff"
    data = write_pair_file(tmp_path / "pairs.jsonl")
    res = wb("compare", str(tiny_checkpoint("llama")), str(tiny_lora), "--dataset", str(data), "--out", str(out), home=tmp_path / "home")
    assert res.returncode == 0, res.stderr
    assert "over 6 pairs" in res.stdout and "implicit reward shift" in res.stdout
    assert {p.name for p in out.iterdir()} == {"diff.json", "per_layer.csv", "per_pair.csv", "tokens.csv", "per_layer.png", "reward_shift.png"}
    summary = json.loads((out / "diff.json").read_text())
    assert summary["n_pairs"] == 6 and summary["first_changed_layer"] == 1  # the LoRA touches attention from block 0 on
    assert (out / "per_layer.png").read_bytes()[:4] == b"\x89PNG"
    assert len((out / "per_pair.csv").read_text().splitlines()) == 7


def test_cli_refuses_a_run_that_is_still_running_and_a_missing_session(tmp_path, tiny_checkpoint) -> None:
    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps({"id": "r1", "type": "dpo", "entry": "x:y", "status": "running", "output": "adapter"}))
    data = write_pair_file(tmp_path / "pairs.jsonl")
    res = wb("compare", str(tiny_checkpoint("llama")), str(run), "--dataset", str(data), "--out", str(tmp_path / "o"), home=tmp_path / "home")
    assert res.returncode == 2 and "Run r1" in res.stderr and "is running, not finished" in res.stderr
    res = wb("compare", str(tiny_checkpoint("llama")), str(tiny_checkpoint("llama")), "--session", "nope", "--out", str(tmp_path / "o"),
             home=tmp_path / "home")
    assert res.returncode == 2 and "No labeling session named 'nope'" in res.stderr
    assert not (tmp_path / "o").exists()  # nothing half-made


def test_diff_pairs_reads_a_session_oriented_by_its_first_votes_or_a_dataset(tmp_path) -> None:
    ctx = AppContext(Settings(home=tmp_path / "home"))
    ctx.store.import_pairs("ds", make_pairs(6))
    labeling = ctx.labeling
    labeling.create_session("s", "ds")
    labeling.join("s", "alice"), labeling.join("s", "bob")
    labeling.vote("s", "alice", "p0", "A")  # the pair's own label is B (A, A, B for p1..p3)
    labeling.vote("s", "bob", "p0", "B")  # a later vote does not change the orientation
    labeling.vote("s", "alice", "p1", "B")
    pairs = diff_pairs(ctx, None, "s", limit=4)
    assert [p.id for p in pairs] == ["p0", "p1", "p2", "p3"]
    assert [p.preferred for p in pairs] == ["A", "B", "A", "B"]  # p2, p3 unvoted keep their own labels
    assert [p.id for p in diff_pairs(ctx, "ds", None, limit=3)] == ["p0", "p1", "p2"]
    with pytest.raises(ConfigError, match="exactly one of a dataset and a session"):
        diff_pairs(ctx, "ds", "s", limit=4)
    with pytest.raises(ConfigError, match="at least 2"):
        diff_pairs(ctx, "ds", None, limit=1)


def test_a_zero_diff_says_no_difference_instead_of_listing_tokens(models, tiny_checkpoint, tmp_path) -> None:
    base, tuned = models
    zero = model_diff(base, base, make_pairs(6), batch_size=6)
    assert zero.top_tokens() == {"up": [], "down": []}  # not the vocabulary's first tokens at +0.00
    lines = summary_lines(zero)
    assert any(line.startswith("token log-probs: no difference") for line in lines)
    assert not any(line.startswith("tokens up most") for line in lines)
    moved = model_diff(base, tuned, make_pairs(6), batch_size=6).top_tokens(50)
    assert moved["up"] and all(t["mean_shift"] > TOKEN_NOISE for t in moved["up"])
    assert all(t["mean_shift"] < -TOKEN_NOISE for t in moved["down"])
    # A model that is no run: one group, and the note says why.
    settings = Settings(home=tmp_path / "home")
    plain = with_run_split(zero, str(tiny_checkpoint("llama")), settings).summary()["split"]
    assert not plain["known"] and list(plain["groups"]) == ["all"] and plain["groups"]["all"]["n"] == 6
    assert "not a training run" in plain["note"]


def make_run(runs_dir: Path, run_id: str, adapter: Path, split: object | None) -> Path:
    """A finished DPO run folder as the job leaves it: manifest, adapter and (when given) its saved split ids."""
    from workbench.jobs.manifest import Manifest, write_manifest
    from workbench.training.pairs import save_split_ids

    folder = runs_dir / run_id
    folder.mkdir(parents=True)
    shutil.copytree(adapter, folder / "adapter")
    write_manifest(folder, Manifest(id=run_id, type="dpo", entry="workbench.training.dpo:run_dpo", status="finished", output="adapter"))
    if split is not None:
        save_split_ids(folder, split)
    return folder


def test_cli_reports_a_runs_train_held_out_and_never_seen_pairs_apart(models, tmp_path, tiny_checkpoint, tiny_lora) -> None:
    import pandas as pd

    from workbench.training.pairs import load_pairs, split_pairs

    home = tmp_path / "home"
    settings = Settings(home=home)
    data = write_pair_file(tmp_path / "pairs.jsonl", n=10)
    pairs = load_pairs(str(data), settings)
    split = split_pairs(pairs[:7], 0.3, seed=0)  # the run was given 7 pairs; the last 3 it never saw
    run = make_run(settings.runs_dir, "dpo-split", tiny_lora, split)
    out = tmp_path / "diff"
    res = wb("compare", str(tiny_checkpoint("llama")), str(run), "--dataset", str(data), "--out", str(out), home=home)
    assert res.returncode == 0, res.stderr
    summary = json.loads((out / "diff.json").read_text())["split"]
    assert summary["known"] and summary["run"] == "dpo-split"
    groups = summary["groups"]
    assert [groups[g]["n"] for g in ("train", "held_out", "never_seen")] == [len(split.train), len(split.held_out), 3]
    per_pair = pd.read_csv(out / "per_pair.csv")
    assert set(per_pair.loc[per_pair["split"] == "held_out", "pair_id"]) == {p.id for p in split.held_out}
    for name, rows in per_pair.groupby("split"):
        assert groups[name]["mean_margin_shift"] == pytest.approx(rows["reward_margin_shift"].mean(), abs=1e-6)
    for name in ("train", "held_out", "never_seen"):
        assert any(line.strip().startswith(f"{name} ") and f"n={groups[name]['n']}" in line for line in res.stdout.splitlines()), res.stdout
    # The run resolves the same from its catalog name and its output checkpoint; a run without saved ids says so.
    assert run_folder("run:dpo-split", settings) == run and run_folder(str(run / "adapter"), settings) == run
    assert run_folder(str(tiny_checkpoint("llama")), settings) is None and run_folder("run:nope", settings) is None
    old = make_run(settings.runs_dir, "dpo-old", tiny_lora, None)
    assert run_folder(str(old / "adapter"), settings) == old
    unsplit = with_run_split(model_diff(models[0], models[0], make_pairs(2)), str(old), settings).summary()["split"]
    assert not unsplit["known"] and unsplit["run"] == "dpo-old" and "saved no train/held-out pair ids" in unsplit["note"]
